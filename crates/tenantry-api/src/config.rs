//! The configuration of the whole server, composed of the sections each context defines.
//!
//! A context owns its section next to its service (type, defaults, docs, validation):
//! `auth` → `tenantry_identity::config`, `tenancy` → `tenantry_tenancy::config`, `files` →
//! `tenantry_files::config`, `mail` → `tenantry_notify::config`, `s3` → `tenantry_storage`,
//! `database` → `tenantry_db::config`, `rate_limits` → `tenantry_http::config`. What is left
//! here is platform-wide (listening address, data directory, URLs, logging, keys, the bootstrap
//! administrator) or read only by this assembly (`http`). Some keys that feed one context stay
//! top-level because the file format predates the sections (`smtp_url`, `storage_url`); the
//! assembly passes them to their context explicitly.
//!
//! Layering (defaults → `tenantry.toml` → `TENANTRY_*` env) happens in the binary. Every
//! section refuses unknown keys (`deny_unknown_fields`) and fills missing ones from its
//! `Default`; `Serialize` lists the keys and defaults (secrets as unset) for the README table
//! test (`config/readme_table.rs`).

use std::{net::SocketAddr, path::PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tenantry_core::{config::secret_as_unset, crypto::MasterKey};
use tenantry_db::config::DatabaseConfig;
use tenantry_files::config::FilesConfig;
use tenantry_http::config::RateLimitConfig;
use tenantry_identity::config::AuthConfig;
use tenantry_notify::config::MailConfig;
use tenantry_storage::S3Config;
use tenantry_tenancy::config::TenancyConfig;

#[cfg(test)]
mod readme_table;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Directory for the embedded SQLite database, the key file, blobs and mail files.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://<data_dir>/tenantry.db`.
    /// A secret because PostgreSQL URLs usually carry a password.
    #[serde(serialize_with = "secret_as_unset")]
    pub database_url: Option<SecretString>,
    /// Public base URL of this deployment (links in e-mails, token issuer).
    pub public_url: Option<String>,
    /// Log filter, e.g. `info` or `tenantry=debug,info`.
    pub log: String,
    /// `json` (default, one object per line) or `text`.
    pub log_format: LogFormat,
    /// First platform administrator, created at start when no administrator exists.
    pub bootstrap_admin_email: Option<String>,
    #[serde(serialize_with = "secret_as_unset")]
    pub bootstrap_admin_password: Option<SecretString>,
    /// Base64 of 32 random bytes that encrypts secrets at rest (TOTP secrets, queued mail)
    /// and keys MACs. Unset: generated once into `<data_dir>/secret.key`.
    #[serde(serialize_with = "secret_as_unset")]
    pub secret_key: Option<SecretString>,
    /// The mail context's server: `smtp://user:pass@host:port` (STARTTLS when offered),
    /// `smtp://…?tls=required`, `smtps://…` (implicit TLS) or `smtp://…?tls=none`. Unset:
    /// messages are written under `<data_dir>/mail/`.
    #[serde(serialize_with = "secret_as_unset")]
    pub smtp_url: Option<SecretString>,
    /// Where file contents live: `file://PATH` (a local directory) or `s3://BUCKET` (with the
    /// `s3` section). Unset: `file://<data_dir>/blobs`. Parsed by `tenantry-storage`.
    pub storage_url: Option<String>,
    /// The S3-compatible service of an `s3://` storage URL.
    pub s3: S3Config,
    pub mail: MailConfig,
    pub rate_limits: RateLimitConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub tenancy: TenancyConfig,
    pub files: FilesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 4999)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            log: "info".to_owned(),
            log_format: LogFormat::Json,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            secret_key: None,
            smtp_url: None,
            storage_url: None,
            s3: S3Config::default(),
            mail: MailConfig::default(),
            rate_limits: RateLimitConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            tenancy: TenancyConfig::default(),
            files: FilesConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// The HTTP server and its middleware: read only by this assembly (accept loop, router
/// layers, idempotency, the operations endpoints).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted JSON body in bytes.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS; empty = no cross-origin access; `["*"]` = any origin.
    pub cors_allowed_origins: Vec<String>,
    /// Seconds a request may take before it is answered 503 and dropped.
    pub request_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Seconds a POST waits for an earlier request with the same `Idempotency-Key` that is
    /// still running, before answering 409 `idempotency_key_in_progress`.
    pub idempotency_wait_secs: u64,
    /// Seconds a client has to send a request's head (request line and headers) once it
    /// starts one, and the most an idle keep-alive connection stays open; slower connections
    /// are closed without an answer.
    pub header_read_timeout_secs: u64,
    /// Connections one client address (an IPv6 /64) may hold open at once; more are closed at
    /// once (0 = no limit). Behind a proxy every client shares its address: raise or disable.
    pub max_connections_per_ip: u32,
    /// Bearer token `GET /metrics` requires (`Authorization: Bearer <token>`); unset, the
    /// metrics are public.
    #[serde(serialize_with = "secret_as_unset")]
    pub metrics_token: Option<SecretString>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            cors_allowed_origins: Vec::new(),
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
            idempotency_wait_secs: 10,
            header_read_timeout_secs: 10,
            max_connections_per_ip: 256,
            metrics_token: None,
        }
    }
}

impl Config {
    /// The database URL in effect (explicit, or the SQLite file under the data directory).
    pub fn effective_database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}",
                self.data_dir.join("tenantry.db").display()
            )),
        }
    }

    /// Base of links in e-mails and downloads: `public_url`, else the listening address.
    pub fn effective_public_url(&self) -> String {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind));
        url.trim_end_matches('/').to_owned()
    }

    /// The `iss` of our access tokens ([`AuthConfig::effective_issuer`]).
    pub fn effective_issuer(&self) -> String {
        self.auth.effective_issuer(self.public_url.as_deref())
    }

    /// The data key: `secret_key`, else the key file under `data_dir` (created on first use).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        MasterKey::load_or_create(self.secret_key.as_ref(), &self.data_dir)
    }
}
