//! `/api/v1/tenants/{tenant_id}/members*`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use tenantry_core::{Email, Page, Problem, UserId, page::PageParams, problem::Validator};
use tenantry_tenancy::{Member, MemberRef};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    extract::{Json, Query, TenantCtx, parse_id},
};

pub fn router() -> OpenApiRouter<AppState> {
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
    State(state): State<AppState>,
    ctx: TenantCtx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Member>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(
        tenantry_tenancy::list_members(&state.db, &ctx.scope, &page).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The account to add: `user_id` or `email` (exactly one).
    pub user_id: Option<String>,
    pub email: Option<String>,
    /// A role name, e.g. `member`.
    pub role: String,
}

/// Add an existing account as a member (`members:manage`). Granting a role with
/// permissions the caller lacks (e.g. an admin granting `owner`) → 403.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/members", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = AddMember,
    responses((status = 201, body = Member), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Already a member", body = Problem),
        (status = 422, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
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
    let member = tenantry_tenancy::add_member(&state.identity, &ctx.scope, who, &body.role).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// One member (`members:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Member), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_member(
    State(state): State<AppState>,
    ctx: TenantCtx,
    Path(ids): Path<(String, String)>,
) -> Result<Json<Member>, Problem> {
    let user_id: UserId = parse_id(&ids.1)?;
    Ok(Json(
        tenantry_tenancy::get_member(&state.db, &ctx.scope, user_id).await?,
    ))
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
    State(state): State<AppState>,
    ctx: TenantCtx,
    Path(ids): Path<(String, String)>,
    Json(body): Json<ChangeRole>,
) -> Result<Json<Member>, Problem> {
    let user_id: UserId = parse_id(&ids.1)?;
    Ok(Json(
        tenantry_tenancy::change_member_role(&state.db, &ctx.scope, user_id, &body.role).await?,
    ))
}

/// Remove a member (`members:manage`, or yourself to leave). Removing the last owner → 409.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Last owner", body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    ctx: TenantCtx,
    Path(ids): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let user_id: UserId = parse_id(&ids.1)?;
    tenantry_tenancy::remove_member(&state.db, &ctx.scope, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
