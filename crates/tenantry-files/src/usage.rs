//! The tenant's storage usage, kept exact by changing it in the transaction of every change
//! to files and documents.

use sea_query::{Expr, ExprTrait, OnConflict, Query};
use tenantry_core::{Permission, TenantId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, TenantScope, Tx};

use crate::{Files, FilesError, StorageUsage, access::require};

/// A change of the counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delta {
    pub bytes: i64,
    pub files: i64,
    pub documents: i64,
}

struct Counters(i64, i64, i64);

impl FromRow for Counters {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self(row.i64()?, row.i64()?, row.i64()?))
    }
}

/// The counters of `tenant` inside `tx` (zeros before the first upload).
pub(crate) async fn read(tx: &mut Tx, tenant: TenantId) -> Result<(i64, i64, i64), DbError> {
    let row: Option<Counters> = tx
        .fetch_optional(
            Query::select()
                .columns(["bytes", "files", "documents"])
                .from("storage_usage")
                .and_where(Expr::col("tenant_id").eq(tenant)),
        )
        .await?;
    Ok(row.map_or((0, 0, 0), |Counters(b, f, d)| (b, f, d)))
}

/// Applies `delta` to `tenant`'s counters inside `tx` and answers the new stored bytes. The
/// update takes the row's lock (PostgreSQL) or the single writer (SQLite), so concurrent
/// uploads see each other's bytes before their quota check.
pub(crate) async fn apply(tx: &mut Tx, tenant: TenantId, delta: Delta) -> Result<i64, DbError> {
    tx.execute(
        Query::insert()
            .into_table("storage_usage")
            .row([
                ("tenant_id", tenant.into()),
                ("bytes", 0i64.into()),
                ("files", 0i64.into()),
                ("documents", 0i64.into()),
            ])
            .on_conflict(OnConflict::column("tenant_id").do_nothing().to_owned()),
    )
    .await?;
    tx.execute(
        Query::update()
            .table("storage_usage")
            .value("bytes", Expr::col("bytes").add(delta.bytes))
            .value("files", Expr::col("files").add(delta.files))
            .value("documents", Expr::col("documents").add(delta.documents))
            .and_where(Expr::col("tenant_id").eq(tenant)),
    )
    .await?;
    Ok(read(tx, tenant).await?.0)
}

impl Files {
    /// The tenant's storage usage (`tenant:read`).
    pub async fn usage(&self, scope: &TenantScope) -> Result<StorageUsage, FilesError> {
        require(scope, Permission::TenantRead)?;
        let mut tx = self.db().begin_tenant_read(scope).await?;
        let (bytes, files, documents) = read(&mut tx, scope.tenant_id()).await?;
        tx.commit().await?;
        Ok(StorageUsage {
            bytes,
            files,
            documents,
            quota_bytes: self.quota().map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
        })
    }

    /// The configured quota, `None` when unlimited.
    pub(crate) fn quota(&self) -> Option<u64> {
        Some(self.settings().quota_bytes).filter(|q| *q > 0)
    }
}
