//! `/api/v1/admin/tenants*` and `/api/v1/admin/users*`: platform administration. Every
//! handler takes [`AdminCtx`], so anonymous callers get 401 and everyone but an active
//! platform administrator 403 `platform_admin_required`.

use axum::{
    extract::{FromRequest, Path, Request, State},
    http::header,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, de::DeserializeOwned};
use tenantry_core::{
    Page, Problem, TenantId, UserId,
    page::{PageParams, PageRequest},
    problem::Validator,
};
use tenantry_identity::{AdminUser, UserFilter, UserStatus};
use tenantry_tenancy::{
    TenantStatus,
    admin::{AdminTenant, MAX_QUERY_CHARS, TenantFilter},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    extract::{AdminCtx, Json, Query, parse_id},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants))
        .routes(routes!(get_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(reactivate_tenant))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
}

/// A JSON body that may be left out entirely (no `Content-Type`, no bytes) → `None`;
/// a body that is sent is read as by [`Json`] (415, 400, 422).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let headers = req.headers();
        let absent = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|length| length.as_bytes() == b"0");
        if absent {
            return Ok(Self(None));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(body)| Self(Some(body)))
    }
}

/// Why an administrator acts; kept in the audit trail.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAction {
    /// At most 500 characters.
    #[schema(example = "unpaid invoices since March")]
    pub reason: Option<String>,
}

const MAX_REASON_CHARS: usize = 500;

impl AdminAction {
    fn reason(body: Option<Self>) -> Result<Option<String>, Problem> {
        let reason = body
            .and_then(|b| b.reason)
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(Problem::validation_failed()
                .with_detail("The request has invalid fields.")
                .with_field("reason", "must be at most 500 characters"));
        }
        Ok(reason)
    }
}

fn page_and_query(
    limit: Option<u32>,
    cursor: Option<String>,
    q: Option<String>,
    v: &mut Validator,
) -> Result<(PageRequest, Option<String>), Problem> {
    let page = PageRequest::try_from(PageParams { limit, cursor })?;
    let q = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    if q.as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        v.error("q", "must be at most 100 characters");
    }
    Ok((page, q))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantListParams {
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
    /// Case-insensitive substring of the name or the slug (at most 100 characters).
    pub q: Option<String>,
    /// Created at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every tenant, newest first, including suspended and soft-deleted ones (until purged).
#[utoipa::path(get, path = "/api/v1/admin/tenants",
    operation_id = "admin_list_tenants", tag = "admin", security(("bearer" = [])),
    params(TenantListParams),
    responses((status = 200, body = Page<AdminTenant>), (status = 401, body = Problem),
        (status = 403, description = "Not a platform administrator", body = Problem),
        (status = 422, body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Query(params): Query<TenantListParams>,
) -> Result<Json<Page<AdminTenant>>, Problem> {
    let mut v = Validator::new();
    let (page, q) = page_and_query(params.limit, params.cursor, params.q, &mut v)?;
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        v.error("to", "must be after from");
    }
    v.finish()?;
    let filter = TenantFilter {
        status: params.status,
        q,
        created_from: params.from,
        created_to: params.to,
    };
    Ok(Json(
        tenantry_tenancy::admin::list_tenants(&state.db, &ctx.scope, &filter, &page).await?,
    ))
}

/// One tenant with its member count, whatever its status.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}",
    operation_id = "admin_get_tenant", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AdminTenant), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
) -> Result<Json<AdminTenant>, Problem> {
    let id: TenantId = parse_id(&id)?;
    Ok(Json(
        tenantry_tenancy::admin::get_tenant(&state.db, &ctx.scope, id).await?,
    ))
}

/// Suspend a tenant: its members get 403 `tenant_suspended` on every tenant path until it is
/// reactivated. The body (optional) gives a reason for the audit trail.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/suspend",
    operation_id = "admin_suspend_tenant", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<AdminAction>, description = "Optional"),
    responses((status = 200, body = AdminTenant), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "Unknown or deleted", body = Problem),
        (status = 409, description = "Already suspended", body = Problem),
        (status = 422, body = Problem)))]
pub async fn suspend_tenant(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminTenant>, Problem> {
    let id: TenantId = parse_id(&id)?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        tenantry_tenancy::admin::suspend_tenant(&state.db, &ctx.scope, id, reason.as_deref())
            .await?,
    ))
}

/// Reactivate a suspended tenant.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/reactivate",
    operation_id = "admin_reactivate_tenant", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<AdminAction>, description = "Optional"),
    responses((status = 200, body = AdminTenant), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "Unknown or deleted", body = Problem),
        (status = 409, description = "Not suspended", body = Problem),
        (status = 422, body = Problem)))]
pub async fn reactivate_tenant(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminTenant>, Problem> {
    let id: TenantId = parse_id(&id)?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        tenantry_tenancy::admin::reactivate_tenant(&state.db, &ctx.scope, id, reason.as_deref())
            .await?,
    ))
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
    State(state): State<AppState>,
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
    Ok(Json(
        state
            .identity
            .list_users(&ctx.scope, &filter, &page)
            .await?,
    ))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}",
    operation_id = "admin_get_user", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AdminUser), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
) -> Result<Json<AdminUser>, Problem> {
    let id: UserId = parse_id(&id)?;
    Ok(Json(state.identity.admin_user(&ctx.scope, id).await?))
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
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminUser>, Problem> {
    let id: UserId = parse_id(&id)?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        state
            .identity
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
    State(state): State<AppState>,
    ctx: AdminCtx,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminUser>, Problem> {
    let id: UserId = parse_id(&id)?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        state
            .identity
            .enable_user(&ctx.scope, id, reason.as_deref())
            .await?,
    ))
}
