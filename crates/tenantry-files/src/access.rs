//! Who may see and change which documents. `documents:*` are project-scoped permissions: for
//! a document in a project they come from the caller's grant in that project (a project role
//! can narrow or extend them, a project-bound API key has them only in its project); for a
//! document outside projects, from the tenant-wide grant. A document the caller cannot read
//! answers like a missing one. `files:*` are tenant-wide.

use sea_query::{Condition, Expr, ExprTrait, SelectStatement};
use tenantry_core::{Permission, ProjectId};
use tenantry_db::{ProjectFilter, TenantScope};

use crate::FilesError;

pub(crate) fn require(scope: &TenantScope, permission: Permission) -> Result<(), FilesError> {
    if scope.can(permission) {
        Ok(())
    } else {
        Err(FilesError::Forbidden(permission))
    }
}

/// Whether the caller holds `permission` for documents of `project` (`None`: outside projects).
pub(crate) fn can(scope: &TenantScope, project: Option<ProjectId>, permission: Permission) -> bool {
    match project {
        None => scope.can(permission),
        Some(p) => scope.can_in_project(p, permission),
    }
}

/// Whether the caller holds neither `documents:read` nor `permission` for any document
/// (outside projects or in any project).
pub(crate) fn reads_none(scope: &TenantScope, permission: Permission) -> bool {
    [Permission::DocumentsRead, permission]
        .iter()
        .all(|p| !scope.can(*p) && scope.projects().filter(*p) == ProjectFilter::None)
}

/// `permission` on a document of `project` that exists: `NotFound` when the caller cannot
/// even read it, `Forbidden` when they read it but lack `permission`.
pub(crate) fn require_on(
    scope: &TenantScope,
    project: Option<ProjectId>,
    permission: Permission,
) -> Result<(), FilesError> {
    if can(scope, project, permission) {
        Ok(())
    } else if can(scope, project, Permission::DocumentsRead) {
        Err(FilesError::Forbidden(permission))
    } else {
        Err(FilesError::NotFound)
    }
}

/// Confines a query on `documents` (aliased `table`) to the documents the caller reads;
/// `Forbidden` when that is none at all.
pub(crate) fn confine(
    q: &mut SelectStatement,
    scope: &TenantScope,
    table: &'static str,
) -> Result<(), FilesError> {
    let column = || Expr::col((table, "project_id"));
    let mut visible = Condition::any();
    let outside = scope.can(Permission::DocumentsRead);
    if outside {
        visible = visible.add(column().is_null());
    }
    let inside = match scope.projects().filter(Permission::DocumentsRead) {
        ProjectFilter::All => Some(Condition::all().add(column().is_not_null())),
        ProjectFilter::AllExcept(ids) => Some(
            Condition::all()
                .add(column().is_not_null())
                .add(column().is_not_in(ids)),
        ),
        ProjectFilter::Only(ids) => Some(Condition::all().add(column().is_in(ids))),
        ProjectFilter::None => None,
    };
    match (outside, inside) {
        (false, None) => Err(FilesError::Forbidden(Permission::DocumentsRead)),
        (_, inside) => {
            if let Some(inside) = inside {
                visible = visible.add(inside);
            }
            q.cond_where(visible);
            Ok(())
        }
    }
}
