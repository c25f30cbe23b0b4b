//! What tenancy answers other contexts, so that none of them names its tables, and the
//! periodic work it owns.
//!
//! Identity and files sit beside or below tenancy in the crate graph and cannot call it: the
//! assembly hands them these answers. Each is a statement they run inside their own
//! transaction, so the answer holds until they commit.

use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;
use sea_query::{Expr, ExprTrait, Query, SelectStatement};
use tenantry_core::{ProjectId, TenantId};
use tenantry_db::{Db, periodic::PeriodicTask};

/// How often tenants past their deletion window are purged (first a minute after start).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The ids of users who belong to a tenant (identity keeps such guests when pruning).
pub fn member_user_ids() -> SelectStatement {
    Query::select()
        .column("user_id")
        .from("memberships")
        .to_owned()
}

/// A row when `project` exists in `tenant` (files checks a document's project with it).
pub fn project_in_tenant(tenant: TenantId, project: ProjectId) -> SelectStatement {
    Query::select()
        .column("id")
        .from("projects")
        .and_where(Expr::col("tenant_id").eq(tenant))
        .and_where(Expr::col("id").eq(project))
        .to_owned()
}

/// Tenancy's periodic work: purging tenants deleted longer than `retention` ago.
pub fn periodic_tasks(db: &Db, retention: TimeDelta) -> Vec<PeriodicTask> {
    let db = db.clone();
    vec![
        PeriodicTask::new("tenancy.purge_deleted_tenants", PURGE_EVERY, move |scope| {
            let db = db.clone();
            async move {
                crate::purge_deleted_tenants(&db, &scope, retention)
                    .await
                    .context("purging deleted tenants")
                    .map(|_| ())
            }
        })
        .first_after(Duration::from_secs(60)),
    ]
}
