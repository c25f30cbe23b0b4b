//! Projects: sub-scopes of a tenant.

use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_audit::Entry;
use tenantry_core::{
    Description, JsonObject, Page, PageRequest, Permission, ProjectId, ResourceName, TenantId,
};
use tenantry_db::{
    Bound, Db, DbError, InsertRow, Prepared, ProjectFilter as Visible, TenantScope, Tx,
};
use tenantry_events::{Event, EventType, record_change};

use crate::{Project, TenancyError, model::ProjectRow, tenants::require};

/// Checks `permission` on one project. A project the caller cannot even read answers
/// `NotFound` (its existence stays hidden) — unless they read no project at all, which is a
/// plain `Forbidden`.
pub(crate) fn require_in_project(
    scope: &TenantScope,
    project: ProjectId,
    permission: Permission,
) -> Result<(), TenancyError> {
    if scope.can_in_project(project, permission) {
        return Ok(());
    }
    let reads_none = scope.projects().filter(Permission::ProjectsRead) == Visible::None;
    if reads_none || scope.can_in_project(project, Permission::ProjectsRead) {
        Err(TenancyError::Forbidden(permission))
    } else {
        Err(TenancyError::NotFound)
    }
}

/// Confines a query on a table with a project column to the projects where the caller
/// holds `permission`; `Forbidden` when that is none.
pub(crate) fn confine_to_projects(
    q: &mut sea_query::SelectStatement,
    scope: &TenantScope,
    column: &'static str,
    permission: Permission,
) -> Result<(), TenancyError> {
    match scope.projects().filter(permission) {
        Visible::All => {}
        Visible::AllExcept(ids) => {
            q.and_where(Expr::col(column).is_not_in(ids));
        }
        Visible::Only(ids) => {
            q.and_where(Expr::col(column).is_in(ids));
        }
        Visible::None => return Err(TenancyError::Forbidden(permission)),
    }
    Ok(())
}

#[derive(Debug)]
pub struct NewProject {
    pub name: ResourceName,
    pub description: Option<Description>,
    pub settings: Option<JsonObject>,
}

/// Fields to change; `description: Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProjectChange {
    pub name: Option<ResourceName>,
    pub description: Option<Option<Description>>,
    pub settings: Option<JsonObject>,
}

fn name_taken(e: DbError) -> TenancyError {
    if e.is_unique_violation_on("name") {
        TenancyError::ProjectNameTaken
    } else {
        e.into()
    }
}

/// One project of a tenant (point reads run it on every request: its SQL is rendered once).
static PROJECT_BY_ID: Prepared<(TenantId, ProjectId)> = Prepared::new(
    "project_by_id",
    |&(tenant_id, id)| {
        let mut q = Query::select();
        q.columns(ProjectRow::COLUMNS)
            .from("projects")
            .and_where(Expr::col("tenant_id").eq(tenant_id))
            .and_where(Expr::col("id").eq(id));
        q
    },
    |&(tenant_id, id)| vec![tenant_id.into(), id.into()],
);

fn project_query(scope: &TenantScope, id: ProjectId) -> Bound<'static, (TenantId, ProjectId)> {
    PROJECT_BY_ID.bind((scope.tenant_id(), id))
}

/// Whether `project` is a project of the scope's tenant (for request fields that name one).
pub(crate) async fn project_exists(
    tx: &mut Tx,
    scope: &TenantScope,
    project: ProjectId,
) -> Result<bool, TenancyError> {
    let found: Option<uuid::Uuid> = tx
        .fetch_optional(
            Query::select()
                .column("id")
                .from("projects")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(project)),
        )
        .await?;
    Ok(found.is_some())
}

/// The subject of a project's events.
fn subject(id: ProjectId) -> String {
    format!("projects/{id}")
}

async fn fetch(
    tx: &mut Tx,
    scope: &TenantScope,
    id: ProjectId,
) -> Result<Option<Project>, TenancyError> {
    let row: Option<ProjectRow> = tx.fetch_optional(&project_query(scope, id)).await?;
    Ok(row.map(|row| row.in_tenant(scope.tenant_id())))
}

pub async fn create_project(
    db: &Db,
    scope: &TenantScope,
    new: NewProject,
) -> Result<Project, TenancyError> {
    require(scope, Permission::ProjectsWrite)?;
    let id = ProjectId::new();
    let now = db.now();
    let mut tx = db.begin_tenant(scope).await?;
    tx.execute(
        Query::insert().into_table("projects").row([
            ("tenant_id", scope.tenant_id().into()),
            ("id", id.into()),
            ("name", new.name.as_str().into()),
            (
                "description",
                new.description.map(Description::into_inner).into(),
            ),
            (
                "settings",
                new.settings
                    .map_or_else(|| serde_json::json!({}), JsonObject::into_inner)
                    .into(),
            ),
            ("created_at", now.into()),
            ("updated_at", now.into()),
        ]),
    )
    .await
    .map_err(name_taken)?;
    let project = fetch(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    record_change(
        &mut tx,
        scope,
        Entry::new("project.created", "project", id)
            .with_summary(serde_json::json!({"name": project.name}))
            .in_project(Some(id)),
        Event::new(EventType::ProjectCreated, subject(id), &project),
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}

pub async fn get_project(
    db: &Db,
    scope: &TenantScope,
    id: ProjectId,
) -> Result<Project, TenancyError> {
    require_in_project(scope, id, Permission::ProjectsRead)?;
    let row: Option<ProjectRow> = db
        .read_tenant_optional(scope, &project_query(scope, id))
        .await?;
    row.map(|row| row.in_tenant(scope.tenant_id()))
        .ok_or(TenancyError::NotFound)
}

/// Filters for listing projects.
#[derive(Debug, Default)]
pub struct ProjectFilter {
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
}

pub async fn list_projects(
    db: &Db,
    scope: &TenantScope,
    filter: &ProjectFilter,
    page: &PageRequest,
) -> Result<Page<Project>, TenancyError> {
    let mut q = Query::select();
    q.columns(ProjectRow::COLUMNS)
        .from("projects")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .order_by("id", Order::Desc)
        .limit(page.fetch_limit());
    confine_to_projects(&mut q, scope, "id", Permission::ProjectsRead)?;
    if let Some(after) = page.after {
        q.and_where(Expr::col("id").lt(after.0));
    }
    if let Some(name) = filter.name.as_deref().filter(|n| !n.is_empty()) {
        q.and_where(
            Expr::expr(sea_query::Func::lower(Expr::col("name")))
                .like(tenantry_db::contains_pattern(name)),
        );
    }
    let rows: Vec<ProjectRow> = db.read_tenant_all(scope, &q).await?;
    let tenant_id = scope.tenant_id();
    let projects = rows
        .into_iter()
        .map(|row| row.in_tenant(tenant_id))
        .collect();
    Ok(Page::from_rows(projects, page, |p| p.id.as_uuid()))
}

pub async fn update_project(
    db: &Db,
    scope: &TenantScope,
    id: ProjectId,
    change: ProjectChange,
) -> Result<Project, TenancyError> {
    require_in_project(scope, id, Permission::ProjectsWrite)?;
    let mut summary = serde_json::Map::new();
    if let Some(name) = &change.name {
        summary.insert("name".into(), name.as_str().into());
    }
    if change.description.is_some() {
        summary.insert("description".into(), "changed".into());
    }
    if change.settings.is_some() {
        summary.insert("settings".into(), "changed".into());
    }
    let mut update = Query::update();
    update
        .table("projects")
        .value("updated_at", db.now())
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .and_where(Expr::col("id").eq(id));
    if let Some(name) = change.name {
        update.value("name", name.as_str());
    }
    if let Some(description) = change.description {
        update.value("description", description.map(Description::into_inner));
    }
    if let Some(settings) = change.settings {
        update.value("settings", settings.into_inner());
    }
    let mut tx = db.begin_tenant(scope).await?;
    let changed = tx.execute(&update).await.map_err(name_taken)?;
    if changed == 0 {
        return Err(TenancyError::NotFound);
    }
    let project = fetch(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let event = Event::updated(
        EventType::ProjectUpdated,
        subject(id),
        &project,
        summary.keys().cloned(),
    );
    record_change(
        &mut tx,
        scope,
        Entry::new("project.updated", "project", id)
            .with_summary(summary.into())
            .in_project(Some(id)),
        event,
    )
    .await?;
    tx.commit().await?;
    Ok(project)
}

pub async fn delete_project(
    db: &Db,
    scope: &TenantScope,
    id: ProjectId,
) -> Result<(), TenancyError> {
    require_in_project(scope, id, Permission::ProjectsDelete)?;
    let mut tx = db.begin_tenant(scope).await?;
    let project = fetch(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let deleted = tx
        .execute(
            Query::delete()
                .from_table("projects")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id)),
        )
        .await
        .map_err(|e| match e {
            // Documents reference the project (their foreign key has no cascade).
            DbError::ForeignKeyViolation => TenancyError::ProjectHasDocuments,
            e => e.into(),
        })?;
    if deleted == 0 {
        return Err(TenancyError::NotFound);
    }
    record_change(
        &mut tx,
        scope,
        Entry::new("project.deleted", "project", id).in_project(Some(id)),
        Event::new(EventType::ProjectDeleted, subject(id), &project),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
