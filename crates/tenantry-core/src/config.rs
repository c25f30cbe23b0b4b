//! Typed configuration. Layering (defaults → `tenantry.toml` → `TENANTRY_*` env) happens in
//! the binary; these types define every key, its default, and reject unknown keys.

use std::{net::SocketAddr, path::PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Directory for the embedded SQLite database (and, as they arrive, blobs and mail).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; defaults to `sqlite://<data_dir>/tenantry.db`.
    /// A secret because PostgreSQL URLs usually carry a password.
    pub database_url: Option<SecretString>,
    /// Public base URL of this deployment (links in e-mails, token issuer).
    pub public_url: Option<String>,
    /// Log filter, e.g. `info` or `tenantry=debug,info`.
    pub log: String,
    /// `json` (default, one object per line) or `text`.
    pub log_format: LogFormat,
    /// First platform administrator, created at start when no administrator exists.
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_admin_password: Option<SecretString>,
    /// Base64 of 32 random bytes that encrypts secrets at rest (TOTP secrets, queued mail)
    /// and keys MACs. Unset: generated once into `<data_dir>/secret.key`.
    pub secret_key: Option<SecretString>,
    /// `smtp://user:pass@host:port` (STARTTLS when offered), `smtp://…?tls=required`,
    /// `smtps://…` (implicit TLS) or `smtp://…?tls=none`. Unset: messages are written
    /// under `<data_dir>/mail/`.
    pub smtp_url: Option<SecretString>,
    pub mail: MailConfig,
    pub rate_limits: RateLimitConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
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
            mail: MailConfig::default(),
            rate_limits: RateLimitConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Sender of every message (`Name <address>` or an address).
    pub from: String,
    /// Directory with `<template>.subject`, `<template>.txt` and `<template>.html` files that
    /// replace the built-in templates of the same name (minijinja syntax).
    pub templates_dir: Option<PathBuf>,
    /// Attempts per message before it is marked failed (retries back off exponentially).
    pub max_attempts: u32,
    /// Seconds an SMTP exchange may take before the attempt counts as failed.
    pub send_timeout_secs: u64,
    /// PEM file of an extra root certificate to trust for the SMTP server's TLS (a relay
    /// with a private CA). The public web roots are always trusted.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Tenantry <no-reply@tenantry.invalid>".to_owned(),
            templates_dir: None,
            max_attempts: 8,
            send_timeout_secs: 30,
            tls_ca_file: None,
        }
    }
}

/// Per-client-IP limits of the unauthenticated identity endpoints (0 = unlimited). Failed
/// logins are additionally throttled per account, independently of these.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `POST /auth/login` attempts per IP per minute.
    pub login_per_minute: u32,
    /// `POST /auth/register` per IP per hour.
    pub register_per_hour: u32,
    /// `POST /auth/forgot-password` and `POST /auth/reset-password` per IP per hour.
    pub password_reset_per_hour: u32,
    /// `POST /auth/guest` per IP per hour.
    pub guest_per_hour: u32,
    /// `POST /auth/verify-email` and `POST /auth/refresh` per IP per minute.
    pub token_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_minute: 30,
            register_per_hour: 30,
            password_reset_per_hour: 20,
            guest_per_hour: 60,
            token_per_minute: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// PostgreSQL pool size.
    pub max_connections: u32,
    /// SQLite read connections (writes go through one connection: SQLite has one writer).
    pub sqlite_readers: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Seconds to wait for a connection before failing the request.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            sqlite_readers: 4,
            migrate_on_start: true,
            acquire_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of a guest session (access and refresh).
    pub guest_ttl_secs: u64,
    /// `iss` of our access tokens; defaults to `public_url` or `tenantry`.
    pub issuer: Option<String>,
    /// `aud` of our access tokens.
    pub audience: String,
    /// Argon2id memory cost in KiB (OWASP: ≥ 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (OWASP: ≥ 2).
    pub argon2_iterations: u32,
    /// At most this many password hashes run at once, so logins cannot starve other work.
    pub max_concurrent_hashes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            guest_ttl_secs: 24 * 3600,
            issuer: None,
            audience: "tenantry".to_owned(),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            max_concurrent_hashes: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            cors_allowed_origins: Vec::new(),
            request_timeout_secs: 30,
            shutdown_grace_secs: 20,
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

    /// Base of links in e-mails: `public_url`, else the listening address.
    pub fn effective_public_url(&self) -> String {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind));
        url.trim_end_matches('/').to_owned()
    }

    pub fn effective_issuer(&self) -> String {
        self.auth
            .issuer
            .clone()
            .or_else(|| self.public_url.clone())
            .unwrap_or_else(|| "tenantry".to_owned())
    }
}
