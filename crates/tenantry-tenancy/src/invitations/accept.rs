//! The invitee's side: preview and accept with the mailed token.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Query};
use serde::Serialize;
use serde_json::json;
use tenantry_audit::Entry;
use tenantry_core::{Origin, ProjectId, TenantId, UserId};
use tenantry_db::{Db, DbError, FromRow, Row, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};
use tenantry_identity::directory::{AccountColumn, account_column, join_accounts};
use tenantry_identity::{Identity, User};
use utoipa::ToSchema;

use super::{Invitation, full_name, may_grant, pending};
use crate::{
    TenancyError, TenantMembership,
    authz::{current_permissions, scope_for_invitation},
    members::insert_membership,
    model::TenantStatus,
    project_members::upsert_project_role,
    roles::resolve,
    tenants,
};

/// Length of a token from `tenantry_identity::new_link_token` (32 bytes, base64url).
const TOKEN_LEN: usize = 43;

/// What the bearer of an invitation link is shown before accepting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationPreview {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    /// The invited address: accepting needs an account with it.
    pub email: String,
    pub role: String,
    pub project_id: Option<ProjectId>,
    /// The inviting member's name.
    pub inviter_name: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub expires_at: DateTime<Utc>,
}

/// An invitation found by its token, with its tenant and inviter.
struct Found {
    invitation: Invitation,
    accepted_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    tenant_name: String,
    tenant_status: TenantStatus,
    inviter_name: String,
}

impl Found {
    fn select(digest: &[u8; 32]) -> sea_query::SelectStatement {
        let mut q = Query::select();
        q.columns(Invitation::COLUMNS.map(|c| ("invitations", c)))
            .columns([
                ("invitations", "accepted_at"),
                ("invitations", "revoked_at"),
            ])
            .columns([("tenants", "name"), ("tenants", "status")])
            .columns([
                account_column(AccountColumn::FirstName),
                account_column(AccountColumn::LastName),
            ])
            .from("invitations")
            .inner_join(
                "tenants",
                Expr::col(("tenants", "id")).equals(("invitations", "tenant_id")),
            )
            .and_where(Expr::col(("invitations", "token_hash")).eq(digest.to_vec()));
        join_accounts(&mut q, ("invitations", "invited_by"));
        q
    }

    /// Whether the link still works: pending and in a tenant that was not deleted.
    fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.accepted_at.is_none()
            && self.revoked_at.is_none()
            && self.invitation.expires_at > now
            && self.tenant_status != TenantStatus::Deleted
    }
}

impl FromRow for Found {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            invitation: Invitation::from_row(row)?,
            accepted_at: row.opt_time()?,
            revoked_at: row.opt_time()?,
            tenant_name: row.string()?,
            tenant_status: TenantStatus::parse(&row.string()?)?,
            inviter_name: full_name(row.string()?, row.string()?),
        })
    }
}

/// The SHA-256 of a token; anything that cannot be one of ours is an invalid link.
fn digest(token: &str) -> Result<[u8; 32], TenancyError> {
    let well_formed = token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(TenancyError::InvitationInvalid);
    }
    tenantry_identity::link_token_digest(token)
        .try_into()
        .map_err(|_| TenancyError::Internal(anyhow::anyhow!("SHA-256 digest is not 32 bytes")))
}

/// Finds a usable invitation by its token (no authentication needed: the token is the
/// credential). Unknown, used, revoked, expired or of a deleted tenant → `InvitationInvalid`.
async fn find_usable(db: &Db, token: &str) -> Result<(Found, [u8; 32]), TenancyError> {
    let digest = digest(token)?;
    let mut tx = db.begin_secret_lookup(&digest, true).await?;
    let found: Option<Found> = tx.fetch_optional(&Found::select(&digest)).await?;
    tx.commit().await?;
    let found = found
        .filter(|f| f.is_usable(db.now()))
        .ok_or(TenancyError::InvitationInvalid)?;
    Ok((found, digest))
}

/// What the invitation offers: tenant, role, invited address, inviter, expiry.
pub async fn preview_invitation(db: &Db, token: &str) -> Result<InvitationPreview, TenancyError> {
    let (found, _) = find_usable(db, token).await?;
    Ok(InvitationPreview {
        tenant_id: found.invitation.tenant_id,
        tenant_name: found.tenant_name,
        email: found.invitation.email,
        role: found.invitation.role,
        project_id: found.invitation.project_id,
        inviter_name: found.inviter_name,
        expires_at: found.invitation.expires_at,
    })
}

/// Accepts the invitation as `user`, whose (non-guest) address must be the invited one and
/// verified: the link proves that someone reads the mailbox, not that this account's holder
/// does — an account registered with someone else's address must not collect their
/// invitations. An unverified account is refused and the invitation stays pending.
///
/// The inviter must still be able to send this invitation: an active member holding
/// `members:manage` and every permission of the role as it is defined now. Otherwise the
/// invitation is void and answers like a revoked one.
///
/// In one transaction: the invitation is claimed (exactly one of concurrent accepts wins),
/// the membership — and the project assignment, if any — is created, and both are audited.
pub async fn accept_invitation(
    identity: &Identity,
    user: &User,
    token: &str,
    origin: &Origin,
) -> Result<TenantMembership, TenancyError> {
    let (found, digest) = find_usable(identity.db(), token).await?;
    let invitation = found.invitation;
    if user.is_guest
        || !user
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&invitation.email))
    {
        return Err(TenancyError::EmailMismatch);
    }
    if !user.email_verified {
        return Err(TenancyError::InviteeNotVerified);
    }
    let now = identity.db().now();
    let scope = scope_for_invitation(invitation.tenant_id, user.id, origin);
    let mut tx = identity.db().begin_tenant(&scope).await?;
    let tenant = tenants::fetch(&mut tx, invitation.tenant_id)
        .await?
        .ok_or(TenancyError::InvitationInvalid)?;
    if tenant.status == TenantStatus::Suspended {
        return Err(TenancyError::Suspended);
    }
    if !tenant.settings.admits_email(Some(&invitation.email)) {
        return Err(TenancyError::DomainNotAllowed);
    }
    let inviter = current_permissions(&mut tx, invitation.tenant_id, invitation.invited_by).await?;
    let role = resolve(&mut tx, &scope, &invitation.role).await.ok();
    if !inviter
        .zip(role)
        .is_some_and(|(holds, role)| may_grant(holds, role.permissions))
    {
        tracing::info!(tenant_id = %invitation.tenant_id, invitation_id = %invitation.id,
            "invitation void: the inviter can no longer grant its role");
        return Err(TenancyError::InvitationInvalid);
    }
    let claimed = tx
        .execute(
            Query::update()
                .table("invitations")
                .value("accepted_at", now)
                .value("accepted_by", user.id)
                .and_where(Expr::col("tenant_id").eq(invitation.tenant_id))
                .and_where(Expr::col("id").eq(invitation.id))
                .and_where(Expr::col("token_hash").eq(digest.to_vec()))
                .cond_where(pending(now)),
        )
        .await?;
    if claimed != 1 {
        return Err(TenancyError::InvitationInvalid);
    }
    add_member_from(&mut tx, &scope, &invitation, user.id, now).await?;
    let member = crate::members::member_in(&mut tx, &scope, user.id)
        .await?
        .ok_or_else(|| TenancyError::Internal(anyhow::anyhow!("the new member is missing")))?;
    record_change(
        &mut tx,
        &scope,
        Entry::new("invitation.accepted", "invitation", invitation.id).with_summary(json!({
            "email": invitation.email,
            "role": invitation.role,
            "project_id": invitation.project_id,
        })),
        Event::new(
            EventType::InvitationAccepted,
            super::subject(invitation.id),
            &invitation,
        ),
    )
    .await?;
    record_change(
        &mut tx,
        &scope,
        Entry::new("member.added", "member", user.id).with_summary(json!({
            "role": invitation.role,
            "project_id": invitation.project_id,
            "invitation_id": invitation.id,
        })),
        Event::new(
            EventType::MemberAdded,
            crate::members::subject(user.id),
            &member,
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %invitation.tenant_id, user_id = %user.id, invitation_id = %invitation.id, "invitation accepted");
    Ok(TenantMembership {
        tenant,
        role: invitation.role,
    })
}

/// The membership (and project assignment) an accepted invitation grants.
async fn add_member_from(
    tx: &mut Tx,
    scope: &TenantScope,
    invitation: &Invitation,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    insert_membership(tx, scope.tenant_id(), user_id, &invitation.role, now).await?;
    if let Some(project) = invitation.project_id {
        upsert_project_role(
            tx,
            scope.tenant_id(),
            project,
            user_id,
            &invitation.role,
            now,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        let (token, hash) = tenantry_identity::new_link_token();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(digest(&token).unwrap().to_vec(), hash);
        for bad in [
            "",
            "short",
            &format!("{token}x"),
            &token.replace(&token[..1], "+"),
        ] {
            assert!(
                matches!(digest(bad), Err(TenancyError::InvitationInvalid)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_join_without_stray_spaces() {
        assert_eq!(full_name("Ada".into(), "Lovelace".into()), "Ada Lovelace");
        assert_eq!(full_name("Ada".into(), String::new()), "Ada");
        assert_eq!(full_name(String::new(), "Lovelace".into()), "Lovelace");
    }
}
