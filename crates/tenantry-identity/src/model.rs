//! Users and sessions as stored, and their public representations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_core::{SessionId, UserId};
use tenantry_db::{DbError, FromRow, Row};
use utoipa::ToSchema;

/// Account status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            other => Err(DbError::Other(anyhow::anyhow!(
                "unknown user status {other:?}"
            ))),
        }
    }
}

/// A user account as stored (without the password hash).
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub is_guest: bool,
    pub is_platform_admin: bool,
    pub status: UserStatus,
    pub mfa_enabled: bool,
    pub preferences: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub const COLUMNS: [&'static str; 13] = [
        "id",
        "email",
        "first_name",
        "last_name",
        "display_name",
        "email_verified",
        "is_guest",
        "is_platform_admin",
        "status",
        "mfa_enabled",
        "preferences",
        "created_at",
        "updated_at",
    ];

    /// `SELECT <COLUMNS> FROM users WHERE <condition>`.
    pub(crate) fn select(condition: sea_query::Expr) -> sea_query::SelectStatement {
        sea_query::Query::select()
            .columns(Self::COLUMNS)
            .from("users")
            .and_where(condition)
            .to_owned()
    }

    /// `COLUMNS` qualified with the `users` table, for joins.
    pub fn qualified_columns() -> impl Iterator<Item = (&'static str, &'static str)> {
        Self::COLUMNS.into_iter().map(|c| ("users", c))
    }
}

impl FromRow for User {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            email: row.opt_string()?,
            first_name: row.string()?,
            last_name: row.string()?,
            display_name: row.opt_string()?,
            email_verified: row.bool()?,
            is_guest: row.bool()?,
            is_platform_admin: row.bool()?,
            status: UserStatus::parse(&row.string()?)?,
            mfa_enabled: row.bool()?,
            preferences: row.json()?,
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}

/// The user as the API shows it to themselves.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    /// `null` for guests.
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// Set for guests (`guest-NNNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub is_guest: bool,
    pub is_platform_admin: bool,
    pub mfa_enabled: bool,
    /// Free-form client preferences (JSON object).
    #[schema(value_type = Object)]
    pub preferences: serde_json::Value,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            display_name: u.display_name.clone(),
            email_verified: u.email_verified,
            is_guest: u.is_guest,
            is_platform_admin: u.is_platform_admin,
            mfa_enabled: u.mfa_enabled,
            preferences: u.preferences.clone(),
            created_at: u.created_at,
        }
    }
}

/// A login session as listed to its user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: SessionId,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub last_used_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// True for the session that made this request.
    pub current: bool,
}

pub(crate) struct SessionRow {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionRow {
    pub const COLUMNS: [&'static str; 6] = [
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip",
    ];
}

impl FromRow for SessionRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            created_at: row.time()?,
            last_used_at: row.time()?,
            expires_at: row.time()?,
            user_agent: row.opt_string()?,
            ip: row.opt_string()?,
        })
    }
}
