//! `/api/v1/admin/users*`: platform administration of accounts. Every handler takes
//! [`AdminCtx`], so anonymous callers get 401 and everyone but an active platform
//! administrator 403 `platform_admin_required`.

use axum::extract::{FromRef, State};
use serde::Deserialize;
use tenantry_core::{Page, Problem, UserId, problem::Validator};
use tenantry_http::{
    AdminCtx, Gate, Ids, Json, OptionalJson, Query,
    admin::{AdminAction, page_and_query},
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AdminUser, Identity, UserFilter, UserStatus};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Identity: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Case-insensitive substring of the e-mail address (at most 100 characters).
    pub q: Option<String>,
    /// Only accounts in this status.
    pub status: Option<UserStatus>,
    /// Only platform administrators (`true`) or everyone else (`false`).
    pub platform_admin: Option<bool>,
    /// Only guests (`true`) or registered accounts (`false`).
    pub guest: Option<bool>,
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every account, newest first.
#[utoipa::path(get, path = "/api/v1/admin/users",
    operation_id = "admin_list_users", tag = "admin", security(("bearer" = [])),
    params(UserListParams),
    responses((status = 200, body = Page<AdminUser>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(
    State(identity): State<Identity>,
    ctx: AdminCtx,
    Query(params): Query<UserListParams>,
) -> Result<Json<Page<AdminUser>>, Problem> {
    let mut v = Validator::new();
    let (page, q) = page_and_query(params.limit, params.cursor, params.q, &mut v)?;
    v.finish()?;
    let filter = UserFilter {
        q,
        status: params.status,
        platform_admin: params.platform_admin,
        guest: params.guest,
    };
    Ok(Json(identity.list_users(&ctx.scope, &filter, &page).await?))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}",
    operation_id = "admin_get_user", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AdminUser), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(identity): State<Identity>,
    ctx: AdminCtx,
    Ids(id): Ids<UserId>,
) -> Result<Json<AdminUser>, Problem> {
    Ok(Json(identity.admin_user(&ctx.scope, id).await?))
}

/// Disable an account: it can no longer sign in (401 `invalid_credentials`, as for a wrong
/// password), every session ends at once, and tokens of external issuers are refused.
/// Disabling yourself or the last active platform administrator → 409.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable",
    operation_id = "admin_disable_user", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<AdminAction>, description = "Optional"),
    responses((status = 200, body = AdminUser), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Yourself, the last administrator, or already disabled", body = Problem),
        (status = 422, body = Problem)))]
pub async fn disable_user(
    State(identity): State<Identity>,
    ctx: AdminCtx,
    id: Result<Ids<UserId>, Problem>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminUser>, Problem> {
    let Ids(id) = id?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        identity
            .disable_user(&ctx.scope, id, reason.as_deref())
            .await?,
    ))
}

/// Enable a disabled account (it signs in again; ended sessions stay ended).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable",
    operation_id = "admin_enable_user", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<AdminAction>, description = "Optional"),
    responses((status = 200, body = AdminUser), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already active", body = Problem),
        (status = 422, body = Problem)))]
pub async fn enable_user(
    State(identity): State<Identity>,
    ctx: AdminCtx,
    id: Result<Ids<UserId>, Problem>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminUser>, Problem> {
    let Ids(id) = id?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        identity
            .enable_user(&ctx.scope, id, reason.as_deref())
            .await?,
    ))
}
