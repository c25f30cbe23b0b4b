//! The `tenancy` section (`TENANTRY_TENANCY__*`): how long deleted tenants are kept, and the
//! invitation limits.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// Days a soft-deleted tenant's data is kept before housekeeping purges it for good
    /// (0 = at the next hourly run).
    pub deleted_retention_days: u32,
    /// Invitations one account may send in any hour, over all its tenants (0 = unlimited).
    /// Counted in the database, so the limit holds across restarts and nodes.
    pub invitations_per_sender_per_hour: u32,
    /// Invitations one tenant may send in any hour, all its members together (0 = unlimited).
    pub invitations_per_tenant_per_hour: u32,
    /// Pending invitations one tenant may have at a time (0 = unlimited).
    pub max_pending_invitations: u32,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            deleted_retention_days: 30,
            invitations_per_sender_per_hour: 50,
            invitations_per_tenant_per_hour: 100,
            max_pending_invitations: 500,
        }
    }
}
