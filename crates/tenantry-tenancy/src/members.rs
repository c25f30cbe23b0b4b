//! Memberships: who belongs to a tenant and with which role.
//!
//! Two invariants hold here: a tenant always keeps at least one owner, and nobody grants,
//! changes or removes a role that carries permissions they do not hold themselves (so an
//! admin cannot make anyone owner, nor demote an owner). A third: nobody becomes a member
//! without consenting — adding someone sends an invitation that they accept, and the answer
//! never tells whether an address or id has an account.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_audit::Entry;
use tenantry_core::{Email, Page, PageRequest, Permission, SystemRole, TenantId, UserId};
use tenantry_db::{Db, InsertRow, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};
use tenantry_identity::Identity;
use tenantry_identity::directory::join_accounts;

use crate::{
    Invitation, Member, NewInvitation, TenancyError,
    config::TenancyConfig,
    invitations::{create_invitation, revoke_sent_by},
    roles::{check_grantable, resolve},
    tenants::require,
};

/// Why a `user_id` that is not a member is refused — the same for every id, so the answer
/// does not tell whether the account exists.
pub(crate) const JOIN_BY_INVITATION: &str =
    "is not a member; accounts join by accepting an invitation: send their email instead";

/// The subject of a member's events.
pub(crate) fn subject(user_id: UserId) -> String {
    format!("members/{user_id}")
}

/// Whom to add: by account id or e-mail address.
#[derive(Debug, Clone)]
pub enum MemberRef {
    Id(UserId),
    Email(Email),
}

fn member_query(scope: &TenantScope) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(Member::COLUMNS).from("memberships");
    join_accounts(&mut q, ("memberships", "user_id"));
    q.and_where(Expr::col(("memberships", "tenant_id")).eq(scope.tenant_id()));
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
    tx.for_update(&mut q);
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
    tx.execute(Query::insert().into_table("memberships").row([
        ("tenant_id", tenant_id.into()),
        ("user_id", user_id.into()),
        ("role", role.into()),
        ("created_at", now.into()),
        ("updated_at", now.into()),
    ]))
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

/// "Adds" a member (`members:manage`) without ever making anyone a member unasked:
///
/// - by e-mail: invites the address (exactly [`create_invitation`]: sender verification,
///   limits, audit and mail apply). The answer is the same whether or not the address has an
///   account — nothing here looks it up.
/// - by id: only answers; an id that already is a member → `AlreadyMember` (members are no
///   secret to those who manage them), any other id → 422 on `user_id`, the same whether or
///   not the account exists. Invite them by address instead.
pub async fn add_member(
    identity: &Identity,
    scope: &TenantScope,
    who: MemberRef,
    role: &str,
    limits: &TenancyConfig,
) -> Result<Invitation, TenancyError> {
    require(scope, Permission::MembersManage)?;
    if let Some(system) = SystemRole::parse(role) {
        check_grantable(scope, system.permissions())?;
    }
    match who {
        MemberRef::Email(email) => {
            let new = NewInvitation {
                email,
                role: role.to_owned(),
                project_id: None,
            };
            create_invitation(identity, scope, new, limits).await
        }
        MemberRef::Id(user_id) => {
            let mut tx = identity.db().begin_tenant_read(scope).await?;
            let role = resolve(&mut tx, scope, role).await?;
            check_grantable(scope, role.permissions)?;
            let member = member_in(&mut tx, scope, user_id).await?;
            tx.commit().await?;
            Err(match member {
                Some(_) => TenancyError::AlreadyMember,
                None => TenancyError::Invalid {
                    field: "user_id",
                    message: JOIN_BY_INVITATION,
                },
            })
        }
    }
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
            .value("updated_at", tx.now())
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("user_id").eq(user_id)),
    )
    .await?;
    let member = member_in(&mut tx, scope, user_id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    record_change(
        &mut tx,
        scope,
        Entry::new("member.role_changed", "member", user_id)
            .with_summary(serde_json::json!({"from": current_role.name, "to": new_role.name})),
        Event::new(EventType::MemberRoleChanged, subject(user_id), &member),
    )
    .await?;
    revoke_sent_by(
        &mut tx,
        scope,
        user_id,
        Some(new_role.permissions),
        "inviter_role_changed",
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
    record_change(
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
        Event::new(EventType::MemberRemoved, subject(user_id), &current),
    )
    .await?;
    revoke_sent_by(&mut tx, scope, user_id, None, "inviter_no_longer_member").await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), user_id = %user_id, "member removed");
    Ok(())
}
