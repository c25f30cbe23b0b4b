//! `/api/v1/tenants*` (tenant profile), the caller's tenants (`/api/v1/users/me/tenants`)
//! and the permission catalog.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use tenantry_core::{
    Page, Permission, Problem, ResourceName, Slug, page::PageParams, problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Caller, Client, Gate, Json, Query, TenantCtx};
use tenantry_identity::{Authenticated, Identity};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    NewTenant, PermissionView, Tenant, TenantChange, TenantMembership, TenantSettingsPatch, authz,
};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(my_tenants))
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(list_permissions))
}

/// The tenants the caller belongs to, with their role in each.
#[utoipa::path(get, path = "/api/v1/users/me/tenants", tag = "identity", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<TenantMembership>), (status = 401, body = Problem)))]
pub async fn my_tenants(
    State(db): State<Db>,
    Caller(caller): Caller<Authenticated>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<TenantMembership>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(
        crate::list_my_tenants(&db, &authz::authorize_user(&caller.user), &page).await?,
    ))
}

/// The caller's tenants (same as `/users/me/tenants`).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenancy", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<TenantMembership>), (status = 401, body = Problem)))]
pub async fn list_tenants(
    State(db): State<Db>,
    Caller(caller): Caller<Authenticated>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<TenantMembership>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(
        crate::list_my_tenants(&db, &authz::authorize_user(&caller.user), &page).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(example = "Acme Retail")]
    pub name: String,
    /// URL-safe identifier; derived from the name when omitted.
    #[schema(example = "acme-retail")]
    pub slug: Option<String>,
}

/// Create a tenant; the caller becomes its owner. Guests cannot (403 `guest_not_allowed`).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenancy", security(("bearer" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 401, body = Problem),
        (status = 403, description = "A guest account (`guest_not_allowed`)", body = Problem),
        (status = 409, description = "Slug taken", body = Problem), (status = 422, body = Problem)))]
pub async fn create_tenant(
    State(db): State<Db>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<CreateTenant>,
) -> Result<impl IntoResponse, Problem> {
    let mut v = Validator::new();
    let name = v.field("name", ResourceName::parse(&body.name));
    let slug = body
        .slug
        .as_deref()
        .and_then(|s| v.field("slug", Slug::parse(s)));
    v.finish()?;
    let name = name.ok_or_else(Problem::validation_failed)?;
    let tenant = crate::create_tenant(&db, &caller.user, NewTenant { name, slug }, &client).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// A tenant (`tenant:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Tenant), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_tenant(State(db): State<Db>, ctx: TenantCtx) -> Result<Json<Tenant>, Problem> {
    Ok(Json(crate::get_tenant(&db, &ctx.scope).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    /// Merged into the settings exactly as by `PATCH /tenants/{id}/settings` (same schema,
    /// `null` resets a key); errors name `settings.<key>`.
    #[schema(value_type = Option<TenantSettingsPatch>)]
    pub settings: Option<serde_json::Value>,
}

/// Change a tenant's name or settings (`tenant:update`).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_tenant(
    State(db): State<Db>,
    ctx: TenantCtx,
    Json(body): Json<UpdateTenant>,
) -> Result<Json<Tenant>, Problem> {
    let mut v = Validator::new();
    let change = TenantChange {
        name: body
            .name
            .as_deref()
            .and_then(|n| v.field("name", ResourceName::parse(n))),
        settings: body
            .settings
            .and_then(|s| TenantSettingsPatch::parse(&s, "settings", &mut v)),
    };
    v.finish()?;
    Ok(Json(crate::update_tenant(&db, &ctx.scope, change).await?))
}

/// Delete a tenant (`tenant:delete`). Soft delete: data is kept for the retention window.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn delete_tenant(State(db): State<Db>, ctx: TenantCtx) -> Result<StatusCode, Problem> {
    crate::delete_tenant(&db, &ctx.scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PermissionList {
    pub items: Vec<PermissionView>,
}

/// The permission catalog.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "tenancy",
    responses((status = 200, body = PermissionList)))]
pub async fn list_permissions() -> Json<PermissionList> {
    Json(PermissionList {
        items: Permission::ALL
            .iter()
            .copied()
            .map(PermissionView::from)
            .collect(),
    })
}
