//! Memberships: who belongs to a tenant and with which role.
//!
//! Two invariants hold here: a tenant always keeps at least one owner, and nobody grants,
//! changes or removes a role that carries permissions they do not hold themselves (so an
//! admin cannot make anyone owner, nor demote an owner).

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, LockType, Order, Query};
use tenantry_audit::Entry;
use tenantry_core::{Email, Page, PageRequest, Permission, SystemRole, TenantId, UserId};
use tenantry_db::{Backend, Db, TenantScope, Tx};
use tenantry_identity::Identity;

use crate::{
    Member, TenancyError,
    roles::{check_grantable, resolve},
    settings::{self, NOT_ADMITTED},
    tenants::require,
};

/// Whom to add: an existing account, by id or e-mail.
#[derive(Debug, Clone)]
pub enum MemberRef {
    Id(UserId),
    Email(Email),
}

fn member_query(scope: &TenantScope) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(Member::COLUMNS)
        .from("memberships")
        .inner_join(
            "users",
            Expr::col(("users", "id")).equals(("memberships", "user_id")),
        )
        .and_where(Expr::col(("memberships", "tenant_id")).eq(scope.tenant_id()));
    q
}

pub(crate) async fn member_in(
    tx: &mut Tx,
    scope: &TenantScope,
    user_id: UserId,
) -> Result<Option<Member>, TenancyError> {
    let mut q = member_query(scope);
    q.and_where(Expr::col(("memberships", "user_id")).eq(user_id));
    Ok(tx.fetch_optional(&q).await?)
}

/// Counts owners, locking their rows on PostgreSQL so two concurrent demotions cannot both
/// see "another owner remains" (SQLite serialises writers already).
async fn owner_count(tx: &mut Tx, scope: &TenantScope) -> Result<usize, TenancyError> {
    let mut q = Query::select();
    q.column("user_id")
        .from("memberships")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .and_where(Expr::col("role").eq(SystemRole::Owner.as_str()));
    if tx.backend() == Backend::Postgres {
        q.lock(LockType::Update);
    }
    let owners: Vec<uuid::Uuid> = tx.fetch_all(&q).await?;
    Ok(owners.len())
}

/// Inserts a membership; `AlreadyMember` when the user already belongs to the tenant.
pub(crate) async fn insert_membership(
    tx: &mut Tx,
    tenant_id: TenantId,
    user_id: UserId,
    role: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    tx.execute(
        Query::insert()
            .into_table("memberships")
            .columns(["tenant_id", "user_id", "role", "created_at", "updated_at"])
            .values_panic([
                tenant_id.into(),
                user_id.into(),
                role.into(),
                now.into(),
                now.into(),
            ]),
    )
    .await
    .map_err(|e| match e {
        tenantry_db::DbError::UniqueViolation { .. } => TenancyError::AlreadyMember,
        other => other.into(),
    })?;
    Ok(())
}

pub async fn list_members(
    db: &Db,
    scope: &TenantScope,
    page: &PageRequest,
) -> Result<Page<Member>, TenancyError> {
    require(scope, Permission::MembersRead)?;
    let mut q = member_query(scope);
    q.order_by(("memberships", "user_id"), Order::Desc)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        q.and_where(Expr::col(("memberships", "user_id")).lt(after.0));
    }
    let mut tx = db.begin_tenant_read(scope).await?;
    let rows: Vec<Member> = tx.fetch_all(&q).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |m| m.user_id.as_uuid()))
}

pub async fn get_member(
    db: &Db,
    scope: &TenantScope,
    user_id: UserId,
) -> Result<Member, TenancyError> {
    require(scope, Permission::MembersRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    let member = member_in(&mut tx, scope, user_id).await?;
    tx.commit().await?;
    member.ok_or(TenancyError::NotFound)
}

pub async fn add_member(
    identity: &Identity,
    scope: &TenantScope,
    who: MemberRef,
    role: &str,
) -> Result<Member, TenancyError> {
    require(scope, Permission::MembersManage)?;
    if let Some(system) = SystemRole::parse(role) {
        check_grantable(scope, system.permissions())?;
    }
    let field = match who {
        MemberRef::Id(_) => "user_id",
        MemberRef::Email(_) => "email",
    };
    let user = match who {
        MemberRef::Id(id) => identity.user(id).await.ok(),
        MemberRef::Email(email) => identity.user_by_email(&email).await?,
    }
    .filter(|u| !u.is_guest)
    .ok_or(TenancyError::UnknownUser)?;
    let now = tenantry_core::now();
    let mut tx = identity.db().begin_tenant(scope).await?;
    let admitted = settings::settings_in(&mut tx, scope).await?;
    if !admitted.admits_email(user.email.as_deref()) {
        return Err(TenancyError::Invalid {
            field,
            message: NOT_ADMITTED,
        });
    }
    let role = resolve(&mut tx, scope, role).await?;
    check_grantable(scope, role.permissions)?;
    insert_membership(&mut tx, scope.tenant_id(), user.id, &role.name, now).await?;
    let member = member_in(&mut tx, scope, user.id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    tenantry_audit::record(
        &mut tx,
        scope,
        Entry::new("member.added", "member", user.id)
            .with_summary(serde_json::json!({"role": role.name})),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), user_id = %user.id, role = role.name.as_str(), "member added");
    Ok(member)
}

pub async fn change_member_role(
    db: &Db,
    scope: &TenantScope,
    user_id: UserId,
    role: &str,
) -> Result<Member, TenancyError> {
    require(scope, Permission::MembersManage)?;
    let mut tx = db.begin_tenant(scope).await?;
    let new_role = resolve(&mut tx, scope, role).await?;
    check_grantable(scope, new_role.permissions)?;
    let current = member_in(&mut tx, scope, user_id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let current_role = resolve(&mut tx, scope, &current.role).await?;
    check_grantable(scope, current_role.permissions)?;
    if current_role.is_owner() && !new_role.is_owner() && owner_count(&mut tx, scope).await? <= 1 {
        return Err(TenancyError::LastOwner);
    }
    tx.execute(
        Query::update()
            .table("memberships")
            .value("role", new_role.name.as_str())
            .value("updated_at", tenantry_core::now())
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("user_id").eq(user_id)),
    )
    .await?;
    let member = member_in(&mut tx, scope, user_id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    tenantry_audit::record(
        &mut tx,
        scope,
        Entry::new("member.role_changed", "member", user_id)
            .with_summary(serde_json::json!({"from": current_role.name, "to": new_role.name})),
    )
    .await?;
    tx.commit().await?;
    Ok(member)
}

pub async fn remove_member(
    db: &Db,
    scope: &TenantScope,
    user_id: UserId,
) -> Result<(), TenancyError> {
    // Leaving a tenant needs no permission; removing someone else does.
    // Only the person themselves leaves; an API key acting for them does not.
    let leaving = scope.actor().person() == Some(user_id);
    if !leaving {
        require(scope, Permission::MembersManage)?;
    }
    let mut tx = db.begin_tenant(scope).await?;
    let current = member_in(&mut tx, scope, user_id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let current_role = resolve(&mut tx, scope, &current.role).await?;
    if !leaving {
        check_grantable(scope, current_role.permissions)?;
    }
    if current_role.is_owner() && owner_count(&mut tx, scope).await? <= 1 {
        return Err(TenancyError::LastOwner);
    }
    tx.execute(
        Query::delete()
            .from_table("memberships")
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("user_id").eq(user_id)),
    )
    .await?;
    tenantry_audit::record(
        &mut tx,
        scope,
        Entry::new(
            if leaving {
                "member.left"
            } else {
                "member.removed"
            },
            "member",
            user_id,
        )
        .with_summary(serde_json::json!({"role": current_role.name})),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), user_id = %user_id, "member removed");
    Ok(())
}
