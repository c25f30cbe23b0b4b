//! Capabilities that open tenant- or user-confined transactions.

use tenantry_core::{Permission, TenantId, UserId, permission::PermissionSet};

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
}

impl Actor {
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
        }
    }
}

/// Proof that the current caller may act in one tenant, with the permissions they hold there.
///
/// The only way to open a transaction on tenant rows. It is issued by the authorization layer
/// (`tenantry_tenancy::authz`) after checking membership, tenant status and permission; a
/// workspace test (`scope_is_issued_only_by_authz`) fails if any other module constructs one.
#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant_id: TenantId,
    actor: Actor,
    permissions: PermissionSet,
    placement: Placement,
}

impl TenantScope {
    /// For the authorization layer only (see the type's documentation).
    #[doc(hidden)]
    pub fn issue_after_authorization(
        tenant_id: TenantId,
        actor: Actor,
        permissions: PermissionSet,
    ) -> Self {
        Self {
            tenant_id,
            actor,
            permissions,
            placement: Placement::SharedPool,
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
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
