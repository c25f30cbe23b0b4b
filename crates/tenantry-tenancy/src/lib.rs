//! Tenancy: tenants, memberships, roles, projects — and the authorization layer that issues
//! [`tenantry_db::TenantScope`]s.

pub mod admin;
pub mod authz;
mod error;
mod members;
pub mod migrations;
mod model;
mod projects;
mod purge;
pub mod settings;
mod signup;
mod tenants;

pub use error::TenancyError;
pub use members::{
    MemberRef, add_member, change_member_role, get_member, list_members, remove_member,
};
pub use model::{
    Member, PermissionView, Project, ResolvedRole, RoleView, Tenant, TenantMembership, TenantStatus,
};
pub use projects::{
    NewProject, ProjectChange, ProjectFilter, create_project, delete_project, get_project,
    list_projects, update_project,
};
pub use purge::{Purged, purge_deleted_tenants};
pub use settings::{TenantSettings, TenantSettingsPatch, get_settings, update_settings};
pub use signup::register;
pub use tenants::{
    NewTenant, TenantChange, create_tenant, delete_tenant, get_tenant, list_my_tenants,
    update_tenant,
};

use tenantry_core::{Permission, SystemRole};
use tenantry_db::TenantScope;

/// The roles the scope's tenant offers (`roles:read`; system roles today, custom roles join
/// them later).
pub fn list_roles(scope: &TenantScope) -> Result<Vec<RoleView>, TenancyError> {
    tenants::require(scope, Permission::RolesRead)?;
    Ok(SystemRole::ALL.into_iter().map(RoleView::from).collect())
}

#[cfg(test)]
mod tests {
    /// `TenantScope` may be constructed only by the authorization layer.
    #[test]
    fn scope_is_issued_only_by_authz() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../");
        let mut offenders = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("target") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let allowed = path.ends_with("tenantry-tenancy/src/authz.rs")
                        || path.ends_with("tenantry-db/src/scope.rs")
                        || path.ends_with("tenantry-tenancy/src/lib.rs");
                    if text.contains("issue_after_authorization(") && !allowed {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "TenantScope constructed outside authz: {offenders:?}"
        );
    }
}
