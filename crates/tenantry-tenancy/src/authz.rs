//! The authorization layer: the only issuer of [`TenantScope`]s.
//!
//! A scope is issued when the caller is a member of a live tenant; it carries the
//! permissions of their role there. Permission checks on individual operations happen in
//! the services (`tenants::require(scope, …)`), so every entry point gets them.

use sea_query::{Expr, ExprTrait, Query};
use tenantry_core::{SystemRole, TenantId, UserId};
use tenantry_db::{Actor, Db, DbError, FromRow, Row, TenantScope, UserScope};

use crate::{ResolvedRole, TenancyError, model::TenantStatus};

struct Grant {
    role: String,
    status: String,
}

impl FromRow for Grant {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            role: row.string()?,
            status: row.string()?,
        })
    }
}

/// Issues a scope for `user_id` in `tenant_id`.
///
/// Not a member, or a deleted tenant → `NotFound` (indistinguishable from a tenant that does
/// not exist); a suspended tenant → `Suspended`.
pub async fn authorize(
    db: &Db,
    user_id: UserId,
    tenant_id: TenantId,
) -> Result<TenantScope, TenancyError> {
    let grant: Option<Grant> = db
        .read_user_all(
            &UserScope::for_authenticated(user_id),
            Query::select()
                .column(("memberships", "role"))
                .column(("tenants", "status"))
                .from("memberships")
                .inner_join(
                    "tenants",
                    Expr::col(("tenants", "id")).equals(("memberships", "tenant_id")),
                )
                .and_where(Expr::col(("memberships", "tenant_id")).eq(tenant_id))
                .and_where(Expr::col(("memberships", "user_id")).eq(user_id)),
        )
        .await?
        .pop();
    let grant = grant.ok_or(TenancyError::NotFound)?;
    match TenantStatus::parse(&grant.status)? {
        TenantStatus::Active => {}
        TenantStatus::Suspended => return Err(TenancyError::Suspended),
        TenantStatus::Deleted => return Err(TenancyError::NotFound),
    }
    let role = ResolvedRole::parse(&grant.role).ok_or_else(|| {
        TenancyError::Internal(anyhow::anyhow!(
            "membership has unknown role {:?}",
            grant.role
        ))
    })?;
    Ok(TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(user_id),
        role.permissions,
    ))
}

/// The scope of a tenant that `creator` is creating (and will own).
pub(crate) fn scope_for_new_tenant(tenant_id: TenantId, creator: UserId) -> TenantScope {
    TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(creator),
        SystemRole::Owner.permissions(),
    )
}
