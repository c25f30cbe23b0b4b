//! Collecting what uploads, deletions and crashes leave behind, across tenants: files no
//! document has referenced for the grace period (row first, then object), objects under
//! `tenants/` without a file row (a crash between promoting and committing, a failed object
//! delete) or staged uploads older than the grace period, and temporary files of local
//! uploads that never finished.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_core::{FileId, TenantId};
use tenantry_db::{AdminScope, DbError, FromRow, Row, periodic::PeriodicTask};
use tenantry_storage::{BlobKey, KeyKind};

use crate::{
    Files, FilesError,
    usage::{self, Delta},
};

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// File rows (and their objects) no document referenced any more.
    pub files: u64,
    /// Objects without a row: promoted by an upload that never committed, or left by a
    /// delete whose object removal failed.
    pub orphan_objects: u64,
    /// Staged uploads that never finished.
    pub staged_objects: u64,
    /// Temporary files of interrupted local uploads.
    pub incomplete_uploads: u64,
}

struct Unreferenced {
    tenant_id: TenantId,
    id: FileId,
    size: i64,
    storage_key: String,
}

impl FromRow for Unreferenced {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant_id: row.id()?,
            id: row.id()?,
            size: row.i64()?,
            storage_key: row.string()?,
        })
    }
}

/// How many unreferenced files one pass collects at most.
const BATCH: u64 = 500;

/// The files context's periodic work: the orphan sweep every `every` (first after two minutes
/// at most), with the configured `orphan_grace`. `None` (configured `0`) never sweeps.
pub fn periodic_tasks(files: &Files, every: Option<Duration>) -> Vec<PeriodicTask> {
    let Some(every) = every else {
        return Vec::new();
    };
    let files = files.clone();
    vec![
        PeriodicTask::new("files.sweep", every, move |scope| {
            let files = files.clone();
            async move {
                let grace = files.settings().orphan_grace;
                files
                    .sweep(&scope, grace)
                    .await
                    .context("sweeping orphaned files")
                    .map(|_| ())
            }
        })
        .first_after(every.min(Duration::from_secs(120))),
    ]
}

impl Files {
    /// One sweep with `grace` (the configured `orphan_grace` in housekeeping; tests and the
    /// command line may pass zero).
    pub async fn sweep(
        &self,
        scope: &AdminScope,
        grace: Duration,
    ) -> Result<SweepReport, FilesError> {
        let cutoff =
            self.db().now() - TimeDelta::from_std(grace).unwrap_or_else(|_| TimeDelta::hours(1));
        let mut report = SweepReport {
            files: self.collect_unreferenced(scope, cutoff).await?,
            ..SweepReport::default()
        };
        self.collect_orphans(scope, cutoff, &mut report).await?;
        report.incomplete_uploads = self.store().sweep_incomplete_uploads(cutoff).await?;
        if report != SweepReport::default() {
            tracing::info!(?report, "files sweep");
        }
        Ok(report)
    }

    async fn collect_unreferenced(
        &self,
        scope: &AdminScope,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, FilesError> {
        let mut tx = self.db().begin_admin(scope).await?;
        let candidates: Vec<Unreferenced> = tx
            .fetch_all(
                Query::select()
                    .columns(["tenant_id", "id", "size", "storage_key"])
                    .from("files")
                    .and_where(Expr::col("unreferenced_since").lt(cutoff))
                    .order_by("unreferenced_since", Order::Asc)
                    .limit(BATCH),
            )
            .await?;
        tx.commit().await?;
        let mut collected = 0;
        for file in candidates {
            let mut tx = self.db().begin_admin(scope).await?;
            let referenced = Query::select()
                .column("id")
                .from("documents")
                .and_where(Expr::col("tenant_id").eq(file.tenant_id))
                .and_where(Expr::col("file_id").eq(file.id))
                .to_owned();
            // Still unreferenced and still past the cutoff (a re-upload clears the mark).
            let deleted = tx
                .execute(
                    Query::delete()
                        .from_table("files")
                        .and_where(Expr::col("tenant_id").eq(file.tenant_id))
                        .and_where(Expr::col("id").eq(file.id))
                        .and_where(Expr::col("unreferenced_since").lt(cutoff))
                        .and_where(Expr::exists(referenced).not()),
                )
                .await?;
            if deleted == 1 {
                usage::apply(
                    &mut tx,
                    file.tenant_id,
                    Delta {
                        bytes: -file.size,
                        files: -1,
                        documents: 0,
                    },
                )
                .await?;
            }
            tx.commit().await?;
            if deleted == 1 {
                self.delete_object(&file.storage_key).await;
                collected += 1;
            }
        }
        Ok(collected)
    }

    async fn collect_orphans(
        &self,
        scope: &AdminScope,
        cutoff: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), FilesError> {
        let mut objects = self.store().list(&BlobKey::all_tenants_prefix());
        while let Some(meta) = objects.next().await {
            let meta = meta?;
            if meta.last_modified >= cutoff {
                continue;
            }
            let orphan = match meta.key.kind() {
                Some(KeyKind::Staging { .. }) => {
                    report.staged_objects += 1;
                    true
                }
                Some(KeyKind::File {
                    tenant_id, file_id, ..
                }) => {
                    let known = self
                        .has_row(scope, tenant_id, FileId::from_uuid(file_id), &meta.key)
                        .await?;
                    if !known {
                        report.orphan_objects += 1;
                    }
                    !known
                }
                None => {
                    tracing::warn!(key = %meta.key, "an object outside the key layout; left alone");
                    false
                }
            };
            if orphan && let Err(error) = self.store().delete(&meta.key).await {
                tracing::warn!(key = %meta.key, %error, "deleting an orphaned object failed");
            }
        }
        Ok(())
    }

    /// Whether a file row points at `key`.
    async fn has_row(
        &self,
        scope: &AdminScope,
        tenant: TenantId,
        file: FileId,
        key: &BlobKey,
    ) -> Result<bool, FilesError> {
        let mut tx = self.db().begin_admin(scope).await?;
        let found: Option<uuid::Uuid> = tx
            .fetch_optional(
                Query::select()
                    .column("id")
                    .from("files")
                    .and_where(Expr::col("tenant_id").eq(tenant))
                    .and_where(Expr::col("id").eq(file))
                    .and_where(Expr::col("storage_key").eq(key.as_str())),
            )
            .await?;
        tx.commit().await?;
        Ok(found.is_some())
    }
}
