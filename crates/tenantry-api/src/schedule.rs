//! The process's periodic work, collected from the contexts that own it.
//!
//! Each context contributes its tasks (`periodic_tasks(…)`); the assembly adds its own
//! (rate-limiter upkeep, idempotency keys) and hands the owners the answers they may not ask
//! for themselves (identity keeps the guests tenancy says are members; files asks tenancy's
//! statement whether a project exists, wired in `files_service`).

use std::time::Duration;

use anyhow::Context;
use tenantry_db::{
    AdminScope,
    periodic::{PeriodicTask, Schedule},
};

use crate::{AppState, idempotency};

/// How often idempotency keys past their 24 hours are pruned (first a minute after start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Every periodic task of a server built on `state`. Intervals come from each context's
/// configuration; run one by name with [`Schedule::run_now`].
pub fn schedule(state: &AppState) -> Schedule {
    let config = &state.config;
    let retention = chrono::TimeDelta::days(i64::from(config.tenancy.deleted_retention_days));
    // Never (`0`) sweeps is no task at all.
    let sweep_every = match config.files.sweep_interval_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let mut tasks = assembly_tasks(state);
    tasks.extend(state.identity.mailer().periodic_tasks());
    tasks.extend(tenantry_identity::periodic_tasks(
        &state.identity,
        vec![tenantry_tenancy::member_user_ids()],
    ));
    tasks.extend(tenantry_tenancy::periodic_tasks(&state.db, retention));
    tasks.extend(tenantry_files::periodic_tasks(&state.files, sweep_every));
    Schedule::new(tasks)
}

/// The assembly's own upkeep: rate-limiter keys of idle clients, tenants and API keys (every
/// minute) and idempotency keys (hourly).
fn assembly_tasks(state: &AppState) -> Vec<PeriodicTask> {
    let limits = state.limits.clone();
    let shrink = PeriodicTask::new("rate_limits.shrink", Duration::from_secs(60), move |_| {
        limits.shrink();
        std::future::ready(Ok(()))
    })
    .on_every_node();
    let db = state.db.clone();
    let prune = PeriodicTask::new("idempotency.prune", PRUNE_EVERY, move |scope| {
        let db = db.clone();
        async move {
            idempotency::prune(&db, &scope)
                .await
                .context("pruning idempotency keys")
                .map(|_| ())
        }
    })
    .first_after(Duration::from_secs(60));
    vec![shrink, prune]
}

/// Deletes idempotency keys past their 24 hours, of every tenant; returns how many.
pub async fn prune_idempotency_keys(
    state: &AppState,
    scope: &AdminScope,
) -> Result<u64, tenantry_db::DbError> {
    idempotency::prune(&state.db, scope).await
}
