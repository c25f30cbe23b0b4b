//! Uploads: stream to a staging object while hashing, then deduplicate or promote, then one
//! transaction records everything.

use futures::Stream;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_audit::Entry;
use tenantry_core::{DocumentId, FileId, Permission, ProjectId};
use tenantry_db::{InsertRow, TenantScope, Tx};
use tenantry_events::{Event, EventType};
use tenantry_storage::{BlobKey, PutError, PutOutcome, sniff};

use crate::{
    Document, DocumentUploaded, Files, FilesError,
    access::can,
    documents::fetch,
    usage::{self, Delta},
};

/// An upload written to its staging object, not yet a document. Pass it to
/// [`Files::commit_upload`], or to [`Files::discard`] when the request fails.
#[derive(Debug)]
pub struct Staged {
    key: BlobKey,
    outcome: PutOutcome,
}

impl Staged {
    pub fn size(&self) -> u64 {
        self.outcome.size
    }
}

/// The metadata of an upload. `filename` defaults to `upload`, `mime_type` to the part's
/// content type and then `application/octet-stream`.
#[derive(Debug, Default, Clone)]
pub struct UploadMeta {
    pub filename: Option<String>,
    pub mime_type: Option<String>,
    pub project_id: Option<ProjectId>,
}

/// Longest file name kept (characters).
const MAX_FILENAME: usize = 255;

/// The file name as stored: trimmed, without directories or hidden characters (see
/// [`tenantry_core::text::check_visible`]: a right-to-left override would disguise the
/// extension).
fn clean_filename(name: Option<String>) -> Result<String, FilesError> {
    let name = name.unwrap_or_else(|| "upload".to_owned());
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base == "." || base == ".." {
        return Err(FilesError::Invalid {
            field: "filename",
            message: "must name a file".into(),
        });
    }
    if base.chars().count() > MAX_FILENAME
        || tenantry_core::text::check_visible(base, false).is_err()
    {
        return Err(FilesError::Invalid {
            field: "filename",
            message: format!(
                "must be at most {MAX_FILENAME} characters, without control, bidirectional or \
                 invisible formatting characters"
            ),
        });
    }
    Ok(base.to_owned())
}

impl Files {
    /// Checks that the caller may upload (to `project`, when the request named it before the
    /// file) and how many bytes still fit, then streams `body` to a staging object, hashing it.
    /// Over the limit → `TooLarge` (or `QuotaExceeded` when the quota's room was the limit)
    /// as soon as the limit is crossed; nothing is left behind.
    pub async fn stage<S, E>(
        &self,
        scope: &TenantScope,
        project: Option<ProjectId>,
        body: S,
    ) -> Result<Staged, FilesError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        // Without a project yet (the form may name it after the file), the caller must be
        // able to upload somewhere; `commit_upload` checks the final place.
        let allowed = match project {
            Some(_) => can(scope, project, Permission::DocumentsWrite),
            None => {
                scope.can(Permission::DocumentsWrite)
                    || scope.projects().filter(Permission::DocumentsWrite)
                        != tenantry_db::ProjectFilter::None
            }
        };
        if !allowed {
            return Err(FilesError::Forbidden(Permission::DocumentsWrite));
        }
        let max = self.settings().max_upload_bytes;
        let limit = match self.quota() {
            None => max,
            Some(quota) => {
                let mut tx = self.db().begin_tenant_read(scope).await?;
                let (used, _, _) = usage::read(&mut tx, scope.tenant_id()).await?;
                tx.commit().await?;
                let room = quota.saturating_sub(u64::try_from(used).unwrap_or(0));
                if room == 0 {
                    return Err(FilesError::QuotaExceeded { quota });
                }
                std::cmp::min(max, room)
            }
        };
        let key = BlobKey::staging(scope.tenant_id());
        match self.store().put_stream(&key, body, limit).await {
            Ok(outcome) => Ok(Staged { key, outcome }),
            Err(PutError::TooLarge { .. }) => match self.quota() {
                Some(quota) if limit < max => Err(FilesError::QuotaExceeded { quota }),
                _ => Err(FilesError::TooLarge { limit }),
            },
            Err(PutError::Body(e)) => Err(FilesError::Malformed(format!(
                "the upload body could not be read: {e}"
            ))),
            Err(PutError::Storage(e)) => Err(e.into()),
        }
    }

    /// Deletes a staged upload that will not become a document (best effort: the sweep
    /// collects what this misses).
    pub async fn discard(&self, staged: Staged) {
        if let Err(error) = self.store().delete(&staged.key).await {
            tracing::warn!(key = %staged.key, %error, "deleting a staged upload failed");
        }
    }

    /// Makes a staged upload a document: validates the metadata, checks the content against
    /// the declared MIME type, then reuses the tenant's file with the same SHA-256 or promotes
    /// the object to a new file, and records document, usage, event and audit in one
    /// transaction. The staged object is gone afterwards, whatever the outcome.
    pub async fn commit_upload(
        &self,
        scope: &TenantScope,
        staged: Staged,
        meta: UploadMeta,
    ) -> Result<Document, FilesError> {
        let result = self.commit_staged(scope, &staged, meta).await;
        match &result {
            // A new file took the staged object over (promoted): nothing left to delete.
            Ok((_, true)) => {}
            _ => self.discard(staged).await,
        }
        result.map(|(document, _)| document)
    }

    /// The document, and whether the staged object became its file.
    async fn commit_staged(
        &self,
        scope: &TenantScope,
        staged: &Staged,
        meta: UploadMeta,
    ) -> Result<(Document, bool), FilesError> {
        let project = meta.project_id;
        if !can(scope, project, Permission::DocumentsWrite) {
            return Err(match project {
                Some(_) if !can(scope, project, Permission::DocumentsRead) => unknown_project(),
                _ => FilesError::Forbidden(Permission::DocumentsWrite),
            });
        }
        let filename = clean_filename(meta.filename)?;
        let mime = match meta.mime_type.as_deref() {
            Some(declared) => {
                sniff::MimeType::parse(declared).map_err(|e| FilesError::Invalid {
                    field: "mime_type",
                    message: e.to_string(),
                })?
            }
            None => sniff::MimeType::octet_stream(),
        };
        sniff::check(&mime, &staged.outcome.head).map_err(|e| FilesError::Invalid {
            field: "mime_type",
            message: e.to_string(),
        })?;
        let new = NewDocument {
            id: DocumentId::new(),
            filename,
            mime_type: mime.as_str().to_owned(),
            project,
        };
        // Identical content already stored in this tenant: reference it.
        if let Some(document) = self.reference_existing(scope, staged, &new).await? {
            return Ok((document, false));
        }
        let file_id = FileId::new();
        let now = self.db().now();
        let key = BlobKey::file(
            scope.tenant_id(),
            file_id.as_uuid(),
            &staged.outcome.sha256,
            now,
        )
        .map_err(|e| FilesError::Malformed(e.to_string()))?;
        self.store().promote(&staged.key, &key).await?;
        match self
            .insert_new_file(scope, staged, &new, file_id, &key)
            .await
        {
            Ok(document) => Ok((document, true)),
            Err(error) => {
                // Nothing points at the promoted object: delete it (or leave it to the sweep).
                if let Err(e) = self.store().delete(&key).await {
                    tracing::warn!(%key, error = %e, "deleting an unused promoted upload failed");
                }
                match error {
                    // Another upload of the same content committed first: reference it.
                    FilesError::Db(e) if e.is_unique_violation_on("sha256") => {
                        let document = self.reference_existing(scope, staged, &new).await?;
                        document.map(|d| (d, false)).ok_or(FilesError::NotFound)
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// Inserts the document for the tenant's existing file with the staged SHA-256, if any.
    async fn reference_existing(
        &self,
        scope: &TenantScope,
        staged: &Staged,
        new: &NewDocument,
    ) -> Result<Option<Document>, FilesError> {
        let mut tx = self.db().begin_tenant(scope).await?;
        self.check_project(&mut tx, scope, new.project).await?;
        let existing: Option<uuid::Uuid> = tx
            .fetch_optional(
                Query::select()
                    .column("id")
                    .from("files")
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("sha256").eq(staged.outcome.sha256.as_str())),
            )
            .await?;
        let Some(file_id) = existing.map(FileId::from_uuid) else {
            return Ok(None);
        };
        tx.execute(
            Query::update()
                .table("files")
                .value(
                    "unreferenced_since",
                    Option::<chrono::DateTime<chrono::Utc>>::None,
                )
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(file_id)),
        )
        .await?;
        let delta = Delta {
            documents: 1,
            ..Delta::default()
        };
        let document = self
            .record(&mut tx, scope, staged, new, file_id, delta, true)
            .await?;
        tx.commit().await?;
        Ok(Some(document))
    }

    async fn insert_new_file(
        &self,
        scope: &TenantScope,
        staged: &Staged,
        new: &NewDocument,
        file_id: FileId,
        key: &BlobKey,
    ) -> Result<Document, FilesError> {
        let size = i64::try_from(staged.outcome.size).unwrap_or(i64::MAX);
        let mut tx = self.db().begin_tenant(scope).await?;
        self.check_project(&mut tx, scope, new.project).await?;
        tx.execute(Query::insert().into_table("files").row([
            ("tenant_id", scope.tenant_id().into()),
            ("id", file_id.into()),
            ("sha256", staged.outcome.sha256.as_str().into()),
            ("md5", staged.outcome.md5.as_str().into()),
            ("size", size.into()),
            ("storage_key", key.as_str().into()),
            ("created_at", tx.now().into()),
        ]))
        .await?;
        let delta = Delta {
            bytes: size,
            files: 1,
            documents: 1,
        };
        let document = self
            .record(&mut tx, scope, staged, new, file_id, delta, false)
            .await?;
        tx.commit().await?;
        Ok(document)
    }

    /// Inserts the document row, applies `delta` to the usage (refusing what exceeds the
    /// quota), and writes the event and the audit record.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        tx: &mut Tx,
        scope: &TenantScope,
        staged: &Staged,
        new: &NewDocument,
        file_id: FileId,
        delta: Delta,
        deduplicated: bool,
    ) -> Result<Document, FilesError> {
        let now = tx.now();
        let size = i64::try_from(staged.outcome.size).unwrap_or(i64::MAX);
        tx.execute(Query::insert().into_table("documents").row([
            ("tenant_id", scope.tenant_id().into()),
            ("id", new.id.into()),
            ("file_id", file_id.into()),
            ("filename", new.filename.as_str().into()),
            ("mime_type", new.mime_type.as_str().into()),
            ("size", size.into()),
            ("user_id", scope.actor().user_id().into()),
            ("project_id", new.project.into()),
            ("created_at", now.into()),
            ("updated_at", now.into()),
        ]))
        .await?;
        let stored = usage::apply(tx, scope.tenant_id(), delta).await?;
        if let Some(quota) = self.quota()
            && delta.bytes > 0
            && u64::try_from(stored).unwrap_or(0) > quota
        {
            return Err(FilesError::QuotaExceeded { quota });
        }
        let document = fetch(tx, scope, new.id)
            .await?
            .ok_or(FilesError::NotFound)?;
        let data = DocumentUploaded {
            document_id: new.id,
            file_id,
            filename: document.filename.clone(),
            mime_type: document.mime_type.clone(),
            size: document.size,
            sha256: document.sha256.clone(),
            project_id: new.project,
            deduplicated,
        };
        tenantry_events::record_change(
            tx,
            scope,
            Entry::new("document.uploaded", "document", new.id)
                .with_summary(json!({
                    "filename": document.filename,
                    "size": size,
                    "file_id": file_id,
                    "deduplicated": deduplicated,
                }))
                .in_project(new.project),
            Event::new(
                EventType::DocumentUploaded,
                format!("documents/{}", new.id),
                &data,
            ),
        )
        .await?;
        Ok(document)
    }
}

struct NewDocument {
    id: DocumentId,
    filename: String,
    mime_type: String,
    project: Option<ProjectId>,
}

fn unknown_project() -> FilesError {
    FilesError::Invalid {
        field: "project_id",
        message: "is not a project of this tenant".into(),
    }
}

impl Files {
    /// `project` exists in the tenant (inside `tx`, so it cannot vanish before the commit on
    /// PostgreSQL's foreign key either way). Tenancy, which owns projects, builds the query.
    async fn check_project(
        &self,
        tx: &mut Tx,
        scope: &TenantScope,
        project: Option<ProjectId>,
    ) -> Result<(), FilesError> {
        let Some(project) = project else {
            return Ok(());
        };
        let found: Option<uuid::Uuid> = tx
            .fetch_optional(&(self.0.projects)(scope.tenant_id(), project))
            .await?;
        found.map(|_| ()).ok_or_else(unknown_project)
    }
}
