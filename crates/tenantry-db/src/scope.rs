//! Capabilities that open tenant-, user- or platform-confined transactions.

use std::sync::Arc;

use tenantry_core::{
    ApiKeyId, Origin, Permission, ProjectId, TenantId, UserId, permission::PermissionSet,
};

/// Where a tenant's rows live. Every tenant is in the shared pool today; a silo placement
/// (own database) will add a variant here without touching services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    SharedPool,
}

/// Who acts inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    /// An API key, acting with at most the permissions of the member who created it.
    ApiKey {
        key_id: ApiKeyId,
        owner: UserId,
    },
}

impl Actor {
    /// The user acting, or the member an API key acts for.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::ApiKey { owner, .. } => Some(*owner),
        }
    }

    /// The signed-in user in person (not an API key).
    pub fn person(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::ApiKey { .. } => None,
        }
    }

    pub fn api_key(&self) -> Option<ApiKeyId> {
        match self {
            Self::ApiKey { key_id, .. } => Some(*key_id),
            Self::User(_) => None,
        }
    }
}

/// What a caller may do in each project of the tenant.
///
/// Without project-scoped assignments every project inherits the tenant-wide grant
/// (`default`). A project-scoped role replaces it for that project, narrowing or extending
/// it; a project-bound API key sees only its project (`default` is empty).
#[derive(Debug, Clone, Default)]
pub struct ProjectAccess {
    /// The grant in projects without their own assignment (project-scoped permissions only).
    pub default: PermissionSet,
    /// Projects with their own grant.
    pub overrides: Arc<[(ProjectId, PermissionSet)]>,
}

impl ProjectAccess {
    /// The grant in `project`.
    pub fn in_project(&self, project: ProjectId) -> PermissionSet {
        self.overrides
            .iter()
            .find(|(id, _)| *id == project)
            .map_or(self.default, |(_, set)| *set)
    }

    /// Which projects hold `permission`, for filtering lists in SQL.
    pub fn filter(&self, permission: Permission) -> ProjectFilter {
        let differing = self
            .overrides
            .iter()
            .filter(|(_, set)| set.contains(permission) != self.default.contains(permission))
            .map(|(id, _)| *id)
            .collect::<Vec<_>>();
        match (self.default.contains(permission), differing.is_empty()) {
            (true, true) => ProjectFilter::All,
            (true, false) => ProjectFilter::AllExcept(differing),
            (false, true) => ProjectFilter::None,
            (false, false) => ProjectFilter::Only(differing),
        }
    }
}

/// The projects a permission holds in (see [`ProjectAccess::filter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectFilter {
    All,
    AllExcept(Vec<ProjectId>),
    Only(Vec<ProjectId>),
    None,
}

/// Proof that the current caller may act in one tenant, with the permissions they hold there.
///
/// The only way to open a transaction on tenant rows. It is issued by the authorization layer
/// (`tenantry_tenancy::authz`) after checking membership, tenant status and permission; a
/// workspace test (`scopes_are_issued_only_by_their_authorization_path` in the binary crate)
/// fails if any other module constructs one, or any other scope off its own path.
/// It also carries the request's [`Origin`], so every change it makes is audited with it.
#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant_id: TenantId,
    actor: Actor,
    permissions: PermissionSet,
    projects: ProjectAccess,
    origin: Arc<Origin>,
    placement: Placement,
}

impl TenantScope {
    /// For the authorization layer only (see the type's documentation).
    #[doc(hidden)]
    pub fn issue_after_authorization(
        tenant_id: TenantId,
        actor: Actor,
        permissions: PermissionSet,
        projects: ProjectAccess,
        origin: Arc<Origin>,
    ) -> Self {
        Self {
            tenant_id,
            actor,
            permissions,
            projects,
            origin,
            placement: Placement::SharedPool,
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The tenant-wide grant.
    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    pub fn projects(&self) -> &ProjectAccess {
        &self.projects
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// A tenant-wide permission.
    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// A permission on `project` and its resources.
    pub fn can_in_project(&self, project: ProjectId, permission: Permission) -> bool {
        self.projects.in_project(project).contains(permission)
    }

    /// Everything the caller may grant: the tenant-wide grant and every project grant.
    pub fn grantable(&self) -> PermissionSet {
        self.projects.overrides.iter().fold(
            self.permissions.union(self.projects.default),
            |acc, (_, set)| acc.union(*set),
        )
    }
}

/// Confines a transaction to what one authenticated user may see across tenants.
#[derive(Debug, Clone, Copy)]
pub struct UserScope {
    user_id: UserId,
}

impl UserScope {
    pub(crate) fn new(user_id: UserId) -> Self {
        Self { user_id }
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }
}

/// Proof that the caller is a platform administrator: opens transactions that see every
/// tenant's rows (`/api/v1/admin/…`, purges). Issued by `tenantry_tenancy::authz` after
/// checking the user's platform-admin flag, or for housekeeping and the command line.
#[derive(Debug, Clone)]
pub struct AdminScope {
    actor: Option<UserId>,
    origin: Arc<Origin>,
}

impl AdminScope {
    /// For the authorization layer only, after checking the user's platform-admin flag.
    #[doc(hidden)]
    pub fn issue_for_platform_admin(actor: UserId, origin: Arc<Origin>) -> Self {
        Self {
            actor: Some(actor),
            origin,
        }
    }

    /// For work no request causes: the periodic-task scheduler (`periodic`), which hands it
    /// to each task, and the command line.
    pub fn for_housekeeping() -> Self {
        Self {
            actor: None,
            origin: Arc::new(Origin::NONE),
        }
    }

    /// The administrator acting; `None` for housekeeping and the command line.
    pub fn actor(&self) -> Option<UserId> {
        self.actor
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_core::Permission::*;

    #[test]
    fn project_filters() {
        let a = ProjectId::new();
        let b = ProjectId::new();
        let read = PermissionSet::of(&[ProjectsRead]);
        let none = PermissionSet::EMPTY;
        let plain = ProjectAccess {
            default: read,
            overrides: Arc::new([]),
        };
        assert_eq!(plain.filter(ProjectsRead), ProjectFilter::All);
        assert_eq!(plain.filter(ProjectsWrite), ProjectFilter::None);
        let hidden = ProjectAccess {
            default: read,
            overrides: Arc::new([(a, none), (b, read)]),
        };
        assert_eq!(
            hidden.filter(ProjectsRead),
            ProjectFilter::AllExcept(vec![a])
        );
        let extended = ProjectAccess {
            default: none,
            overrides: Arc::new([(a, read), (b, none)]),
        };
        assert_eq!(extended.filter(ProjectsRead), ProjectFilter::Only(vec![a]));
        assert!(extended.in_project(a).contains(ProjectsRead));
        assert!(!extended.in_project(ProjectId::new()).contains(ProjectsRead));
    }
}
