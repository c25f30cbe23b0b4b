//! Stored files: list, read with the documents that reference them, delete when unreferenced.

use sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use serde_json::json;
use tenantry_audit::Entry;
use tenantry_core::{FileId, Page, PageRequest, Permission};
use tenantry_db::TenantScope;
use tenantry_storage::BlobKey;

use crate::{
    File, FileDetail, Files, FilesError,
    access::{confine, require},
    documents::select,
    usage::{self, Delta},
};

/// `files` with their document count, in the tenant.
fn files(scope: &TenantScope) -> SelectStatement {
    let count = Query::select()
        .expr(Expr::col(("d", "id")).count())
        .from_as("documents", "d")
        .and_where(Expr::col(("d", "tenant_id")).equals(("f", "tenant_id")))
        .and_where(Expr::col(("d", "file_id")).equals(("f", "id")))
        .to_owned();
    let mut q = Query::select();
    q.columns([
        ("f", "id"),
        ("f", "sha256"),
        ("f", "md5"),
        ("f", "size"),
        ("f", "created_at"),
        ("f", "unreferenced_since"),
    ])
    .expr_as(
        Expr::SubQuery(None, Box::new(count.into())),
        Alias::new("document_count"),
    )
    .from_as("files", "f")
    .and_where(Expr::col(("f", "tenant_id")).eq(scope.tenant_id()));
    q
}

impl Files {
    /// The tenant's stored files, newest first (`files:read`).
    pub async fn list_files(
        &self,
        scope: &TenantScope,
        page: &PageRequest,
    ) -> Result<Page<File>, FilesError> {
        require(scope, Permission::FilesRead)?;
        let mut q = files(scope);
        q.order_by(("f", "id"), Order::Desc)
            .limit(page.fetch_limit());
        if let Some(after) = page.after {
            q.and_where(Expr::col(("f", "id")).lt(after.0));
        }
        let rows: Vec<File> = self.db().read_tenant_all(scope, &q).await?;
        Ok(Page::from_rows(rows, page, |f| f.id.as_uuid()))
    }

    /// One file with the documents that reference it and that the caller may read
    /// (`files:read`).
    pub async fn get_file(
        &self,
        scope: &TenantScope,
        id: FileId,
    ) -> Result<FileDetail, FilesError> {
        require(scope, Permission::FilesRead)?;
        let mut tx = self.db().begin_tenant_read(scope).await?;
        let mut q = files(scope);
        q.and_where(Expr::col(("f", "id")).eq(id));
        let file: Option<File> = tx.fetch_optional(&q).await?;
        let file = file.ok_or(FilesError::NotFound)?;
        let mut documents = select(scope);
        documents
            .and_where(Expr::col(("d", "file_id")).eq(id))
            .order_by(("d", "id"), Order::Desc)
            .limit(200);
        let documents = if confine(&mut documents, scope, "d").is_ok() {
            tx.fetch_all(&documents).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(FileDetail { file, documents })
    }

    /// Deletes a file no document references (`files:delete`; `FileInUse` otherwise), then its
    /// object. The row goes first: a failure to delete the object leaves an orphan for the
    /// sweep, never a row without its object.
    pub async fn delete_file(&self, scope: &TenantScope, id: FileId) -> Result<(), FilesError> {
        require(scope, Permission::FilesDelete)?;
        let mut tx = self.db().begin_tenant(scope).await?;
        let mut q = files(scope);
        q.and_where(Expr::col(("f", "id")).eq(id));
        let file: File = tx.fetch_optional(&q).await?.ok_or(FilesError::NotFound)?;
        if file.document_count > 0 {
            return Err(FilesError::FileInUse(file.document_count));
        }
        let key: String = tx
            .fetch_one(
                Query::select()
                    .column("storage_key")
                    .from("files")
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("id").eq(id)),
            )
            .await?;
        // A concurrent upload may reference the file between the check and the delete; the
        // foreign key then refuses the delete (PostgreSQL) or SQLite's single writer has
        // already ordered them.
        tx.execute(
            Query::delete()
                .from_table("files")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
        usage::apply(
            &mut tx,
            scope.tenant_id(),
            Delta {
                bytes: -file.size,
                files: -1,
                documents: 0,
            },
        )
        .await?;
        tenantry_events::record_change(
            &mut tx,
            scope,
            Entry::new("file.deleted", "file", id)
                .with_summary(json!({"sha256": file.sha256, "size": file.size})),
            tenantry_events::Event::new(
                tenantry_events::EventType::FileDeleted,
                format!("files/{id}"),
                // As its GET showed it last: with no document (a referenced file stays).
                &FileDetail {
                    file: file.clone(),
                    documents: Vec::new(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        self.delete_object(&key).await;
        Ok(())
    }

    /// Deletes a stored object whose row is gone (best effort: the sweep retries).
    pub(crate) async fn delete_object(&self, key: &str) {
        match BlobKey::parse(key) {
            Ok(key) => {
                if let Err(error) = self.store().delete(&key).await {
                    tracing::warn!(%key, %error, "deleting a stored file failed; the sweep will retry");
                }
            }
            Err(error) => tracing::error!(key, %error, "a file row holds an invalid storage key"),
        }
    }
}
