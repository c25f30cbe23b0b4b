//! The authorization layer: the only issuer of [`TenantScope`]s.
//!
//! A scope is issued when the caller is a member of a live tenant; it carries the
//! permissions of their role there. Permission checks on individual operations happen in
//! the services (`tenants::require(scope, …)`), so every entry point gets them.

use std::sync::Arc;

use sea_query::{Expr, ExprTrait, Query};
use tenantry_core::{Origin, Permission, SystemRole, TenantId, UserId};
use tenantry_db::{
    Actor, AdminScope, Db, DbError, FromRow, ProjectAccess, Row, TenantScope, UserScope,
};
use tenantry_identity::{User, UserStatus};

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
    origin: Arc<Origin>,
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
        ProjectAccess {
            default: role.permissions.intersection(Permission::PROJECT_SCOPED),
            overrides: Arc::new([]),
        },
        origin,
    ))
}

/// The scope of a tenant that `creator` is creating (and will own).
pub(crate) fn scope_for_new_tenant(
    tenant_id: TenantId,
    creator: UserId,
    origin: &Origin,
) -> TenantScope {
    let all = SystemRole::Owner.permissions();
    TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(creator),
        all,
        ProjectAccess {
            default: all.intersection(Permission::PROJECT_SCOPED),
            overrides: Arc::new([]),
        },
        Arc::new(origin.clone()),
    )
}

/// Issues an administration scope (`/api/v1/admin/…`) to an active platform administrator;
/// anyone else → `NotPlatformAdmin`.
pub fn authorize_admin(user: &User, origin: Arc<Origin>) -> Result<AdminScope, TenancyError> {
    if user.is_platform_admin && user.status == UserStatus::Active && !user.is_guest {
        Ok(AdminScope::issue_for_platform_admin(user.id, origin))
    } else {
        Err(TenancyError::NotPlatformAdmin)
    }
}

/// The scope in which `user_id` accepts an invitation to `tenant_id`, before they are a
/// member. It grants no permission: it only confines the accepting transaction to the
/// invitation's tenant and attributes its audit records to the user. Issue it only after
/// the invitation's token was found valid for this user (see `invitations::accept`).
pub(crate) fn scope_for_invitation(
    tenant_id: TenantId,
    user_id: UserId,
    origin: &Origin,
) -> TenantScope {
    TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(user_id),
        tenantry_core::permission::PermissionSet::EMPTY,
        ProjectAccess::default(),
        Arc::new(origin.clone()),
    )
}
