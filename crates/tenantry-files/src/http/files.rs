//! `/api/v1/tenants/{tenant_id}/files*` (stored content) and `/usage` (storage usage).

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Deserialize;
use tenantry_core::{FileId, Page, Problem, page::PageParams};
use tenantry_http::{Gate, Ids, Json, Query, TenantCtx};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{File, FileDetail, Files, StorageUsage};

pub(super) fn router<S: Gate>() -> OpenApiRouter<S>
where
    Files: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_files))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(get_usage))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileListParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Stored files of the tenant, newest first: one per distinct content (`files:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/files", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), FileListParams),
    responses((status = 200, body = Page<File>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_files(
    State(files): State<Files>,
    ctx: TenantCtx,
    Query(params): Query<FileListParams>,
) -> Result<Json<Page<File>>, Problem> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .try_into()?;
    Ok(Json(files.list_files(&ctx.scope, &page).await?))
}

/// One file with the documents that reference it (those the caller may read; `files:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/files/{file_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("file_id" = String, Path, format = Uuid)),
    responses((status = 200, body = FileDetail), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_file(
    State(files): State<Files>,
    ctx: TenantCtx,
    Ids(id): Ids<FileId>,
) -> Result<Json<FileDetail>, Problem> {
    Ok(Json(files.get_file(&ctx.scope, id).await?))
}

/// Delete a file and its content (`files:delete`); 409 `file_in_use` while documents
/// reference it.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/files/{file_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("file_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Referenced by documents", body = Problem)))]
pub async fn delete_file(
    State(files): State<Files>,
    ctx: TenantCtx,
    Ids(id): Ids<FileId>,
) -> Result<StatusCode, Problem> {
    files.delete_file(&ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's usage.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Usage {
    pub storage: StorageUsage,
}

/// The tenant's usage of metered resources (`tenant:read`): stored bytes, files and
/// documents against the storage quota.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/usage", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Usage), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_usage(State(files): State<Files>, ctx: TenantCtx) -> Result<Json<Usage>, Problem> {
    Ok(Json(Usage {
        storage: files.usage(&ctx.scope).await?,
    }))
}
