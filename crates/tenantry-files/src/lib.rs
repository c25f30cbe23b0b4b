//! Files and documents.
//!
//! A **file** is stored content: one object per distinct SHA-256 in a tenant (identical
//! bytes uploaded twice in one tenant are stored once; across tenants, never shared). A
//! **document** is a user's named reference to a file, optionally in a project. Uploads
//! stream to the blob store while they are hashed ([`Files::stage`]), then
//! [`Files::commit_upload`] deduplicates or promotes the object and records the document,
//! the storage usage, a `document.uploaded` event and the audit record in one transaction.
//! The write order (stage → promote → commit; delete rows → delete object) means no row ever
//! points at a missing object; what a crash leaves behind is collected by [`Files::sweep`].

mod access;
pub mod config;
mod documents;
mod download;
mod error;
mod files;
pub mod http;
pub mod migrations;
mod model;
mod sweep;
mod upload;
mod usage;

use std::{sync::Arc, time::Duration};

use sea_query::SelectStatement;
use tenantry_core::{ProjectId, TenantId};
use tenantry_db::Db;
use tenantry_storage::{BlobStore, UrlSigner};

pub use config::FilesConfig;
pub use documents::{DocumentChange, DocumentFilter};
pub use download::{DownloadLink, S3_REDIRECT_TTL, Served, SignedDownload};
pub use error::FilesError;
pub use model::{Document, DocumentDeleted, DocumentUploaded, File, FileDetail, StorageUsage};
pub use sweep::{SweepReport, periodic_tasks};
pub use upload::{Staged, UploadMeta};

/// Limits and timings of the files context.
#[derive(Debug, Clone)]
pub struct FilesSettings {
    /// Largest upload in bytes (never more than the quota's room).
    pub max_upload_bytes: u64,
    /// Bytes a tenant may store; 0 = unlimited.
    pub quota_bytes: u64,
    /// How long a download link works (it is re-authorized on every use).
    pub download_ttl: Duration,
    /// How old an orphan (an object without a row, a file without documents) must be before
    /// the sweep deletes it. Must exceed the longest upload in flight.
    pub orphan_grace: Duration,
    /// Base URL of download links (all are served by this server), e.g. `https://api.example.com`.
    pub public_url: String,
}

/// How files learns whether a project exists in a tenant: a statement that yields a row when
/// it does, built by the projects' owner (`tenantry_tenancy::project_in_tenant`, wired by the
/// assembly: files does not depend on tenancy) and run inside the upload's transaction.
pub type ProjectLookup = fn(TenantId, ProjectId) -> SelectStatement;

/// The files service: database, blob store and the signer of local download URLs.
#[derive(Debug, Clone)]
pub struct Files(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    db: Db,
    store: BlobStore,
    signer: UrlSigner,
    settings: FilesSettings,
    projects: ProjectLookup,
}

impl Files {
    pub fn new(
        db: Db,
        store: BlobStore,
        signer: UrlSigner,
        settings: FilesSettings,
        projects: ProjectLookup,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            store,
            signer,
            settings,
            projects,
        }))
    }

    pub fn store(&self) -> &BlobStore {
        &self.0.store
    }

    pub fn settings(&self) -> &FilesSettings {
        &self.0.settings
    }

    fn db(&self) -> &Db {
        &self.0.db
    }
}
