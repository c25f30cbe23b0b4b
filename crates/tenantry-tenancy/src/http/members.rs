//! `/api/v1/tenants/{tenant_id}/members*`.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_core::{Email, Page, Problem, UserId, page::PageParams, problem::Validator};
use tenantry_db::Db;
use tenantry_http::{Gate, Ids, Json, Query, TenantCtx};
use tenantry_identity::Identity;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::TenancyConfig;
use crate::{Invitation, Member, MemberRef};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
    Identity: FromRef<S>,
    TenancyConfig: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(get_member, change_role, remove_member))
}

/// Members and their roles (`members:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/members", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), PageParams),
    responses((status = 200, body = Page<Member>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_members(
    State(db): State<Db>,
    ctx: TenantCtx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Member>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(crate::list_members(&db, &ctx.scope, &page).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// Whom to add: `user_id` or `email` (exactly one). Only `email` can bring someone new in
    /// (as an invitation); see the operation.
    #[schema(format = Uuid)]
    pub user_id: Option<String>,
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    /// A role name, e.g. `member`.
    #[schema(example = "member")]
    pub role: String,
}

/// The answer to adding a member: the invitation that was mailed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberInvited {
    pub invitation: Invitation,
}

/// Add a member (`members:manage`). Nobody becomes a member without consenting: with `email`
/// this sends an invitation exactly like `POST …/invitations` (same rules, limits and mail)
/// and answers 202 `{invitation}` — the same answer whether or not the address has an
/// account. The membership exists once the invitee accepts the mailed link. With `user_id`,
/// an id that already is a member → 409; any other id → 422 on `user_id` (whether or not the
/// account exists): invite them by address instead. Granting a role with permissions the
/// caller lacks → 403 `forbidden`; a sender whose own address is unverified → 403
/// `email_not_verified`; over the hourly invitation limits → 429 `rate_limited` with
/// `Retry-After`; too many pending invitations → 409 `too_many_pending_invitations`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/members", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = AddMember,
    responses((status = 202, description = "Invitation sent", body = MemberInvited),
        (status = 401, body = Problem),
        (status = 403, description = "Missing permission, or the sender's address is not verified (`email_not_verified`)", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "Already a member, or too many pending invitations", body = Problem),
        (status = 422, body = Problem)))]
pub async fn add_member(
    State(identity): State<Identity>,
    State(config): State<TenancyConfig>,
    ctx: TenantCtx,
    Json(body): Json<AddMember>,
) -> Result<impl IntoResponse, Problem> {
    let mut v = Validator::new();
    let who = match (body.user_id.as_deref(), body.email.as_deref()) {
        (Some(id), None) => match id.parse::<UserId>() {
            Ok(id) => Some(MemberRef::Id(id)),
            Err(_) => {
                v.error("user_id", "must be a UUID");
                None
            }
        },
        (None, Some(email)) => v.field("email", Email::parse(email)).map(MemberRef::Email),
        _ => {
            v.error("user_id", "give exactly one of user_id and email");
            None
        }
    };
    v.finish()?;
    let who = who.ok_or_else(Problem::validation_failed)?;
    let invitation = crate::add_member(&identity, &ctx.scope, who, &body.role, &config).await?;
    Ok((StatusCode::ACCEPTED, Json(MemberInvited { invitation })))
}

/// One member (`members:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Member), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_member(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(user_id): Ids<UserId>,
) -> Result<Json<Member>, Problem> {
    Ok(Json(crate::get_member(&db, &ctx.scope, user_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    pub role: String,
}

/// Change a member's role (`members:manage`). Demoting the last owner → 409.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Last owner", body = Problem),
        (status = 422, body = Problem)))]
pub async fn change_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    user_id: Result<Ids<UserId>, Problem>,
    Json(body): Json<ChangeRole>,
) -> Result<Json<Member>, Problem> {
    let Ids(user_id) = user_id?;
    Ok(Json(
        crate::change_member_role(&db, &ctx.scope, user_id, &body.role).await?,
    ))
}

/// Remove a member (`members:manage`, or yourself to leave). Removing the last owner → 409.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Last owner", body = Problem)))]
pub async fn remove_member(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(user_id): Ids<UserId>,
) -> Result<StatusCode, Problem> {
    crate::remove_member(&db, &ctx.scope, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
