//! Platform administration of accounts (`/api/v1/admin/users…`): listing every account,
//! disabling one (it cannot sign in, and every session ends in the same transaction) and
//! enabling it again. Each change is a security event of the account and an audit record in
//! its chain, naming the administrator.
//!
//! Accounts are platform rows, so these run in ordinary platform transactions; the
//! [`AdminScope`] argument is the proof that the caller is a platform administrator.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Func, Order, Query};
use serde::Serialize;
use tenantry_audit::AuditActor;
use tenantry_core::{Page, PageRequest, UserId};
use tenantry_db::{AdminScope, DbError, FromRow, Row, Tx};
use utoipa::ToSchema;

use crate::{
    Identity, IdentityError, User, UserStatus,
    recovery::{CredentialChange, void_links},
    security::{SecurityEventKind, record},
    sessions::revoke_all,
};

/// Which accounts to list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of the e-mail address.
    pub q: Option<String>,
    pub status: Option<UserStatus>,
    pub platform_admin: Option<bool>,
    pub guest: Option<bool>,
}

/// An account as platform administrators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminUser {
    pub id: UserId,
    /// `null` for guests and external accounts without an address.
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub is_guest: bool,
    pub is_platform_admin: bool,
    /// `active` or `disabled` (cannot sign in; no session works).
    pub status: UserStatus,
    pub mfa_enabled: bool,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<User> for AdminUser {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            display_name: u.display_name,
            email_verified: u.email_verified,
            is_guest: u.is_guest,
            is_platform_admin: u.is_platform_admin,
            status: u.status,
            mfa_enabled: u.mfa_enabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

struct Id(UserId);

impl FromRow for Id {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        row.id().map(Self)
    }
}

/// Records an administrator's change of account `id`: a security event of the account, whose
/// audit record in the account's chain (`user.disabled`, `user.enabled`) names the
/// administrator (the system for the command line) and the request's origin.
async fn record_change(
    tx: &mut Tx,
    scope: &AdminScope,
    id: UserId,
    kind: SecurityEventKind,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    let actor = scope.actor().map_or(AuditActor::System, AuditActor::User);
    record(tx, Some(id), actor, kind, scope.origin(), detail).await
}

/// The account, its row locked for the rest of the transaction on PostgreSQL.
async fn locked_user(tx: &mut Tx, id: UserId) -> Result<User, IdentityError> {
    let mut query = User::select(Expr::col("id").eq(id));
    tx.for_update(&mut query);
    tx.fetch_optional(&query)
        .await?
        .ok_or(IdentityError::UserNotFound)
}

/// Whether an active platform administrator other than `except` remains. On PostgreSQL the
/// administrators' rows are locked (in id order, so two such checks cannot deadlock): two
/// administrators disabling each other at once cannot both succeed.
async fn another_active_admin(tx: &mut Tx, except: UserId) -> Result<bool, IdentityError> {
    let mut query = Query::select();
    query
        .column("id")
        .from("users")
        .and_where(Expr::col("is_platform_admin").eq(true))
        .and_where(Expr::col("is_guest").eq(false))
        .and_where(Expr::col("status").eq(UserStatus::Active.as_str()))
        .order_by("id", Order::Asc);
    tx.for_update(&mut query);
    let admins: Vec<Id> = tx.fetch_all(&query).await?;
    Ok(admins.iter().any(|Id(id)| *id != except))
}

impl Identity {
    /// Every account matching `filter`, newest first.
    pub async fn list_users(
        &self,
        _scope: &AdminScope,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<AdminUser>, IdentityError> {
        let mut query = Query::select();
        query.columns(User::COLUMNS).from("users");
        if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
            // Addresses are stored lower-case; LOWER keeps the match case-insensitive anyway.
            query.and_where(
                Expr::expr(Func::lower(Expr::col("email"))).like(tenantry_db::contains_pattern(q)),
            );
        }
        if let Some(status) = filter.status {
            query.and_where(Expr::col("status").eq(status.as_str()));
        }
        if let Some(admin) = filter.platform_admin {
            query.and_where(Expr::col("is_platform_admin").eq(admin));
        }
        if let Some(guest) = filter.guest {
            query.and_where(Expr::col("is_guest").eq(guest));
        }
        if let Some(after) = page.after {
            query.and_where(Expr::col("id").lt(after.0));
        }
        query.order_by("id", Order::Desc).limit(page.fetch_limit());
        let rows: Vec<User> = self.db.read_all(&query).await?;
        Ok(Page::from_rows(rows, page, |u| u.id.as_uuid()).map(AdminUser::from))
    }

    /// One account.
    pub async fn admin_user(
        &self,
        _scope: &AdminScope,
        id: UserId,
    ) -> Result<AdminUser, IdentityError> {
        self.user(id).await.map(AdminUser::from)
    }

    /// Disables an account: it cannot sign in (the answer is the one for a wrong password),
    /// its access and refresh tokens stop working at once, tokens of external issuers are
    /// refused, and every session and outstanding mailed link (verification, reset) is
    /// revoked in the same transaction. Administrators cannot
    /// disable themselves (`CannotDisableSelf`) nor the last active administrator
    /// (`LastPlatformAdmin`); an account already disabled → `AlreadyDisabled`.
    pub async fn disable_user(
        &self,
        scope: &AdminScope,
        id: UserId,
        reason: Option<&str>,
    ) -> Result<AdminUser, IdentityError> {
        if scope.actor() == Some(id) {
            return Err(IdentityError::CannotDisableSelf);
        }
        let mut tx = self.db.begin_write().await?;
        let user = Self::user_in(&mut tx, id).await?;
        // Administrators are locked as a set (see `another_active_admin`), others alone.
        let user = if user.is_platform_admin {
            let another = another_active_admin(&mut tx, id).await?;
            // Read again after the lock: another transaction may have changed it meanwhile.
            let user = Self::user_in(&mut tx, id).await?;
            if user.status == UserStatus::Active && !another {
                return Err(IdentityError::LastPlatformAdmin);
            }
            user
        } else {
            locked_user(&mut tx, id).await?
        };
        if user.status == UserStatus::Disabled {
            return Err(IdentityError::AlreadyDisabled);
        }
        let now = tx.now();
        tx.execute(
            Query::update()
                .table("users")
                .value("status", UserStatus::Disabled.as_str())
                .value("updated_at", now)
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
        let sessions = revoke_all(&mut tx, id, None, "account_disabled").await?;
        // Mailed links too: enabling the account later must not revive a reset link that
        // was requested before (perhaps by whoever the account was disabled for).
        let links = void_links(&mut tx, id, CredentialChange::AccountDisabled).await?;
        let detail = serde_json::json!({
            "reason": reason,
            "sessions_revoked": sessions,
            "links_voided": links,
        });
        record_change(
            &mut tx,
            scope,
            id,
            SecurityEventKind::AccountDisabled,
            detail,
        )
        .await?;
        let user = Self::user_in(&mut tx, id).await?;
        tx.commit().await?;
        tracing::info!(user_id = %id, sessions_revoked = sessions, "account disabled by an administrator");
        Ok(user.into())
    }

    /// Enables a disabled account again (its old sessions stay ended: it signs in anew).
    /// An active account → `AlreadyActive`.
    pub async fn enable_user(
        &self,
        scope: &AdminScope,
        id: UserId,
        reason: Option<&str>,
    ) -> Result<AdminUser, IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let user = locked_user(&mut tx, id).await?;
        if user.status == UserStatus::Active {
            return Err(IdentityError::AlreadyActive);
        }
        tx.execute(
            Query::update()
                .table("users")
                .value("status", UserStatus::Active.as_str())
                .value("updated_at", tx.now())
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
        let detail = serde_json::json!({ "reason": reason });
        record_change(
            &mut tx,
            scope,
            id,
            SecurityEventKind::AccountEnabled,
            detail,
        )
        .await?;
        let user = Self::user_in(&mut tx, id).await?;
        tx.commit().await?;
        tracing::info!(user_id = %id, "account enabled by an administrator");
        Ok(user.into())
    }
}
