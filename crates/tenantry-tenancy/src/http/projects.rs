//! `/api/v1/tenants/{tenant_id}/projects*`.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use tenantry_core::{
    Description, JsonObject, Page, Problem, ProjectId, ResourceName, page::PageParams,
    problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Gate, Ids, Json, Query, TenantCtx};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{NewProject, Project, ProjectChange, ProjectFilter};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(
            get_project,
            patch_project,
            put_project,
            delete_project
        ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectListParams {
    /// Case-insensitive substring of the project name.
    pub name: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Projects of the tenant, newest first (`projects:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ProjectListParams),
    responses((status = 200, body = Page<Project>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_projects(
    State(db): State<Db>,
    ctx: TenantCtx,
    Query(params): Query<ProjectListParams>,
) -> Result<Json<Page<Project>>, Problem> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .try_into()?;
    let filter = ProjectFilter { name: params.name };
    Ok(Json(
        crate::list_projects(&db, &ctx.scope, &filter, &page).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    #[schema(example = "Nairobi CBD store")]
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

fn parse_new(body: CreateProject) -> Result<NewProject, Problem> {
    let mut v = Validator::new();
    let name = v.field("name", ResourceName::parse(&body.name));
    let description = body
        .description
        .as_deref()
        .and_then(|d| v.field("description", Description::parse(d)));
    let settings = body
        .settings
        .and_then(|s| v.field("settings", JsonObject::parse(s)));
    v.finish()?;
    Ok(NewProject {
        name: name.ok_or_else(Problem::validation_failed)?,
        description,
        settings,
    })
}

/// Create a project (`projects:write`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = CreateProject,
    responses((status = 201, body = Project), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Name taken", body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_project(
    State(db): State<Db>,
    ctx: TenantCtx,
    Json(body): Json<CreateProject>,
) -> Result<impl IntoResponse, Problem> {
    let new = parse_new(body)?;
    let project = crate::create_project(&db, &ctx.scope, new).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// One project (`projects:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Project), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_project(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<ProjectId>,
) -> Result<Json<Project>, Problem> {
    Ok(Json(crate::get_project(&db, &ctx.scope, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProject {
    pub name: Option<String>,
    /// `null` clears the description.
    #[serde(default, deserialize_with = "tenantry_http::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// Change some fields of a project (`projects:write`).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid)),
    request_body = PatchProject,
    responses((status = 200, body = Project), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_project(
    State(db): State<Db>,
    ctx: TenantCtx,
    id: Result<Ids<ProjectId>, Problem>,
    Json(body): Json<PatchProject>,
) -> Result<Json<Project>, Problem> {
    let Ids(id) = id?;
    let mut v = Validator::new();
    let change = ProjectChange {
        name: body
            .name
            .as_deref()
            .and_then(|n| v.field("name", ResourceName::parse(n))),
        description: match body.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(d)) => v.field("description", Description::parse(&d)).map(Some),
        },
        settings: body
            .settings
            .and_then(|s| v.field("settings", JsonObject::parse(s))),
    };
    v.finish()?;
    Ok(Json(
        crate::update_project(&db, &ctx.scope, id, change).await?,
    ))
}

/// Replace a project's fields (`projects:write`).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid)),
    request_body = CreateProject,
    responses((status = 200, body = Project), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn put_project(
    State(db): State<Db>,
    ctx: TenantCtx,
    id: Result<Ids<ProjectId>, Problem>,
    Json(body): Json<CreateProject>,
) -> Result<Json<Project>, Problem> {
    let Ids(id) = id?;
    let new = parse_new(body)?;
    let change = ProjectChange {
        name: Some(new.name),
        description: Some(new.description),
        settings: Some(new.settings.unwrap_or_else(JsonObject::empty)),
    };
    Ok(Json(
        crate::update_project(&db, &ctx.scope, id, change).await?,
    ))
}

/// Delete a project (`projects:delete`).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn delete_project(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<ProjectId>,
) -> Result<StatusCode, Problem> {
    crate::delete_project(&db, &ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
