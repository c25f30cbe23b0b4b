//! Download links: an S3 presigned URL, or on local storage a URL the server signs (HMAC over
//! path and expiry) and serves itself. Either expires after `download_ttl`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Query};
use serde::Serialize;
use tenantry_core::{DocumentId, TenantId, UserId};
use tenantry_db::TenantScope;
use tenantry_storage::{BackendKind, BlobKey, BlobRead, ByteRange, DownloadHeaders, StorageError};
use utoipa::ToSchema;

use crate::{Document, Files, FilesError, documents::fetch};

/// Where to fetch a document's bytes, until when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DownloadLink {
    pub url: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub expires_at: DateTime<Utc>,
}

/// Proof that a server-signed download URL was valid: what it names. Only
/// [`Files::verify_download`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDownload {
    pub tenant_id: TenantId,
    pub document_id: DocumentId,
    /// Who asked for the link.
    pub user_id: UserId,
}

/// The path of a server-served download (the part the signature covers, with the requester).
pub fn signed_path(tenant: TenantId, document: DocumentId, by: UserId) -> String {
    format!("/api/v1/downloads/{tenant}/{document}?by={by}")
}

impl Files {
    /// A download link for a document the caller may read.
    pub async fn download_link(
        &self,
        scope: &TenantScope,
        id: DocumentId,
    ) -> Result<DownloadLink, FilesError> {
        let document = self.get_document(scope, id).await?;
        let ttl = self.settings().download_ttl;
        let expires_at =
            tenantry_core::now() + TimeDelta::from_std(ttl).unwrap_or_else(|_| TimeDelta::hours(1));
        let url = match self.store().backend() {
            BackendKind::S3 => {
                let key = self.key_of(scope, &document).await?;
                let headers = DownloadHeaders {
                    content_type: &document.mime_type,
                    filename: Some(&document.filename),
                };
                self.store()
                    .presigned_get(&key, ttl, &headers)
                    .await?
                    .to_string()
            }
            BackendKind::Local | BackendKind::Other => {
                let by = scope.actor().user_id().ok_or(FilesError::Forbidden(
                    tenantry_core::Permission::DocumentsRead,
                ))?;
                let path = signed_path(scope.tenant_id(), id, by);
                let query = self.0.signer.sign(&path, expires_at);
                format!(
                    "{}{path}&{query}",
                    self.settings().public_url.trim_end_matches('/')
                )
            }
        };
        Ok(DownloadLink { url, expires_at })
    }

    /// Checks a server-signed download URL's `expires` and `signature` for what it names.
    pub fn verify_download(
        &self,
        tenant: TenantId,
        document: DocumentId,
        by: UserId,
        expires: i64,
        signature: &str,
    ) -> Result<SignedDownload, FilesError> {
        let path = signed_path(tenant, document, by);
        self.0.signer.verify(&path, expires, signature)?;
        Ok(SignedDownload {
            tenant_id: tenant,
            document_id: document,
            user_id: by,
        })
    }

    /// Opens the bytes (or `range` of them) of a signed download's document. `scope` must be
    /// the scope issued for the proof's tenant; a document deleted since answers `NotFound`.
    pub async fn open_download(
        &self,
        scope: &TenantScope,
        proof: &SignedDownload,
        range: Option<ByteRange>,
    ) -> Result<(Document, BlobRead), FilesError> {
        if scope.tenant_id() != proof.tenant_id {
            return Err(FilesError::NotFound);
        }
        let mut tx = self.db().begin_tenant_read(scope).await?;
        let document = fetch(&mut tx, scope, proof.document_id).await?;
        tx.commit().await?;
        let document = document.ok_or(FilesError::NotFound)?;
        let key = self.key_of(scope, &document).await?;
        let read = self
            .store()
            .get_range(&key, range)
            .await
            .map_err(|e| match e {
                StorageError::RangeNotSatisfiable { size, .. } => {
                    FilesError::RangeNotSatisfiable { size }
                }
                other => other.into(),
            })?;
        Ok((document, read))
    }

    /// The storage key of a document's file.
    async fn key_of(
        &self,
        scope: &TenantScope,
        document: &Document,
    ) -> Result<BlobKey, FilesError> {
        let key: Option<String> = self
            .db()
            .read_tenant_optional(
                scope,
                Query::select()
                    .column("storage_key")
                    .from("files")
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("id").eq(document.file_id)),
            )
            .await?;
        let key = key.ok_or(FilesError::NotFound)?;
        BlobKey::parse(&key).map_err(|e| {
            FilesError::Internal(anyhow::anyhow!(
                "file {} has an invalid storage key: {e}",
                document.file_id
            ))
        })
    }
}
