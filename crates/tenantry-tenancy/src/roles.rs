//! Roles: the four immutable system roles and each tenant's custom roles over the catalog.
//!
//! Assignments (memberships, project assignments, API keys, invitations) name a role, so a
//! custom role's permissions apply to everyone holding it at once, a rename carries its
//! assignments along, and a role cannot be deleted while anything still names it.

use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_audit::Entry;
use tenantry_core::{
    Description, Permission, RoleId, RoleName, SystemRole, permission::PermissionSet,
};
use tenantry_db::{Db, InsertRow, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};

use crate::{
    ResolvedRole, RoleView, TenancyError,
    model::{CustomRoleRow, names},
    tenants::require,
};

/// A custom role to create.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: RoleName,
    pub description: Option<Description>,
    pub permissions: PermissionSet,
}

/// A change to a custom role; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct RoleChange {
    pub name: Option<RoleName>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<Description>>,
    pub permissions: Option<PermissionSet>,
}

/// The tables whose rows name a role, with the column that does.
const ASSIGNMENTS: [(&str, &str); 4] = [
    ("memberships", "role"),
    ("project_members", "role"),
    ("api_keys", "role"),
    ("invitations", "role"),
];

async fn custom_by_name(
    tx: &mut Tx,
    scope: &TenantScope,
    name: &str,
) -> Result<Option<CustomRoleRow>, TenancyError> {
    Ok(tx
        .fetch_optional(
            Query::select()
                .columns(CustomRoleRow::COLUMNS)
                .from("roles")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("name").eq(name)),
        )
        .await?)
}

async fn custom_by_id(
    tx: &mut Tx,
    scope: &TenantScope,
    id: RoleId,
) -> Result<Option<CustomRoleRow>, TenancyError> {
    Ok(tx
        .fetch_optional(
            Query::select()
                .columns(CustomRoleRow::COLUMNS)
                .from("roles")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?)
}

/// Resolves a role name of the scope's tenant: a system role or one of its custom roles.
pub(crate) async fn resolve(
    tx: &mut Tx,
    scope: &TenantScope,
    name: &str,
) -> Result<ResolvedRole, TenancyError> {
    if let Some(role) = SystemRole::parse(name) {
        return Ok(ResolvedRole::system(role));
    }
    let row = custom_by_name(tx, scope, name)
        .await?
        .ok_or_else(|| TenancyError::UnknownRole(name.to_owned()))?;
    Ok(ResolvedRole {
        permissions: row.permission_set(),
        name: row.name,
        system: None,
    })
}

/// Refuses granting (or touching an assignment of) permissions the caller does not hold.
pub(crate) fn check_grantable(
    scope: &TenantScope,
    permissions: PermissionSet,
) -> Result<(), TenancyError> {
    if permissions.is_subset_of(scope.permissions()) {
        Ok(())
    } else {
        Err(TenancyError::RoleTooPowerful)
    }
}

/// The system roles, then the tenant's custom roles by name (`roles:read`).
pub async fn list_roles(db: &Db, scope: &TenantScope) -> Result<Vec<RoleView>, TenancyError> {
    require(scope, Permission::RolesRead)?;
    let custom: Vec<CustomRoleRow> = db
        .read_tenant_all(
            scope,
            Query::select()
                .columns(CustomRoleRow::COLUMNS)
                .from("roles")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .order_by("name", Order::Asc),
        )
        .await?;
    Ok(SystemRole::ALL
        .into_iter()
        .map(RoleView::from)
        .chain(custom.into_iter().map(RoleView::from))
        .collect())
}

/// One custom role (`roles:read`).
pub async fn get_role(db: &Db, scope: &TenantScope, id: RoleId) -> Result<RoleView, TenancyError> {
    require(scope, Permission::RolesRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    let role = custom_by_id(&mut tx, scope, id).await?;
    tx.commit().await?;
    role.map(RoleView::from).ok_or(TenancyError::NotFound)
}

fn name_taken(e: tenantry_db::DbError) -> TenancyError {
    if e.is_unique_violation_on("name") {
        TenancyError::RoleNameTaken
    } else {
        e.into()
    }
}

/// The subject of a role's events.
fn subject(id: RoleId) -> String {
    format!("roles/{id}")
}

/// Creates a custom role (`roles:manage`) granting no more than the caller holds.
pub async fn create_role(
    db: &Db,
    scope: &TenantScope,
    new: NewRole,
) -> Result<RoleView, TenancyError> {
    require(scope, Permission::RolesManage)?;
    check_grantable(scope, new.permissions)?;
    let id = RoleId::new();
    let now = db.now();
    let permission_names = names(new.permissions);
    let mut tx = db.begin_tenant(scope).await?;
    tx.execute(Query::insert().into_table("roles").row([
        ("tenant_id", scope.tenant_id().into()),
        ("id", id.into()),
        ("name", new.name.as_str().into()),
        (
            "description",
            new.description.map(Description::into_inner).into(),
        ),
        ("permissions", serde_json::json!(permission_names).into()),
        ("created_at", now.into()),
        ("updated_at", now.into()),
    ]))
    .await
    .map_err(name_taken)?;
    let role = custom_by_id(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let summary = serde_json::json!({"name": role.name, "permissions": permission_names});
    let role: RoleView = role.into();
    record_change(
        &mut tx,
        scope,
        Entry::new("role.created", "role", id).with_summary(summary),
        Event::new(EventType::RoleCreated, subject(id), &role),
    )
    .await?;
    tx.commit().await?;
    Ok(role)
}

/// Changes a custom role (`roles:manage`). Neither its old nor its new permissions may
/// exceed the caller's; a rename carries every assignment along.
pub async fn update_role(
    db: &Db,
    scope: &TenantScope,
    id: RoleId,
    change: RoleChange,
) -> Result<RoleView, TenancyError> {
    require(scope, Permission::RolesManage)?;
    if let Some(permissions) = change.permissions {
        check_grantable(scope, permissions)?;
    }
    let mut tx = db.begin_tenant(scope).await?;
    let current = custom_by_id(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    check_grantable(scope, current.permission_set())?;
    let now = tx.now();
    let mut update = Query::update();
    update
        .table("roles")
        .value("updated_at", now)
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .and_where(Expr::col("id").eq(id));
    let mut summary = serde_json::Map::new();
    if let Some(name) = &change.name {
        update.value("name", name.as_str());
        summary.insert(
            "name".into(),
            serde_json::json!({"from": current.name, "to": name.as_str()}),
        );
    }
    if let Some(description) = change.description {
        update.value("description", description.map(Description::into_inner));
        summary.insert("description".into(), serde_json::json!("changed"));
    }
    if let Some(permissions) = change.permissions {
        update.value("permissions", serde_json::json!(names(permissions)));
        summary.insert(
            "permissions".into(),
            serde_json::json!({"from": names(current.permission_set()), "to": names(permissions)}),
        );
    }
    tx.execute(&update).await.map_err(name_taken)?;
    if let Some(name) = change.name.filter(|n| n.as_str() != current.name) {
        for (table, column) in ASSIGNMENTS {
            tx.execute(
                Query::update()
                    .table(table)
                    .value(column, name.as_str())
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col(column).eq(current.name.as_str())),
            )
            .await?;
        }
    }
    let role = custom_by_id(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let role: RoleView = role.into();
    let event = Event::updated(
        EventType::RoleUpdated,
        subject(id),
        &role,
        summary.keys().cloned(),
    );
    record_change(
        &mut tx,
        scope,
        Entry::new("role.updated", "role", id).with_summary(summary.into()),
        event,
    )
    .await?;
    tx.commit().await?;
    Ok(role)
}

/// Deletes a custom role (`roles:manage`); refused with `RoleInUse` while any membership,
/// project assignment, API key or pending invitation names it.
pub async fn delete_role(db: &Db, scope: &TenantScope, id: RoleId) -> Result<(), TenancyError> {
    require(scope, Permission::RolesManage)?;
    let mut tx = db.begin_tenant(scope).await?;
    let current = custom_by_id(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    check_grantable(scope, current.permission_set())?;
    for (table, column) in ASSIGNMENTS {
        let mut q = Query::select();
        q.column("tenant_id")
            .from(table)
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col(column).eq(current.name.as_str()))
            .limit(1);
        match table {
            "api_keys" => {
                q.and_where(Expr::col("revoked_at").is_null());
            }
            "invitations" => {
                q.and_where(Expr::col("accepted_at").is_null())
                    .and_where(Expr::col("revoked_at").is_null())
                    .and_where(Expr::col("expires_at").gt(tx.now()));
            }
            _ => {}
        }
        let used: Option<uuid::Uuid> = tx.fetch_optional(&q).await?;
        if used.is_some() {
            return Err(TenancyError::RoleInUse(table));
        }
    }
    tx.execute(
        Query::delete()
            .from_table("roles")
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("id").eq(id)),
    )
    .await?;
    let summary = serde_json::json!({"name": current.name});
    let role: RoleView = current.into();
    record_change(
        &mut tx,
        scope,
        Entry::new("role.deleted", "role", id).with_summary(summary),
        Event::new(EventType::RoleDeleted, subject(id), &role),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
