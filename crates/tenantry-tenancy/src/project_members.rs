//! Project-scoped role assignments: a member's role for one project's resources, narrowing
//! or extending their tenant role there (see `tenantry_db::ProjectAccess`).

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use serde::Serialize;
use tenantry_audit::Entry;
use tenantry_core::{Permission, ProjectId, TenantId, UserId};
use tenantry_db::{Db, DbError, FromRow, InsertRow, Row, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};
use tenantry_identity::directory::{AccountColumn, account_column, join_accounts};
use utoipa::ToSchema;

use crate::{
    TenancyError,
    members::member_in,
    projects::{project_exists, require_in_project},
    roles::{check_grantable, resolve},
    tenants::require,
};

/// A member's role in one project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectMember {
    pub project_id: ProjectId,
    pub user_id: UserId,
    /// The project-scoped role; it replaces `tenant_role` for this project's resources.
    pub role: String,
    /// The member's role in the tenant.
    pub tenant_role: String,
    pub email: Option<String>,
    pub first_name: String,
    pub last_name: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl FromRow for ProjectMember {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            project_id: row.id()?,
            user_id: row.id()?,
            role: row.string()?,
            tenant_role: row.string()?,
            email: row.opt_string()?,
            first_name: row.string()?,
            last_name: row.string()?,
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}

fn query(scope: &TenantScope, project: ProjectId) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns([
        ("project_members", "project_id"),
        ("project_members", "user_id"),
        ("project_members", "role"),
        ("memberships", "role"),
        account_column(AccountColumn::Email),
        account_column(AccountColumn::FirstName),
        account_column(AccountColumn::LastName),
        ("project_members", "created_at"),
        ("project_members", "updated_at"),
    ])
    .from("project_members")
    .inner_join(
        "memberships",
        Expr::col(("memberships", "tenant_id"))
            .equals(("project_members", "tenant_id"))
            .and(Expr::col(("memberships", "user_id")).equals(("project_members", "user_id"))),
    );
    join_accounts(&mut q, ("project_members", "user_id"));
    q.and_where(Expr::col(("project_members", "tenant_id")).eq(scope.tenant_id()))
        .and_where(Expr::col(("project_members", "project_id")).eq(project));
    q
}

/// Sets a member's role in a project, replacing an earlier one.
pub(crate) async fn upsert_project_role(
    tx: &mut Tx,
    tenant_id: TenantId,
    project: ProjectId,
    user_id: UserId,
    role: &str,
    now: DateTime<Utc>,
) -> Result<(), TenancyError> {
    tx.execute(
        Query::insert()
            .into_table("project_members")
            .row([
                ("tenant_id", tenant_id.into()),
                ("project_id", project.into()),
                ("user_id", user_id.into()),
                ("role", role.into()),
                ("created_at", now.into()),
                ("updated_at", now.into()),
            ])
            .on_conflict(
                OnConflict::columns(["tenant_id", "project_id", "user_id"])
                    .update_columns(["role", "updated_at"])
                    .to_owned(),
            ),
    )
    .await?;
    Ok(())
}

/// The project's assignments (`members:read` and read access to the project).
pub async fn list_project_members(
    db: &Db,
    scope: &TenantScope,
    project: ProjectId,
) -> Result<Vec<ProjectMember>, TenancyError> {
    require_in_project(scope, project, Permission::ProjectsRead)?;
    require(scope, Permission::MembersRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    if !project_exists(&mut tx, scope, project).await? {
        return Err(TenancyError::NotFound);
    }
    let mut q = query(scope, project);
    q.order_by(("project_members", "user_id"), Order::Asc);
    let rows = tx.fetch_all(&q).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The subject of a project member's events.
fn subject(project: ProjectId, user_id: UserId) -> String {
    format!("projects/{project}/members/{user_id}")
}

/// Sets `user_id`'s role in `project` (`members:manage`). The member must belong to the
/// tenant; neither the new role nor the member's tenant role may exceed the caller's.
pub async fn assign_project_role(
    db: &Db,
    scope: &TenantScope,
    project: ProjectId,
    user_id: UserId,
    role: &str,
) -> Result<ProjectMember, TenancyError> {
    require(scope, Permission::MembersManage)?;
    require_in_project(scope, project, Permission::ProjectsRead)?;
    let mut tx = db.begin_tenant(scope).await?;
    if !project_exists(&mut tx, scope, project).await? {
        return Err(TenancyError::NotFound);
    }
    let role = resolve(&mut tx, scope, role).await?;
    check_grantable(scope, role.permissions)?;
    let member = member_in(&mut tx, scope, user_id)
        .await?
        .ok_or(TenancyError::NotAMember)?;
    check_grantable(
        scope,
        resolve(&mut tx, scope, &member.role).await?.permissions,
    )?;
    let now = tx.now();
    upsert_project_role(
        &mut tx,
        scope.tenant_id(),
        project,
        user_id,
        &role.name,
        now,
    )
    .await?;
    let mut q = query(scope, project);
    q.and_where(Expr::col(("project_members", "user_id")).eq(user_id));
    let assigned: ProjectMember = tx.fetch_one(&q).await?;
    record_change(
        &mut tx,
        scope,
        Entry::new(
            "project_member.assigned",
            "project_member",
            format!("{project}/{user_id}"),
        )
        .with_summary(
            serde_json::json!({"project_id": project, "user_id": user_id, "role": role.name}),
        )
        .in_project(Some(project)),
        Event::new(
            EventType::ProjectMemberAssigned,
            subject(project, user_id),
            &assigned,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(assigned)
}

/// Removes `user_id`'s project role (`members:manage`); their tenant role applies again.
pub async fn remove_project_role(
    db: &Db,
    scope: &TenantScope,
    project: ProjectId,
    user_id: UserId,
) -> Result<(), TenancyError> {
    require(scope, Permission::MembersManage)?;
    require_in_project(scope, project, Permission::ProjectsRead)?;
    let mut tx = db.begin_tenant(scope).await?;
    let mut q = query(scope, project);
    q.and_where(Expr::col(("project_members", "user_id")).eq(user_id));
    let current: ProjectMember = tx.fetch_optional(&q).await?.ok_or(TenancyError::NotFound)?;
    check_grantable(
        scope,
        resolve(&mut tx, scope, &current.role).await?.permissions,
    )?;
    tx.execute(
        Query::delete()
            .from_table("project_members")
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("project_id").eq(project))
            .and_where(Expr::col("user_id").eq(user_id)),
    )
    .await?;
    record_change(
        &mut tx,
        scope,
        Entry::new(
            "project_member.removed",
            "project_member",
            format!("{project}/{user_id}"),
        )
        .with_summary(
            serde_json::json!({"project_id": project, "user_id": user_id, "role": current.role}),
        )
        .in_project(Some(project)),
        Event::new(
            EventType::ProjectMemberRemoved,
            subject(project, user_id),
            &current,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
