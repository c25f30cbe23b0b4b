//! Invitations: a member with `members:manage` invites an e-mail address with a role (and
//! optionally into one project); the invitee accepts with the mailed link while signed in
//! with that address.
//!
//! The token is 256 random bits, mailed once and stored only as its SHA-256. An invitation
//! is pending until it is accepted, revoked or 7 days old; at most one is pending per address
//! and tenant (re-inviting revokes the earlier one, whose link stops working). A token bearer
//! reaches the row through [`Db::begin_secret_lookup`]: before accepting, they are nobody in
//! the tenant.

mod accept;
mod limits;

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Cond, Condition, Expr, ExprTrait, Order, Query};
use serde::Serialize;
use serde_json::json;
use tenantry_audit::Entry;
use tenantry_core::{
    Email, InvitationId, Page, PageRequest, Permission, ProjectId, TenantId, UserId,
    permission::PermissionSet,
};
use tenantry_db::{Db, DbError, FromRow, InsertRow, Row, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};
use tenantry_identity::Identity;
use tenantry_identity::directory::{AccountColumn, account_column, join_accounts};
use utoipa::ToSchema;

use crate::{
    TenancyError,
    config::TenancyConfig,
    projects::project_exists,
    roles::{check_grantable, resolve},
    settings::{self, NOT_ADMITTED},
    tenants::require,
};

pub use accept::{InvitationPreview, accept_invitation, preview_invitation};

/// How long an invitation stays valid.
pub const INVITATION_TTL: TimeDelta = TimeDelta::days(7);

/// Where the mailed link points: `<public_url>/invitations/accept?token=…`.
const ACCEPT_PATH: &str = "invitations/accept";

/// An invitation to create.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: Email,
    /// A role name (a system role or, later, one of the tenant's custom roles).
    pub role: String,
    /// Also assign the role in this project of the tenant.
    pub project_id: Option<ProjectId>,
}

/// A pending invitation as its tenant sees it (never with its token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: InvitationId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: String,
    /// The project the role is also assigned in, if any.
    pub project_id: Option<ProjectId>,
    /// The member who sent it.
    pub invited_by: UserId,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub expires_at: DateTime<Utc>,
}

impl Invitation {
    const COLUMNS: [&'static str; 8] = [
        "id",
        "tenant_id",
        "email",
        "role",
        "project_id",
        "invited_by",
        "created_at",
        "expires_at",
    ];
}

impl FromRow for Invitation {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            tenant_id: row.id()?,
            email: row.string()?,
            role: row.string()?,
            project_id: row.opt_id()?,
            invited_by: row.id()?,
            created_at: row.time()?,
            expires_at: row.time()?,
        })
    }
}

fn full_name(first: String, last: String) -> String {
    match (first.is_empty(), last.is_empty()) {
        (_, true) => first,
        (true, false) => last,
        (false, false) => format!("{first} {last}"),
    }
}

/// Neither accepted nor revoked nor expired.
fn pending(now: DateTime<Utc>) -> Condition {
    Cond::all()
        .add(Expr::col("accepted_at").is_null())
        .add(Expr::col("revoked_at").is_null())
        .add(Expr::col("expires_at").gt(now))
}

async fn is_member(tx: &mut Tx, scope: &TenantScope, email: &Email) -> Result<bool, TenancyError> {
    let found: Option<uuid::Uuid> = tx
        .fetch_optional(
            Query::select()
                .column(("memberships", "user_id"))
                .from("memberships")
                .apply(|q| join_accounts(q, ("memberships", "user_id")))
                .and_where(Expr::col(("memberships", "tenant_id")).eq(scope.tenant_id()))
                .and_where(Expr::col(account_column(AccountColumn::Email)).eq(email.as_str())),
        )
        .await?;
    Ok(found.is_some())
}

/// Revokes the address's earlier invitations that are neither accepted nor revoked
/// (expired ones too, so the one-pending-per-address index admits the new one).
async fn revoke_earlier(
    tx: &mut Tx,
    scope: &TenantScope,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<Vec<Invitation>, TenancyError> {
    let earlier: Vec<Invitation> = tx
        .fetch_all(
            Query::select()
                .columns(Invitation::COLUMNS)
                .from("invitations")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("email").eq(email.as_str()))
                .and_where(Expr::col("accepted_at").is_null())
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await?;
    if !earlier.is_empty() {
        tx.execute(
            Query::update()
                .table("invitations")
                .value("revoked_at", now)
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").is_in(earlier.iter().map(|i| i.id))),
        )
        .await?;
    }
    Ok(earlier)
}

/// The subject of an invitation's events.
pub(crate) fn subject(id: InvitationId) -> String {
    format!("invitations/{id}")
}

/// Names for the mail: the tenant's, the inviting member's and their (verified) address.
async fn mail_names(
    tx: &mut Tx,
    scope: &TenantScope,
    inviter: UserId,
) -> Result<(String, String, String), TenancyError> {
    let tenant: Option<String> = tx
        .fetch_optional(
            Query::select()
                .column("name")
                .from("tenants")
                .and_where(Expr::col("id").eq(scope.tenant_id())),
        )
        .await?;
    let inviter = tenantry_identity::directory::person_name(tx, inviter).await?;
    let tenant = tenant.ok_or(TenancyError::NotFound)?;
    let inviter = inviter.ok_or(TenancyError::NotFound)?;
    let email = inviter.email.ok_or(TenancyError::NotFound)?;
    Ok((
        tenant,
        full_name(inviter.first_name, inviter.last_name),
        email,
    ))
}

/// Whether `inviter` may (still) send an invitation granting `role`: `members:manage` and
/// every permission of the role — the rule when inviting, re-checked when accepting.
fn may_grant(inviter: PermissionSet, role: PermissionSet) -> bool {
    inviter.contains(Permission::MembersManage) && role.is_subset_of(inviter)
}

/// Invites `new.email` (`members:manage`; the role may grant only what the caller holds) and
/// mails the link, in one transaction. An earlier invitation of the address is revoked.
///
/// The sender (the person, or the member behind an API key) needs a verified address, and
/// the limits of `limits` apply (see `limits`). Nothing here looks at whether the address
/// has an account, so the answer is the same either way.
pub async fn create_invitation(
    identity: &Identity,
    scope: &TenantScope,
    new: NewInvitation,
    limits: &TenancyConfig,
) -> Result<Invitation, TenancyError> {
    require(scope, Permission::MembersManage)?;
    let inviter = scope.actor().user_id().ok_or_else(|| {
        TenancyError::Internal(anyhow::anyhow!(
            "an actor without a user sent an invitation"
        ))
    })?;
    let id = InvitationId::new();
    let now = identity.db().now();
    let expires_at = now + INVITATION_TTL;
    let (token, token_hash) = tenantry_identity::new_link_token();
    let mut tx = identity.db().begin_write().await?;
    // The sender's count is a platform row: written before the transaction is confined to
    // the tenant, and rolled back with it if the invitation fails.
    limits::count_sender(&mut tx, inviter, now, limits).await?;
    tx.enter_tenant(scope).await?;
    let role = resolve(&mut tx, scope, &new.role).await?;
    check_grantable(scope, role.permissions)?;
    if let Some(project) = new.project_id
        && !project_exists(&mut tx, scope, project).await?
    {
        return Err(TenancyError::UnknownProject);
    }
    if !settings::settings_in(&mut tx, scope)
        .await?
        .admits_email(Some(new.email.as_str()))
    {
        return Err(TenancyError::Invalid {
            field: "email",
            message: NOT_ADMITTED,
        });
    }
    if is_member(&mut tx, scope, &new.email).await? {
        return Err(TenancyError::AlreadyMember);
    }
    limits::check_tenant(&mut tx, scope, &new.email, now, limits).await?;
    let replaced = revoke_earlier(&mut tx, scope, &new.email, now).await?;
    tx.execute(Query::insert().into_table("invitations").row([
        ("tenant_id", scope.tenant_id().into()),
        ("id", id.into()),
        ("email", new.email.as_str().into()),
        ("role", new.role.as_str().into()),
        ("project_id", new.project_id.into()),
        ("token_hash", token_hash.into()),
        ("invited_by", inviter.into()),
        ("created_at", now.into()),
        ("expires_at", expires_at.into()),
    ]))
    .await
    .map_err(|e| {
        // Another invitation of the address committed between our revoke and insert.
        if e.is_unique_violation_on("email") {
            TenancyError::InvitationConflict
        } else {
            e.into()
        }
    })?;
    let (tenant_name, inviter_name, inviter_email) = mail_names(&mut tx, scope, inviter).await?;
    identity
        .mailer()
        .enqueue(
            &mut tx,
            new.email.as_str(),
            "invitation",
            &json!({
                "inviter_name": inviter_name,
                "inviter_email": inviter_email,
                "tenant_name": tenant_name,
                "email": new.email.as_str(),
                "role": new.role,
                "link": identity.link(ACCEPT_PATH, &token),
                "expires_in_days": INVITATION_TTL.num_days(),
            }),
        )
        .await?;
    for earlier in &replaced {
        record_change(
            &mut tx,
            scope,
            Entry::new("invitation.revoked", "invitation", earlier.id)
                .with_summary(json!({"reason": "replaced", "replaced_by": id})),
            Event::new(EventType::InvitationRevoked, subject(earlier.id), earlier),
        )
        .await?;
    }
    let invitation = Invitation {
        id,
        tenant_id: scope.tenant_id(),
        email: new.email.as_str().to_owned(),
        role: new.role,
        project_id: new.project_id,
        invited_by: inviter,
        created_at: now,
        expires_at,
    };
    record_change(
        &mut tx,
        scope,
        Entry::new("invitation.created", "invitation", id).with_summary(json!({
            "email": invitation.email,
            "role": invitation.role,
            "project_id": invitation.project_id,
            "expires_at": expires_at,
        })),
        Event::new(EventType::InvitationCreated, subject(id), &invitation),
    )
    .await?;
    tx.commit().await?;
    identity.mailer().wake();
    tracing::info!(tenant_id = %scope.tenant_id(), invitation_id = %id, replaced = replaced.len(), "invitation sent");
    Ok(invitation)
}

/// Revokes the pending invitations `inviter` sent that they could no longer send: all of
/// them when `holds` is `None` (they left or were removed), else those whose role needs more
/// than `holds` (they were demoted). Each is audited with `reason`. Accepting re-checks the
/// inviter's rights anyway; this keeps the list and the links truthful.
pub(crate) async fn revoke_sent_by(
    tx: &mut Tx,
    scope: &TenantScope,
    inviter: UserId,
    holds: Option<PermissionSet>,
    reason: &str,
) -> Result<usize, TenancyError> {
    let now = tx.now();
    let sent: Vec<Invitation> = tx
        .fetch_all(
            Query::select()
                .columns(Invitation::COLUMNS)
                .from("invitations")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("invited_by").eq(inviter))
                .cond_where(pending(now)),
        )
        .await?;
    let mut revoked = 0;
    for invitation in sent {
        let still_grantable = match holds {
            None => false,
            Some(holds) => resolve(tx, scope, &invitation.role)
                .await
                .is_ok_and(|role| may_grant(holds, role.permissions)),
        };
        if still_grantable {
            continue;
        }
        tx.execute(
            Query::update()
                .table("invitations")
                .value("revoked_at", now)
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(invitation.id))
                .cond_where(pending(now)),
        )
        .await?;
        record_change(
            tx,
            scope,
            Entry::new("invitation.revoked", "invitation", invitation.id).with_summary(json!({
                "email": invitation.email,
                "role": invitation.role,
                "reason": reason,
            })),
            Event::new(
                EventType::InvitationRevoked,
                subject(invitation.id),
                &invitation,
            ),
        )
        .await?;
        revoked += 1;
    }
    Ok(revoked)
}

/// Pending invitations, newest first (`invitations:read`).
pub async fn list_invitations(
    db: &Db,
    scope: &TenantScope,
    page: &PageRequest,
) -> Result<Page<Invitation>, TenancyError> {
    require(scope, Permission::InvitationsRead)?;
    let mut q = Query::select();
    q.columns(Invitation::COLUMNS)
        .from("invitations")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .cond_where(pending(db.now()))
        .order_by("id", Order::Desc)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        q.and_where(Expr::col("id").lt(after.0));
    }
    let mut tx = db.begin_tenant_read(scope).await?;
    let rows: Vec<Invitation> = tx.fetch_all(&q).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |i| i.id.as_uuid()))
}

/// Revokes a pending invitation (`members:manage`; not one whose role grants more than the
/// caller holds). Its link stops working. Unknown, foreign, used or expired → `NotFound`.
pub async fn revoke_invitation(
    db: &Db,
    scope: &TenantScope,
    id: InvitationId,
) -> Result<(), TenancyError> {
    require(scope, Permission::MembersManage)?;
    let now = db.now();
    let mut tx = db.begin_tenant(scope).await?;
    let invitation: Invitation = tx
        .fetch_optional(
            Query::select()
                .columns(Invitation::COLUMNS)
                .from("invitations")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id))
                .cond_where(pending(now)),
        )
        .await?
        .ok_or(TenancyError::NotFound)?;
    // A role that no longer exists grants nothing: anyone with members:manage may revoke it.
    if let Ok(role) = resolve(&mut tx, scope, &invitation.role).await {
        check_grantable(scope, role.permissions)?;
    }
    let revoked = tx
        .execute(
            Query::update()
                .table("invitations")
                .value("revoked_at", now)
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id))
                .cond_where(pending(now)),
        )
        .await?;
    if revoked != 1 {
        return Err(TenancyError::NotFound);
    }
    record_change(
        &mut tx,
        scope,
        Entry::new("invitation.revoked", "invitation", id)
            .with_summary(json!({"email": invitation.email, "role": invitation.role})),
        Event::new(EventType::InvitationRevoked, subject(id), &invitation),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
