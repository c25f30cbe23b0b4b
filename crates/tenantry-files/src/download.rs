//! Download links. Every link is a URL of this server, signed by it (HMAC over the path, the
//! requester and the expiry), valid for `download_ttl`; it names who asked for it (a user,
//! or an API key and its creator) and is re-authorized on every use, so removing the member,
//! disabling the user, revoking the key, suspending or deleting the tenant, demoting the
//! requester below `documents:read` or deleting the document stops it at once. Local
//! storage: the server streams the bytes. S3: the server answers with a redirect to a URL
//! presigned for [`S3_REDIRECT_TTL`] only (a presigned URL cannot be revoked, so it must not
//! live longer than it takes to follow a redirect).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait};
use serde::Serialize;
use tenantry_core::{ApiKeyId, DocumentId, Permission, TenantId, UserId};
use tenantry_db::{Actor, DbError, FromRow, Row, TenantScope};
use tenantry_storage::{BackendKind, BlobKey, BlobRead, ByteRange, DownloadHeaders, StorageError};
use utoipa::ToSchema;

use crate::{
    Document, Files, FilesError,
    access::can,
    documents::{select, visible},
};

/// How long the S3 URL a download link redirects to is valid.
pub const S3_REDIRECT_TTL: Duration = Duration::from_secs(60);

/// Where to fetch a document's bytes, until when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DownloadLink {
    pub url: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub expires_at: DateTime<Utc>,
}

/// Proof that a download link's signature was valid: what it names. Only
/// [`Files::verify_download`] makes one; it authorizes nothing by itself (the requester's
/// current grant is checked on every use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDownload {
    pub tenant_id: TenantId,
    pub document_id: DocumentId,
    /// Who asked for the link: a user, or an API key acting for its creator.
    pub requester: Actor,
}

/// What serving a download link answers.
pub enum Served {
    /// The bytes (local storage).
    Bytes(Document, BlobRead),
    /// A short-lived URL of the object store to redirect to (S3).
    Redirect(String),
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(document, read) => f
                .debug_tuple("Bytes")
                .field(&document.id)
                .field(&read.range)
                .finish(),
            // The URL carries a signature.
            Self::Redirect(_) => f.write_str("Redirect(..)"),
        }
    }
}

/// The path of a download link (the part the signature covers, with the requester).
pub fn signed_path(tenant: TenantId, document: DocumentId, requester: Actor) -> String {
    match requester {
        Actor::User(by) => format!("/api/v1/downloads/{tenant}/{document}?by={by}"),
        Actor::ApiKey { key_id, owner } => {
            format!("/api/v1/downloads/{tenant}/{document}?by={owner}&key={key_id}")
        }
    }
}

impl Files {
    /// A download link for a document the caller may read.
    pub async fn download_link(
        &self,
        scope: &TenantScope,
        id: DocumentId,
    ) -> Result<DownloadLink, FilesError> {
        let (document, _) = self.located(scope, id).await?.unzip();
        visible(scope, document, Permission::DocumentsRead)?;
        let ttl = self.settings().download_ttl;
        let expires_at =
            self.db().now() + TimeDelta::from_std(ttl).unwrap_or_else(|_| TimeDelta::hours(1));
        let path = signed_path(scope.tenant_id(), id, scope.actor());
        let query = self.0.signer.sign(&path, expires_at);
        let url = format!(
            "{}{path}&{query}",
            self.settings().public_url.trim_end_matches('/')
        );
        Ok(DownloadLink { url, expires_at })
    }

    /// Checks a download link's `expires` and `signature` for what it names.
    pub fn verify_download(
        &self,
        tenant: TenantId,
        document: DocumentId,
        by: UserId,
        key: Option<ApiKeyId>,
        expires: i64,
        signature: &str,
    ) -> Result<SignedDownload, FilesError> {
        let requester = match key {
            Some(key_id) => Actor::ApiKey { key_id, owner: by },
            None => Actor::User(by),
        };
        let path = signed_path(tenant, document, requester);
        self.0
            .signer
            .verify_at(&path, expires, signature, self.db().now())?;
        Ok(SignedDownload {
            tenant_id: tenant,
            document_id: document,
            requester,
        })
    }

    /// Serves a verified download link with `scope`, the grant its requester holds now
    /// (`tenantry_http::Authorize::requester_scope`, see `http::SignedLink`): the bytes (or `range` of them),
    /// or on S3 a redirect to a URL presigned for [`S3_REDIRECT_TTL`]. A document deleted
    /// since, or one the requester can no longer read, answers `NotFound`.
    pub async fn serve_download(
        &self,
        scope: &TenantScope,
        proof: &SignedDownload,
        range: Option<ByteRange>,
    ) -> Result<Served, FilesError> {
        if scope.tenant_id() != proof.tenant_id || scope.actor() != proof.requester {
            return Err(FilesError::NotFound);
        }
        let (document, key) = self
            .located(scope, proof.document_id)
            .await?
            .ok_or(FilesError::NotFound)?;
        if !can(scope, document.project_id, Permission::DocumentsRead) {
            return Err(FilesError::NotFound);
        }
        if self.store().backend() == BackendKind::S3 {
            let headers = DownloadHeaders {
                content_type: &document.mime_type,
                filename: Some(&document.filename),
            };
            let url = self
                .store()
                .presigned_get(&key, S3_REDIRECT_TTL, &headers)
                .await?;
            return Ok(Served::Redirect(url.to_string()));
        }
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
        Ok(Served::Bytes(document, read))
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
