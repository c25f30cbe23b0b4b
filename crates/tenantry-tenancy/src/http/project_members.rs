//! `/api/v1/tenants/{tenant_id}/projects/{project_id}/members*`: project-scoped roles.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Deserialize;
use tenantry_core::{Problem, ProjectId, UserId};
use tenantry_db::Db;
use tenantry_http::{Gate, Ids, Json, TenantCtx};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::ProjectMember;

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_project_members))
        .routes(routes!(assign_project_role, remove_project_role))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ProjectMemberList {
    pub items: Vec<ProjectMember>,
}

/// Members with a role of their own in this project (`members:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/members", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ProjectMemberList), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_project_members(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(project): Ids<ProjectId>,
) -> Result<Json<ProjectMemberList>, Problem> {
    Ok(Json(ProjectMemberList {
        items: crate::list_project_members(&db, &ctx.scope, project).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignProjectRole {
    /// A role name (system or custom). Its project permissions (`projects:*`) replace the
    /// member's tenant role for this project: a narrower role hides or restricts the
    /// project, a wider one extends it.
    #[schema(example = "viewer")]
    pub role: String,
}

/// Give a tenant member a role for this project (`members:manage`).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/members/{user_id}",
    tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid),
        ("user_id" = String, Path, format = Uuid)),
    request_body = AssignProjectRole,
    responses((status = 200, body = ProjectMember), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, description = "Unknown project or not a member", body = Problem),
        (status = 422, body = Problem)))]
pub async fn assign_project_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    ids: Result<Ids<(ProjectId, UserId)>, Problem>,
    Json(body): Json<AssignProjectRole>,
) -> Result<Json<ProjectMember>, Problem> {
    let Ids((project, user)) = ids?;
    Ok(Json(
        crate::assign_project_role(&db, &ctx.scope, project, user, &body.role).await?,
    ))
}

/// Remove a member's project role (`members:manage`); their tenant role applies again.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/members/{user_id}",
    tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("project_id" = String, Path, format = Uuid),
        ("user_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn remove_project_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids((project, user)): Ids<(ProjectId, UserId)>,
) -> Result<StatusCode, Problem> {
    crate::remove_project_role(&db, &ctx.scope, project, user).await?;
    Ok(StatusCode::NO_CONTENT)
}
