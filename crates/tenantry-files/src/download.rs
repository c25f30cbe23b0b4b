//! Download links: an S3 presigned URL, or on local storage a URL the server signs (HMAC over
//! path and expiry) and serves itself. Either expires after `download_ttl`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait};
use serde::Serialize;
use tenantry_core::{DocumentId, Permission, TenantId, UserId};
use tenantry_db::{DbError, FromRow, Row, TenantScope};
use tenantry_storage::{BackendKind, BlobKey, BlobRead, ByteRange, DownloadHeaders, StorageError};
use utoipa::ToSchema;

use crate::{
    Document, Files, FilesError,
    documents::{select, visible},
};

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
        let (document, key) = self.located(scope, id).await?.unzip();
        let document = visible(scope, document, Permission::DocumentsRead)?;
        let key = key.ok_or(FilesError::NotFound)?;
        let ttl = self.settings().download_ttl;
        let expires_at =
            tenantry_core::now() + TimeDelta::from_std(ttl).unwrap_or_else(|_| TimeDelta::hours(1));
        let url = match self.store().backend() {
            BackendKind::S3 => {
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
                let by = scope
                    .actor()
                    .user_id()
                    .ok_or(FilesError::Forbidden(Permission::DocumentsRead))?;
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
        let (document, key) = self
            .located(scope, proof.document_id)
            .await?
            .ok_or(FilesError::NotFound)?;
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

    /// A document of the scope's tenant (whoever may see it: callers check access) with the
    /// storage key of its file, in one read.
    async fn located(
        &self,
        scope: &TenantScope,
        id: DocumentId,
    ) -> Result<Option<(Document, BlobKey)>, FilesError> {
        let mut q = select(scope);
        q.column(("f", "storage_key"))
            .and_where(Expr::col(("d", "id")).eq(id));
        let row: Option<Located> = self.db().read_tenant_optional(scope, &q).await?;
        let Some(Located(document, key)) = row else {
            return Ok(None);
        };
        let key = BlobKey::parse(&key).map_err(|e| {
            FilesError::Internal(anyhow::anyhow!(
                "file {} has an invalid storage key: {e}",
                document.file_id
            ))
        })?;
        Ok(Some((document, key)))
    }
}

/// A document row followed by its file's storage key.
struct Located(Document, String);

impl FromRow for Located {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self(Document::from_row(row)?, row.string()?))
    }
}
