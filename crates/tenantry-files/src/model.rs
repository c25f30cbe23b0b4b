//! What the API shows of files, documents and storage usage.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_core::{DocumentId, FileId, ProjectId, TenantId, UserId};
use tenantry_db::{DbError, FromRow, Row};
use utoipa::ToSchema;

/// A named reference to stored content, uploaded by a user, optionally in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Document {
    #[schema(value_type = String, format = Uuid)]
    pub id: DocumentId,
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// The user's name for it (metadata only: never a storage path).
    pub filename: String,
    /// As declared at upload, checked against the content's magic bytes.
    pub mime_type: String,
    pub size: i64,
    /// The stored content; identical content in a tenant has one file.
    #[schema(value_type = String, format = Uuid)]
    pub file_id: FileId,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Lowercase hex MD5 of the content.
    pub md5: String,
    /// Who uploaded it (the creator of the API key that did).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<UserId>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl Document {
    /// Columns of `documents d JOIN files f`, in [`FromRow`] order.
    pub(crate) const COLUMNS: [(&'static str, &'static str); 12] = [
        ("d", "id"),
        ("d", "tenant_id"),
        ("d", "filename"),
        ("d", "mime_type"),
        ("d", "size"),
        ("d", "file_id"),
        ("f", "sha256"),
        ("f", "md5"),
        ("d", "user_id"),
        ("d", "project_id"),
        ("d", "created_at"),
        ("d", "updated_at"),
    ];
}

impl FromRow for Document {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            tenant_id: row.id()?,
            filename: row.string()?,
            mime_type: row.string()?,
            size: row.i64()?,
            file_id: row.id()?,
            sha256: row.string()?,
            md5: row.string()?,
            user_id: row.opt_id()?,
            project_id: row.opt_id()?,
            created_at: row.time()?,
            updated_at: row.time()?,
        })
    }
}

/// Stored content of a tenant: one per distinct SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct File {
    #[schema(value_type = String, format = Uuid)]
    pub id: FileId,
    pub sha256: String,
    pub md5: String,
    pub size: i64,
    /// How many documents reference it.
    pub document_count: i64,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    /// Since when no document references it (it is collected after the grace period).
    #[serde(serialize_with = "tenantry_core::time::serialize_opt")]
    #[schema(value_type = Option<String>)]
    pub unreferenced_since: Option<DateTime<Utc>>,
}

impl FromRow for File {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            sha256: row.string()?,
            md5: row.string()?,
            size: row.i64()?,
            created_at: row.time()?,
            unreferenced_since: row.opt_time()?,
            document_count: row.i64()?,
        })
    }
}

/// A file with the documents that reference it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileDetail {
    #[serde(flatten)]
    pub file: File,
    pub documents: Vec<Document>,
}

/// A tenant's storage: stored bytes and files (identical content counted once) and
/// documents, against the configured quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct StorageUsage {
    pub bytes: i64,
    pub files: i64,
    pub documents: i64,
    /// Bytes the tenant may store; `null` = unlimited.
    pub quota_bytes: Option<i64>,
}

/// The `data` of a `document.uploaded` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentUploaded {
    #[schema(value_type = String, format = Uuid)]
    pub document_id: DocumentId,
    #[schema(value_type = String, format = Uuid)]
    pub file_id: FileId,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
    /// The tenant already stored this content: the document references that file.
    pub deduplicated: bool,
}

/// The `data` of a `document.deleted` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentDeleted {
    #[schema(value_type = String, format = Uuid)]
    pub document_id: DocumentId,
    #[schema(value_type = String, format = Uuid)]
    pub file_id: FileId,
    pub filename: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<ProjectId>,
}
