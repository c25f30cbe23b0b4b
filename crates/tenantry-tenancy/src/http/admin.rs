//! `/api/v1/admin/tenants*`: platform administration of tenants. Every handler takes
//! [`AdminCtx`], so anonymous callers get 401 and everyone but an active platform
//! administrator 403 `platform_admin_required`.

use axum::extract::{FromRef, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenantry_core::{Page, Problem, TenantId, problem::Validator};
use tenantry_db::Db;
use tenantry_http::{
    AdminCtx, Gate, Ids, Json, OptionalJson, Query,
    admin::{AdminAction, page_and_query},
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    TenantStatus,
    admin::{AdminTenant, TenantFilter},
};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_tenants))
        .routes(routes!(get_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(reactivate_tenant))
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
    State(db): State<Db>,
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
        crate::admin::list_tenants(&db, &ctx.scope, &filter, &page).await?,
    ))
}

/// One tenant with its member count, whatever its status.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}",
    operation_id = "admin_get_tenant", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AdminTenant), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(db): State<Db>,
    ctx: AdminCtx,
    Ids(id): Ids<TenantId>,
) -> Result<Json<AdminTenant>, Problem> {
    Ok(Json(crate::admin::get_tenant(&db, &ctx.scope, id).await?))
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
    State(db): State<Db>,
    ctx: AdminCtx,
    id: Result<Ids<TenantId>, Problem>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminTenant>, Problem> {
    let Ids(id) = id?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        crate::admin::suspend_tenant(&db, &ctx.scope, id, reason.as_deref()).await?,
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
    State(db): State<Db>,
    ctx: AdminCtx,
    id: Result<Ids<TenantId>, Problem>,
    OptionalJson(body): OptionalJson<AdminAction>,
) -> Result<Json<AdminTenant>, Problem> {
    let Ids(id) = id?;
    let reason = AdminAction::reason(body)?;
    Ok(Json(
        crate::admin::reactivate_tenant(&db, &ctx.scope, id, reason.as_deref()).await?,
    ))
}
