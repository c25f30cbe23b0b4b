//! `/api/v1/tenants/{tenant_id}/api-keys*`.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenantry_core::{
    ApiKeyId, Page, Problem, ProjectId, ResourceName, page::PageParams, permission::PermissionSet,
    problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Gate, Ids, Json, Query, TenantCtx};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiKey, CreatedApiKey, KeyGrant, NewApiKey};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(get_api_key, revoke_api_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(example = "CI deploys")]
    pub name: String,
    /// A role name (system or custom) — or give `permissions` instead (exactly one).
    pub role: Option<String>,
    /// An explicit subset of the catalog.
    #[schema(example = json!(["projects:read"]))]
    pub permissions: Option<Vec<String>>,
    /// Confine the key to one project: it then acts only on that project's resources.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<String>,
    /// When the key stops working (RFC 3339, in the future). None: until revoked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

fn parse_new(body: CreateApiKey) -> Result<NewApiKey, Problem> {
    let mut v = Validator::new();
    let name = v.field("name", ResourceName::parse(&body.name));
    let grant = match (body.role, body.permissions) {
        (Some(role), None) => Some(KeyGrant::Role(role)),
        (None, Some(names)) => match PermissionSet::parse_names(&names) {
            Ok(set) => Some(KeyGrant::Permissions(set)),
            Err(_) => {
                v.error(
                    "permissions",
                    "contains a name that is not in the permission catalog",
                );
                None
            }
        },
        _ => {
            v.error("role", "give exactly one of role and permissions");
            None
        }
    };
    let project_id = match body.project_id.as_deref().map(str::parse::<ProjectId>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            v.error("project_id", "must be a project id");
            None
        }
        None => None,
    };
    let expires_at = match body.expires_at.as_deref().map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => {
            v.error("expires_at", "must be an RFC 3339 timestamp");
            None
        }
        None => None,
    };
    v.finish()?;
    Ok(NewApiKey {
        name: name.ok_or_else(Problem::validation_failed)?,
        grant: grant.ok_or_else(Problem::validation_failed)?,
        project_id,
        expires_at,
    })
}

/// Create an API key (`api_keys:manage`). The response carries the secret `key` this one
/// time; it acts for the caller and never beyond their permissions (403 if asked to).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/api-keys", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_api_key(
    State(db): State<Db>,
    ctx: TenantCtx,
    Json(body): Json<CreateApiKey>,
) -> Result<impl IntoResponse, Problem> {
    let new = parse_new(body)?;
    let created = crate::create_api_key(&db, &ctx.scope, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's live API keys, newest first, without secrets (`api_keys:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/api-keys", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), PageParams),
    responses((status = 200, body = Page<ApiKey>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_api_keys(
    State(db): State<Db>,
    ctx: TenantCtx,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ApiKey>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(crate::list_api_keys(&db, &ctx.scope, &page).await?))
}

/// One live API key, without its secret (`api_keys:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/api-keys/{api_key_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("api_key_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_api_key(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<ApiKeyId>,
) -> Result<Json<ApiKey>, Problem> {
    Ok(Json(crate::get_api_key(&db, &ctx.scope, id).await?))
}

/// Revoke an API key (`api_keys:manage`); it fails from the next request on.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/api-keys/{api_key_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("api_key_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn revoke_api_key(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<ApiKeyId>,
) -> Result<StatusCode, Problem> {
    crate::revoke_api_key(&db, &ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
