//! The `files` section (`TENANTRY_FILES__*`): upload limits, quota, link lifetime and the
//! orphan sweep. Where the bytes live is the storage configuration (`storage_url`, `s3`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::FilesSettings;

/// Documents and files (`TENANTRY_FILES__*`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Largest upload in bytes (default 100 MiB); never more than the tenant's quota room.
    pub max_upload_bytes: u64,
    /// Bytes each tenant may store (identical content counted once); 0 = unlimited.
    pub quota_bytes: u64,
    /// Seconds a download URL works (default 3600).
    pub download_url_ttl_secs: u64,
    /// Seconds before an orphan (a stored object without a row, a file no document
    /// references, a staged upload) is collected (default 3600). Must exceed the longest
    /// upload.
    pub orphan_grace_secs: u64,
    /// Seconds between sweeps for orphans (default 600; 0 = never, e.g. when another
    /// process sweeps).
    pub sweep_interval_secs: u64,
    /// Seconds an upload may take, body included (default 3600), instead of
    /// `http.request_timeout_secs`.
    pub upload_timeout_secs: u64,
    /// Seconds an upload's body may pause between two chunks before it is answered 408
    /// `request_timeout` (default 60).
    pub upload_idle_timeout_secs: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            quota_bytes: 0,
            download_url_ttl_secs: 3600,
            orphan_grace_secs: 3600,
            sweep_interval_secs: 600,
            upload_timeout_secs: 3600,
            upload_idle_timeout_secs: 60,
        }
    }
}

impl FilesSettings {
    /// The service's settings from its section; `public_url` is the base of download links.
    pub fn new(config: &FilesConfig, public_url: String) -> Self {
        Self {
            max_upload_bytes: config.max_upload_bytes,
            quota_bytes: config.quota_bytes,
            download_ttl: Duration::from_secs(config.download_url_ttl_secs.max(1)),
            orphan_grace: Duration::from_secs(config.orphan_grace_secs),
            public_url,
        }
    }
}
