//! Listing, reading, renaming and deleting documents.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement};
use serde_json::json;
use tenantry_audit::Entry;
use tenantry_core::{DocumentId, FileId, Page, PageRequest, Permission, ProjectId, UserId};
use tenantry_db::{TenantScope, Tx};
use tenantry_events::{Event, EventType};
use tenantry_storage::sniff::MimeType;

use crate::{
    Document, DocumentDeleted, Files, FilesError,
    access::{can, confine, reads_none, require_on},
    usage::{self, Delta},
};

/// Filters for listing documents; all optional, combined with AND.
#[derive(Debug, Default, Clone)]
pub struct DocumentFilter {
    /// Case-insensitive substring of the file name.
    pub filename: Option<String>,
    pub project_id: Option<ProjectId>,
    pub user_id: Option<UserId>,
    /// `created_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `created_at < to`.
    pub to: Option<DateTime<Utc>>,
}

/// Metadata to change.
#[derive(Debug, Default, Clone)]
pub struct DocumentChange {
    pub filename: Option<String>,
    pub mime_type: Option<MimeType>,
}

/// `documents d JOIN files f`, in the tenant, for [`Document`].
pub(crate) fn select(scope: &TenantScope) -> SelectStatement {
    let mut q = Query::select();
    q.columns(Document::COLUMNS)
        .from_as("documents", "d")
        .join_as(
            JoinType::InnerJoin,
            "files",
            "f",
            Expr::col(("f", "tenant_id"))
                .equals(("d", "tenant_id"))
                .and(Expr::col(("f", "id")).equals(("d", "file_id"))),
        )
        .and_where(Expr::col(("d", "tenant_id")).eq(scope.tenant_id()));
    q
}

/// One document of the scope's tenant, whoever may see it (callers check access).
pub(crate) async fn fetch(
    tx: &mut Tx,
    scope: &TenantScope,
    id: DocumentId,
) -> Result<Option<Document>, FilesError> {
    let mut q = select(scope);
    q.and_where(Expr::col(("d", "id")).eq(id));
    Ok(tx.fetch_optional(&q).await?)
}

impl Files {
    /// Documents the caller may read, newest first.
    pub async fn list_documents(
        &self,
        scope: &TenantScope,
        filter: &DocumentFilter,
        page: &PageRequest,
    ) -> Result<Page<Document>, FilesError> {
        let mut q = select(scope);
        confine(&mut q, scope, "d")?;
        q.order_by(("d", "id"), Order::Desc)
            .limit(page.fetch_limit());
        if let Some(after) = page.after {
            q.and_where(Expr::col(("d", "id")).lt(after.0));
        }
        if let Some(name) = filter.filename.as_deref().filter(|n| !n.is_empty()) {
            q.and_where(
                Expr::expr(Func::lower(Expr::col(("d", "filename"))))
                    .like(tenantry_db::contains_pattern(name)),
            );
        }
        if let Some(project) = filter.project_id {
            q.and_where(Expr::col(("d", "project_id")).eq(project));
        }
        if let Some(user) = filter.user_id {
            q.and_where(Expr::col(("d", "user_id")).eq(user));
        }
        if let Some(from) = filter.from {
            q.and_where(Expr::col(("d", "created_at")).gte(from));
        }
        if let Some(to) = filter.to {
            q.and_where(Expr::col(("d", "created_at")).lt(to));
        }
        let rows: Vec<Document> = self.db().read_tenant_all(scope, &q).await?;
        Ok(Page::from_rows(rows, page, |d| d.id.as_uuid()))
    }

    /// One document (`documents:read` where it lives; otherwise as missing).
    pub async fn get_document(
        &self,
        scope: &TenantScope,
        id: DocumentId,
    ) -> Result<Document, FilesError> {
        let mut tx = self.db().begin_tenant_read(scope).await?;
        let document = fetch(&mut tx, scope, id).await?;
        tx.commit().await?;
        visible(scope, document, Permission::DocumentsRead)
    }

    /// Renames a document or corrects its MIME type (`documents:write`).
    pub async fn update_document(
        &self,
        scope: &TenantScope,
        id: DocumentId,
        change: DocumentChange,
    ) -> Result<Document, FilesError> {
        let mut tx = self.db().begin_tenant(scope).await?;
        let before = visible(
            scope,
            fetch(&mut tx, scope, id).await?,
            Permission::DocumentsWrite,
        )?;
        require_on(scope, before.project_id, Permission::DocumentsWrite)?;
        let mut update = Query::update();
        update
            .table("documents")
            .value("updated_at", tx.now())
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("id").eq(id));
        let mut summary = serde_json::Map::new();
        if let Some(name) = &change.filename {
            summary.insert("filename".into(), name.as_str().into());
            update.value("filename", name.as_str());
        }
        if let Some(mime) = &change.mime_type {
            summary.insert("mime_type".into(), mime.as_str().into());
            update.value("mime_type", mime.as_str());
        }
        tx.execute(&update).await?;
        let document = fetch(&mut tx, scope, id)
            .await?
            .ok_or(FilesError::NotFound)?;
        let event = Event::updated(
            EventType::DocumentUpdated,
            format!("documents/{id}"),
            &document,
            summary.keys().cloned(),
        );
        tenantry_events::record_change(
            &mut tx,
            scope,
            Entry::new("document.updated", "document", id)
                .with_summary(summary.into())
                .in_project(before.project_id),
            event,
        )
        .await?;
        tx.commit().await?;
        Ok(document)
    }

    /// Deletes a document (`documents:delete`). When it was the file's last reference, the
    /// file is marked unreferenced; the sweep deletes it and its object after the grace period
    /// (a re-upload of the same content before then reuses it).
    pub async fn delete_document(
        &self,
        scope: &TenantScope,
        id: DocumentId,
    ) -> Result<(), FilesError> {
        let mut tx = self.db().begin_tenant(scope).await?;
        let document = visible(
            scope,
            fetch(&mut tx, scope, id).await?,
            Permission::DocumentsDelete,
        )?;
        require_on(scope, document.project_id, Permission::DocumentsDelete)?;
        let deleted = tx
            .execute(
                Query::delete()
                    .from_table("documents")
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("id").eq(id)),
            )
            .await?;
        if deleted == 0 {
            return Err(FilesError::NotFound);
        }
        let now = tx.now();
        mark_if_unreferenced(&mut tx, scope, document.file_id, now).await?;
        usage::apply(
            &mut tx,
            scope.tenant_id(),
            Delta {
                documents: -1,
                ..Delta::default()
            },
        )
        .await?;
        let data = DocumentDeleted {
            document_id: id,
            file_id: document.file_id,
            filename: document.filename.clone(),
            project_id: document.project_id,
        };
        tenantry_events::record_change(
            &mut tx,
            scope,
            Entry::new("document.deleted", "document", id)
                .with_summary(json!({
                    "filename": document.filename,
                    "file_id": document.file_id,
                }))
                .in_project(document.project_id),
            Event::new(EventType::DocumentDeleted, format!("documents/{id}"), &data),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The document if the caller may read it or holds `permission` where it lives, else
/// `NotFound` — or `Forbidden` when the caller holds neither for any document at all (like a
/// missing one, that reveals nothing about this document).
pub(crate) fn visible(
    scope: &TenantScope,
    document: Option<Document>,
    permission: Permission,
) -> Result<Document, FilesError> {
    if reads_none(scope, permission) {
        return Err(FilesError::Forbidden(permission));
    }
    document
        .filter(|d| {
            can(scope, d.project_id, Permission::DocumentsRead)
                || can(scope, d.project_id, permission)
        })
        .ok_or(FilesError::NotFound)
}

/// Marks `file` unreferenced (since `now`) when no document references it any more.
async fn mark_if_unreferenced(
    tx: &mut Tx,
    scope: &TenantScope,
    file: FileId,
    now: DateTime<Utc>,
) -> Result<(), FilesError> {
    let referenced = Query::select()
        .column("id")
        .from("documents")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .and_where(Expr::col("file_id").eq(file))
        .to_owned();
    tx.execute(
        Query::update()
            .table("files")
            .value("unreferenced_since", now)
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("id").eq(file))
            .and_where(Expr::exists(referenced).not()),
    )
    .await?;
    Ok(())
}
