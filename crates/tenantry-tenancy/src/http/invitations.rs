//! `/api/v1/tenants/{tenant_id}/invitations*` (send, list, revoke) and
//! `/api/v1/invitations/{token}*` (preview and accept with the mailed token).

use std::sync::Arc;

use axum::{
    extract::{FromRef, Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use tenantry_core::{
    Email, InvitationId, Page, Problem, ProjectId, page::PageParams, problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Bucket, Caller, Client, Gate, Ids, Json, Limits, Query, TenantCtx};
use tenantry_identity::{Authenticated, Identity};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::TenancyConfig;
use crate::{Invitation, InvitationPreview, NewInvitation, TenantMembership};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Db: FromRef<S>,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
    TenancyConfig: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(preview_invitation))
        .routes(routes!(accept_invitation))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// A role name, e.g. `member`.
    #[schema(example = "member")]
    pub role: String,
    /// Also assign the role in this project of the tenant.
    #[schema(format = Uuid)]
    pub project_id: Option<String>,
}

/// Invite an e-mail address (`members:manage`). The link
/// `<public_url>/invitations/accept?token=…` is mailed to it (single use, valid 7 days) and
/// shown to nobody else. Re-inviting an address replaces its pending invitation (the old link
/// stops working). A role with permissions the caller lacks → 403 `forbidden`; a sender
/// whose own address is not verified (or a guest) → 403 `email_not_verified`; an address
/// that is already a member → 409 `already_exists`; the tenant's cap on pending invitations
/// reached → 409 `too_many_pending_invitations`; the sender's or the tenant's hourly limit
/// reached → 429 `rate_limited` with `Retry-After`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/invitations", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = CreateInvitation,
    responses((status = 201, body = Invitation), (status = 401, body = Problem),
        (status = 403, description = "Missing permission, or the sender's address is not verified (`email_not_verified`)", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "Already a member, or too many pending invitations", body = Problem),
        (status = 422, description = "Invalid e-mail, unknown role or project", body = Problem)))]
pub async fn create_invitation(
    State(identity): State<Identity>,
    State(config): State<TenancyConfig>,
    ctx: TenantCtx,
    Json(body): Json<CreateInvitation>,
) -> Result<impl IntoResponse, Problem> {
    let mut v = Validator::new();
    let email = v.field("email", Email::parse(&body.email));
    let project_id = match body.project_id.as_deref().map(str::parse::<ProjectId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            v.error("project_id", "must be a UUID");
            None
        }
    };
    v.finish()?;
    let email = email.ok_or_else(Problem::validation_failed)?;
    let invitation = crate::create_invitation(
        &identity,
        &ctx.scope,
        NewInvitation {
            email,
            role: body.role,
            project_id,
        },
        &config,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// Pending invitations (not accepted, revoked or expired), newest first (`invitations:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/invitations", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), PageParams),
    responses((status = 200, body = Page<Invitation>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_invitations(
    State(db): State<Db>,
    ctx: TenantCtx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Invitation>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(crate::list_invitations(&db, &ctx.scope, &page).await?))
}

/// Revoke a pending invitation (`members:manage`); its link stops working. An id that is
/// unknown, of another tenant, or no longer pending → 404.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/invitations/{invitation_id}",
    tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("invitation_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn revoke_invitation(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<InvitationId>,
) -> Result<StatusCode, Problem> {
    crate::revoke_invitation(&db, &ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an invitation offers, for the page its link opens; no authentication (the token is
/// the credential). Unknown, used, revoked or expired → 400 `link_invalid`.
#[utoipa::path(get, path = "/api/v1/invitations/{token}", tag = "tenancy",
    params(("token" = String, Path, description = "The token of the mailed link")),
    responses((status = 200, body = InvitationPreview),
        (status = 400, description = "Unknown, used, revoked or expired (`link_invalid`)", body = Problem),
        (status = 429, body = Problem)))]
pub async fn preview_invitation(
    State(db): State<Db>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<InvitationPreview>, Problem> {
    limits.check(Bucket::Token, &client)?;
    Ok(Json(crate::preview_invitation(&db, &token).await?))
}

/// Accept an invitation as the signed-in user, whose e-mail address must be the invited one
/// (else 403 `email_mismatch`; guests cannot accept) and verified (else 403
/// `email_not_verified`; the invitation stays pending — verify, then accept again). Creates
/// the membership with the role (and the project assignment, if the invitation names a
/// project). Answers the tenant and the role. Unknown, used, revoked or expired, or sent by
/// a member who can no longer grant its role (removed, demoted, disabled) → 400
/// `link_invalid`; already a member → 409.
#[utoipa::path(post, path = "/api/v1/invitations/{token}/accept", tag = "tenancy",
    security(("bearer" = [])),
    params(("token" = String, Path, description = "The token of the mailed link")),
    responses((status = 200, body = TenantMembership),
        (status = 400, description = "Unknown, used, revoked or expired (`link_invalid`)", body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "Signed in with another address (`email_mismatch`), an unverified address (`email_not_verified`), or the tenant is suspended", body = Problem),
        (status = 409, description = "Already a member", body = Problem),
        (status = 429, body = Problem)))]
pub async fn accept_invitation(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<TenantMembership>, Problem> {
    limits.check(Bucket::Token, &client)?;
    Ok(Json(
        crate::accept_invitation(&identity, &caller.user, &token, &client).await?,
    ))
}
