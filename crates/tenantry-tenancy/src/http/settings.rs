//! `/api/v1/tenants/{tenant_id}/settings`: the tenant's settings, validated against
//! [`TenantSettings`].

use axum::extract::{FromRef, State};
use tenantry_core::{Problem, problem::Validator};
use tenantry_db::Db;
use tenantry_http::{Gate, Json, TenantCtx};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{TenantSettings, TenantSettingsPatch};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// The tenant's settings, every key present (defaults where none was chosen) (`tenant:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/settings", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = TenantSettings), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_settings(
    State(db): State<Db>,
    ctx: TenantCtx,
) -> Result<Json<TenantSettings>, Problem> {
    Ok(Json(crate::get_settings(&db, &ctx.scope).await?))
}

/// Change settings (`tenant:update`). A merge: keys sent are set, `null` resets a key to its
/// default, keys left out keep their value. Unknown keys and invalid values → 422 naming
/// each field. Answers the settings after the change.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/settings", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = TenantSettingsPatch,
    responses((status = 200, body = TenantSettings), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_settings(
    State(db): State<Db>,
    ctx: TenantCtx,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<TenantSettings>, Problem> {
    let mut v = Validator::new();
    let patch = TenantSettingsPatch::parse(&body, "", &mut v);
    v.finish()?;
    let patch = patch.ok_or_else(Problem::validation_failed)?;
    Ok(Json(crate::update_settings(&db, &ctx.scope, &patch).await?))
}
