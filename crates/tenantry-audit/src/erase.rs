//! The one deletion the trail admits: a purged tenant's records.

use sea_query::{Expr, ExprTrait, Query};
use tenantry_core::TenantId;
use tenantry_db::{DbError, Tx};

/// Deletes every record of `tenant`'s chain inside the purge's transaction (`tx`, opened with
/// an admin scope), so they go with the tenant or not at all; returns how many. The database
/// refuses it (trigger on SQLite, policy on PostgreSQL) unless the tenant's status is
/// `deleted`: the trail has no foreign key, records must outlive ordinary deletes.
pub async fn erase_tenant_trail(tx: &mut Tx, tenant: TenantId) -> Result<u64, DbError> {
    tx.execute(
        Query::delete()
            .from_table("audit_logs")
            .and_where(Expr::col("tenant_id").eq(tenant)),
    )
    .await
}
