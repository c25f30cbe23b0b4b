//! Tenancy records and their API representations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_core::{
    Permission, ProjectId, RoleId, SystemRole, TenantId, UserId, permission::PermissionSet,
};
use tenantry_db::{DbError, FromRow, Row};
use tenantry_identity::directory::{AccountColumn, account_column};

use crate::TenantSettings;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "deleted" => Ok(Self::Deleted),
            other => Err(DbError::Other(anyhow::anyhow!(
                "unknown tenant status {other:?}"
            ))),
        }
    }
}

/// A tenant (organisation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub status: TenantStatus,
    /// Tenant-wide settings, defaults filled in (see `GET /tenants/{id}/settings`).
    pub settings: TenantSettings,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    pub const COLUMNS: [&'static str; 7] = [
        "id",
        "name",
        "slug",
        "status",
        "settings",
        "created_at",
        "updated_at",
    ];

    pub(crate) fn qualified() -> impl Iterator<Item = (&'static str, &'static str)> {
        Self::COLUMNS.into_iter().map(|c| ("tenants", c))
    }
}

impl FromRow for Tenant {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            name: row.string()?,
            slug: row.string()?,
            status: TenantStatus::parse(&row.string()?)?,
            settings: TenantSettings::from_stored(&row.json::<serde_json::Value>()?),
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}

/// A tenant together with the caller's role in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantMembership {
    pub tenant: Tenant,
    pub role: String,
}

impl FromRow for TenantMembership {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant: Tenant::from_row(row)?,
            role: row.string()?,
        })
    }
}

/// A member of a tenant with their profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user_id: UserId,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub joined_at: DateTime<Utc>,
}

impl Member {
    pub(crate) const COLUMNS: [(&'static str, &'static str); 6] = [
        ("memberships", "user_id"),
        account_column(AccountColumn::Email),
        account_column(AccountColumn::FirstName),
        account_column(AccountColumn::LastName),
        ("memberships", "role"),
        ("memberships", "created_at"),
    ];
}

impl FromRow for Member {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            user_id: row.id()?,
            email: row.opt_string()?,
            first_name: row.string()?,
            last_name: row.string()?,
            role: row.string()?,
            joined_at: row.time()?,
        })
    }
}

/// A role a member can hold, with what it grants.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleView {
    /// `null` for system roles, which are addressed by name.
    pub id: Option<RoleId>,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    /// System roles are built in and cannot be changed.
    pub system: bool,
    #[serde(serialize_with = "tenantry_core::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "tenantry_core::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<SystemRole> for RoleView {
    fn from(role: SystemRole) -> Self {
        Self {
            id: None,
            name: role.as_str().to_owned(),
            description: Some(role.description().to_owned()),
            permissions: names(role.permissions()),
            system: true,
            created_at: None,
            updated_at: None,
        }
    }
}

/// Permission names of a set, in catalog order.
pub(crate) fn names(set: PermissionSet) -> Vec<String> {
    set.iter().map(|p| p.as_str().to_owned()).collect()
}

/// Parses stored permission names; names no longer in the catalog grant nothing.
pub(crate) fn parse_names(names: &[String]) -> PermissionSet {
    names.iter().filter_map(|n| Permission::parse(n)).collect()
}

/// A tenant's custom role as stored.
pub(crate) struct CustomRoleRow {
    pub id: RoleId,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CustomRoleRow {
    pub(crate) const COLUMNS: [&'static str; 6] = [
        "id",
        "name",
        "description",
        "permissions",
        "created_at",
        "updated_at",
    ];

    pub(crate) fn permission_set(&self) -> PermissionSet {
        parse_names(&self.permissions)
    }
}

impl FromRow for CustomRoleRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            name: row.string()?,
            description: row.opt_string()?,
            permissions: row.json()?,
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}

impl From<CustomRoleRow> for RoleView {
    fn from(row: CustomRoleRow) -> Self {
        Self {
            id: Some(row.id),
            permissions: names(row.permission_set()),
            name: row.name,
            description: row.description,
            system: false,
            created_at: Some(row.created_at),
            updated_at: Some(row.updated_at),
        }
    }
}

/// An entry of the permission catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PermissionView {
    pub name: &'static str,
    pub description: &'static str,
}

impl From<Permission> for PermissionView {
    fn from(p: Permission) -> Self {
        Self {
            name: p.as_str(),
            description: p.description(),
        }
    }
}

/// A role name resolved to what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRole {
    pub name: String,
    /// The system role, when it is one.
    pub system: Option<SystemRole>,
    pub permissions: PermissionSet,
}

impl ResolvedRole {
    pub fn system(role: SystemRole) -> Self {
        Self {
            name: role.as_str().to_owned(),
            system: Some(role),
            permissions: role.permissions(),
        }
    }

    pub fn is_owner(&self) -> bool {
        self.system == Some(SystemRole::Owner)
    }
}

/// A project: a sub-scope of a tenant (a retailer's store, a team's project).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    /// Passed through as stored JSON text (see `Row::raw_json`): lists do not parse and
    /// re-serialise every row's settings.
    #[schema(value_type = Object)]
    pub settings: Box<serde_json::value::RawValue>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A project as selected from its table: everything but the tenant id, which every query
/// filters on and so takes from its scope instead of decoding it from each row.
pub(crate) struct ProjectRow {
    id: ProjectId,
    name: String,
    description: Option<String>,
    settings: Box<serde_json::value::RawValue>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ProjectRow {
    pub(crate) const COLUMNS: [&'static str; 6] = [
        "id",
        "name",
        "description",
        "settings",
        "created_at",
        "updated_at",
    ];

    /// The project, in the tenant the query was confined to.
    pub(crate) fn in_tenant(self, tenant_id: TenantId) -> Project {
        Project {
            id: self.id,
            tenant_id,
            name: self.name,
            description: self.description,
            settings: self.settings,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl FromRow for ProjectRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            name: row.string()?,
            description: row.opt_string()?,
            settings: row.raw_json()?,
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}
