//! The permission catalog and the system roles.
//!
//! Permissions are `resource:action` strings on the wire and bits in memory: a role's grant
//! is a `PermissionSet`, so a check on the request path is one AND. The catalog lists only
//! permissions some endpoint enforces; a capability adds its own when it lands.

use std::fmt;

use serde::{Serialize, Serializer};
use utoipa::ToSchema;

macro_rules! catalog {
    ($($variant:ident = $bit:literal, $name:literal, $description:literal;)*) => {
        /// One permission of the catalog.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        pub enum Permission { $($variant = $bit),* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name),* }
            }

            pub const fn description(self) -> &'static str {
                match self { $(Permission::$variant => $description),* }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

catalog! {
    TenantRead = 0, "tenant:read", "Read the tenant's profile and settings";
    TenantUpdate = 1, "tenant:update", "Change the tenant's name and settings";
    TenantDelete = 2, "tenant:delete", "Delete the tenant";
    MembersRead = 3, "members:read", "List the tenant's members";
    MembersManage = 4, "members:manage", "Add, remove and change the role of members";
    RolesRead = 5, "roles:read", "List the tenant's roles";
    ProjectsRead = 6, "projects:read", "List and read projects";
    ProjectsWrite = 7, "projects:write", "Create and update projects";
    ProjectsDelete = 8, "projects:delete", "Delete projects";
    RolesManage = 9, "roles:manage", "Create, change and delete the tenant's custom roles";
    ApiKeysRead = 10, "api_keys:read", "List the tenant's API keys (never their secrets)";
    ApiKeysManage = 11, "api_keys:manage", "Create and revoke API keys";
    AuditRead = 12, "audit:read", "Read the tenant's audit trail";
    InvitationsRead = 13, "invitations:read", "List pending invitations";
    DocumentsRead = 14, "documents:read", "List, read and download documents";
    DocumentsWrite = 15, "documents:write", "Upload documents and change their metadata";
    DocumentsDelete = 16, "documents:delete", "Delete documents";
    FilesRead = 17, "files:read", "List stored files and the documents that reference them";
    FilesDelete = 18, "files:delete", "Delete stored files no document references";
}

impl Permission {
    /// Permissions on a project's own resources: a project-scoped role assignment or a
    /// project-bound API key grants or withholds these per project. Every other permission
    /// is tenant-wide.
    pub const PROJECT_SCOPED: PermissionSet = PermissionSet::of(&[
        Permission::ProjectsRead,
        Permission::ProjectsWrite,
        Permission::ProjectsDelete,
        Permission::DocumentsRead,
        Permission::DocumentsWrite,
        Permission::DocumentsDelete,
    ]);

    /// Reads that reveal who can do what or who did what, or what is stored across every
    /// project; viewers and members do not get them.
    pub const SENSITIVE_READS: PermissionSet = PermissionSet::of(&[
        Permission::ApiKeysRead,
        Permission::AuditRead,
        Permission::InvitationsRead,
        Permission::FilesRead,
    ]);

    pub fn is_project_scoped(self) -> bool {
        Self::PROJECT_SCOPED.contains(self)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A set of permissions as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub const EMPTY: Self = Self(0);

    pub const fn of(permissions: &[Permission]) -> Self {
        let mut bits = 0u64;
        let mut i = 0;
        while i < permissions.len() {
            bits |= 1 << permissions[i] as u8;
            i += 1;
        }
        Self(bits)
    }

    pub const fn all() -> Self {
        Self::of(Permission::ALL)
    }

    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & (1 << permission as u8) != 0
    }

    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses permission names; the first unknown name is the error.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names
            .iter()
            .map(|n| Permission::parse(n.as_ref()).ok_or_else(|| n.as_ref().to_owned()))
            .collect()
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & Self::all().0)
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, p| acc | (1 << p as u8)))
    }
}

/// The built-in, immutable roles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemRole {
    Owner,
    Admin,
    Member,
    Viewer,
}

use Permission::*;

const OWNER: PermissionSet = PermissionSet::all();
const ADMIN: PermissionSet = PermissionSet(OWNER.0 & !(1 << TenantDelete as u8));
const MEMBER: PermissionSet = PermissionSet::of(&[
    TenantRead,
    MembersRead,
    RolesRead,
    ProjectsRead,
    ProjectsWrite,
    DocumentsRead,
    DocumentsWrite,
]);
const VIEWER: PermissionSet = PermissionSet::of(&[
    TenantRead,
    MembersRead,
    RolesRead,
    ProjectsRead,
    DocumentsRead,
]);

impl SystemRole {
    pub const ALL: [SystemRole; 4] = [Self::Owner, Self::Admin, Self::Member, Self::Viewer];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub const fn description(self) -> &'static str {
        match self {
            Self::Owner => "Full control, including deleting the tenant",
            Self::Admin => "Everything except deleting the tenant",
            Self::Member => "Reads and writes the tenant's content",
            Self::Viewer => "Reads the tenant's content",
        }
    }

    pub const fn permissions(self) -> PermissionSet {
        match self {
            Self::Owner => OWNER,
            Self::Admin => ADMIN,
            Self::Member => MEMBER,
            Self::Viewer => VIEWER,
        }
    }
}

impl fmt::Display for SystemRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_parse_back() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert!(p.as_str().contains(':'));
        }
        let mut names: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
        assert!(Permission::ALL.len() <= 64, "PermissionSet is a u64");
    }

    #[test]
    fn role_hierarchy() {
        assert!(
            SystemRole::Admin
                .permissions()
                .is_subset_of(SystemRole::Owner.permissions())
        );
        assert!(
            SystemRole::Member
                .permissions()
                .is_subset_of(SystemRole::Admin.permissions())
        );
        assert!(
            SystemRole::Viewer
                .permissions()
                .is_subset_of(SystemRole::Member.permissions())
        );
        assert!(!SystemRole::Admin.permissions().contains(TenantDelete));
        assert!(SystemRole::Owner.permissions().contains(TenantDelete));
        assert!(!SystemRole::Viewer.permissions().contains(ProjectsWrite));
        assert!(SystemRole::Member.permissions().contains(ProjectsWrite));
        assert!(!SystemRole::Member.permissions().contains(MembersManage));
        for p in Permission::SENSITIVE_READS.iter() {
            assert!(!SystemRole::Member.permissions().contains(p), "{p}");
            assert!(SystemRole::Admin.permissions().contains(p), "{p}");
        }
        for p in Permission::ALL {
            if p.as_str().ends_with(":read") && !Permission::SENSITIVE_READS.contains(*p) {
                assert!(SystemRole::Viewer.permissions().contains(*p), "{p}");
            }
        }
    }

    #[test]
    fn set_round_trips_bits() {
        let set = PermissionSet::of(&[TenantRead, ProjectsDelete]);
        assert_eq!(PermissionSet::from_bits(set.bits()), set);
        assert_eq!(set.iter().count(), 2);
        assert_eq!(SystemRole::parse("viewer"), Some(SystemRole::Viewer));
        assert_eq!(SystemRole::parse("root"), None);
    }
}
