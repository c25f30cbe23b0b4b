//! `/api/v1/tenants/{tenant_id}/roles*`: system and custom roles.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::Deserialize;
use tenantry_core::{
    Description, Problem, RoleId, RoleName, SystemRole, permission::PermissionSet,
    problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Gate, Ids, Json, TenantCtx};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{NewRole, RoleChange, RoleView, TenancyError};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

/// The roles members of this tenant can hold: the four system roles, then custom roles by
/// name (`roles:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/roles", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = RoleList), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_roles(State(db): State<Db>, ctx: TenantCtx) -> Result<Json<RoleList>, Problem> {
    Ok(Json(RoleList {
        items: crate::list_roles(&db, &ctx.scope).await?,
    }))
}

fn permission_set(v: &mut Validator, names: &[String]) -> PermissionSet {
    match PermissionSet::parse_names(names) {
        Ok(set) => set,
        Err(_) => {
            v.error(
                "permissions",
                "contains a name that is not in the permission catalog (GET /api/v1/permissions)",
            );
            PermissionSet::EMPTY
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// 1–64 characters `a-z0-9-_`, starting with a letter; not a system role's name.
    #[schema(example = "store-manager")]
    pub name: String,
    pub description: Option<String>,
    /// Permission names from the catalog.
    #[schema(example = json!(["projects:read", "projects:write"]))]
    pub permissions: Vec<String>,
}

/// Create a custom role (`roles:manage`). It may not grant permissions the caller lacks.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/roles", tag = "tenancy", security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body = CreateRole,
    responses((status = 201, body = RoleView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Name taken", body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    Json(body): Json<CreateRole>,
) -> Result<impl IntoResponse, Problem> {
    let mut v = Validator::new();
    let name = v.field("name", RoleName::parse(&body.name));
    let description = body
        .description
        .as_deref()
        .and_then(|d| v.field("description", Description::parse(d)));
    let permissions = permission_set(&mut v, &body.permissions);
    v.finish()?;
    let role = crate::create_role(
        &db,
        &ctx.scope,
        NewRole {
            name: name.ok_or_else(Problem::validation_failed)?,
            description,
            permissions,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// A custom role's id; a system role's name answers that system roles cannot change (403),
/// anything else that is no id 404.
fn role_id(raw: &str) -> Result<RoleId, Problem> {
    if SystemRole::parse(raw).is_some() {
        return Err(TenancyError::SystemRoleImmutable.into());
    }
    raw.parse().map_err(|_| Problem::not_found())
}

/// One custom role (`roles:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/roles/{role_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)),
    responses((status = 200, body = RoleView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<RoleId>,
) -> Result<Json<RoleView>, Problem> {
    Ok(Json(crate::get_role(&db, &ctx.scope, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    /// Renaming carries every assignment of the role along.
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "tenantry_http::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub permissions: Option<Vec<String>>,
}

/// Change a custom role (`roles:manage`); takes effect for every holder at once. System
/// roles are immutable (403).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/roles/{role_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)),
    request_body = UpdateRole,
    responses((status = 200, body = RoleView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Name taken", body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<String>,
    Json(body): Json<UpdateRole>,
) -> Result<Json<RoleView>, Problem> {
    let id = role_id(&id)?;
    let mut v = Validator::new();
    let name = body
        .name
        .as_deref()
        .and_then(|n| v.field("name", RoleName::parse(n)));
    let description = match body.description {
        Some(Some(d)) => v.field("description", Description::parse(&d)).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let permissions = body
        .permissions
        .as_deref()
        .map(|p| permission_set(&mut v, p));
    v.finish()?;
    let change = RoleChange {
        name,
        description,
        permissions,
    };
    Ok(Json(crate::update_role(&db, &ctx.scope, id, change).await?))
}

/// Delete a custom role (`roles:manage`): 409 `role_in_use` while members, project
/// assignments, API keys or pending invitations hold it. System roles are immutable (403).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/roles/{role_id}", tag = "tenancy",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("role_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Still assigned", body = Problem)))]
pub async fn delete_role(
    State(db): State<Db>,
    ctx: TenantCtx,
    Ids(id): Ids<String>,
) -> Result<StatusCode, Problem> {
    let id = role_id(&id)?;
    crate::delete_role(&db, &ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
