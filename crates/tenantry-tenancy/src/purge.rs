//! Purging soft-deleted tenants once their retention window has passed.
//!
//! A deleted tenant keeps its rows (`status = 'deleted'`, `deleted_at` set) for
//! `tenancy.deleted_retention_days`; then housekeeping removes the tenant row, and with it,
//! through `ON DELETE CASCADE`, every row of every tenant table. The audit trail is the one
//! tenant-keyed table without a foreign key (records must outlive ordinary deletes): audit
//! erases the tenant's records first (`tenantry_audit::erase_tenant_trail`), which it admits
//! only for tenants whose status is `deleted`. Each purge leaves one `tenant.purged` record in the platform chain.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_audit::{Chain, Entry};
use tenantry_core::TenantId;
use tenantry_db::{AdminScope, Db, DbError, FromRow, Row};

use crate::{TenancyError, TenantStatus, admin::actor};

/// Tenants looked up per round.
const BATCH: u64 = 100;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub tenants: u64,
    pub audit_records: u64,
}

struct Due {
    id: TenantId,
    deleted_at: Option<DateTime<Utc>>,
}

impl FromRow for Due {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            deleted_at: row.opt_time()?,
        })
    }
}

/// Removes every tenant deleted more than `retention` ago, one transaction per tenant. Safe
/// to run on several nodes at once: a tenant another node purged first is skipped.
pub async fn purge_deleted_tenants(
    db: &Db,
    scope: &AdminScope,
    retention: TimeDelta,
) -> Result<Purged, TenancyError> {
    let mut purged = Purged::default();
    // A window reaching past the calendar's start (absurd configuration) makes nothing due.
    let Some(cutoff) = db.now().checked_sub_signed(retention) else {
        return Ok(purged);
    };
    loop {
        let mut tx = db.begin_admin(scope).await?;
        let due: Vec<Due> = tx
            .fetch_all(
                Query::select()
                    .columns(["id", "deleted_at"])
                    .from("tenants")
                    .and_where(Expr::col("status").eq(TenantStatus::Deleted.as_str()))
                    .and_where(Expr::col("deleted_at").lt(cutoff))
                    .order_by("deleted_at", Order::Asc)
                    .limit(BATCH),
            )
            .await?;
        tx.commit().await?;
        let full = due.len() as u64 == BATCH;
        let mut progressed = false;
        for tenant in due {
            if let Some(audit_records) = purge_one(db, scope, &tenant, cutoff).await? {
                purged.tenants += 1;
                purged.audit_records += audit_records;
                progressed = true;
            }
        }
        if !full || !progressed {
            break;
        }
    }
    if purged.tenants > 0 {
        tracing::info!(
            tenants = purged.tenants,
            audit_records = purged.audit_records,
            "purged deleted tenants"
        );
    }
    Ok(purged)
}

/// Purges one tenant; `None` when it is no longer due (purged elsewhere, or restored).
async fn purge_one(
    db: &Db,
    scope: &AdminScope,
    tenant: &Due,
    cutoff: DateTime<Utc>,
) -> Result<Option<u64>, TenancyError> {
    let mut tx = db.begin_admin(scope).await?;
    let audit_records = tenantry_audit::erase_tenant_trail(&mut tx, tenant.id).await?;
    let removed = tx
        .execute(
            Query::delete()
                .from_table("tenants")
                .and_where(Expr::col("id").eq(tenant.id))
                .and_where(Expr::col("status").eq(TenantStatus::Deleted.as_str()))
                .and_where(Expr::col("deleted_at").lt(cutoff)),
        )
        .await?;
    if removed == 0 {
        // Dropping the transaction rolls the audit deletion back.
        return Ok(None);
    }
    tenantry_audit::record_in(
        &mut tx,
        Chain::Platform,
        actor(scope),
        scope.origin(),
        Entry::new("tenant.purged", "tenant", tenant.id).with_summary(serde_json::json!({
            "deleted_at": tenant.deleted_at,
            "audit_records": audit_records,
        })),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, "tenant purged");
    Ok(Some(audit_records))
}
