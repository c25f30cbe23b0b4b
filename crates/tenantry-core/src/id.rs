//! Typed identifiers. Each is a UUIDv7 (time ordered, so ids double as creation-order cursors)
//! wrapped in its own type so a `UserId` can never be passed where a `TenantId` is expected.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<$name> for sea_query_value::Value {
            fn from(id: $name) -> Self {
                sea_query_value::Value::from(id.0)
            }
        }

        impl sea_query_value::Nullable for $name {
            fn null() -> sea_query_value::Value {
                <uuid::Uuid as sea_query_value::Nullable>::null()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

// sea-query's `Value` is re-exported under a private alias so this crate does not need the
// query builder itself, only its value type (which `tenantry-db` binds to both drivers).
mod sea_query_value {
    pub use sea_query::{Nullable, Value};
}

typed_id!(
    /// A tenant (organisation).
    TenantId,
    /// A user account, platform-wide.
    UserId,
    /// A login session; access tokens are bound to one.
    SessionId,
    /// A project: a sub-scope of a tenant.
    ProjectId,
    /// A tenant's custom role.
    RoleId,
    /// A tenant API key.
    ApiKeyId,
    /// An invitation to join a tenant.
    InvitationId,
    /// One record of the audit trail.
    AuditId,
    /// A document: a named reference to stored content.
    DocumentId,
    /// Stored content, one per distinct SHA-256 in a tenant.
    FileId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = TenantId::new();
        let b = TenantId::new();
        assert!(a < b);
        let parsed: TenantId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
