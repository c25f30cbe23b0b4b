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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

/// An S3-compatible object store (`TENANTRY_S3__*`). Only read when `storage_url` is `s3://…`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Base URL of the service, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000` (plain `http://` is allowed because it was asked for
    /// explicitly). Unset: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Signing region; default `us-east-1` (what most S3-compatible servers expect).
    pub region: Option<String>,
    /// Static credentials. Unset: none are sent, unless the AWS environment provides them
    /// (instance metadata, `AWS_*` variables).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted ones
    /// (`BUCKET.ENDPOINT/KEY`); most self-hosted servers need this.
    pub path_style: bool,
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

/// Per-client-IP limits of the unauthenticated identity endpoints, and per-tenant and per-API-key
/// limits of every tenant-scoped request (0 = unlimited). Failed logins are additionally
/// throttled per account, independently of these. All are kept in memory per node.
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
    /// Requests per second to one tenant's `/tenants/{tenant_id}/…` routes, from all its
    /// members and keys together, so one noisy tenant cannot crowd out the others.
    pub tenant_per_second: u32,
    /// Requests one tenant may make at once above its rate (0 = the rate).
    pub tenant_burst: u32,
    /// Requests per second made with one API key (within its tenant's limit).
    pub api_key_per_second: u32,
    /// Requests one API key may make at once above its rate (0 = the rate).
    pub api_key_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_minute: 30,
            register_per_hour: 30,
            password_reset_per_hour: 20,
            guest_per_hour: 60,
            token_per_minute: 600,
            tenant_per_second: 100,
            tenant_burst: 200,
            api_key_per_second: 50,
            api_key_burst: 100,
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
    /// SQLite memory-mapped I/O, in MiB (`PRAGMA mmap_size`; 0 turns it off): pages missing
    /// from a connection's cache are read from the shared mapping instead of by a `read`
    /// system call each.
    pub sqlite_mmap_mib: u32,
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
            sqlite_mmap_mib: 256,
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
    /// Scheduling of the hashing threads: `idle` (Linux `SCHED_IDLE`: only CPU nobody else
    /// wants), `low` (nice ≈ 9) or `normal`.
    pub hash_scheduling: HashScheduling,
    /// External OpenID Connect issuers whose access/ID tokens are accepted as bearers
    /// (`[[auth.oidc]]` in `tenantry.toml`; see [`OidcProviderConfig`]).
    pub oidc: Vec<OidcProviderConfig>,
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
            hash_scheduling: HashScheduling::Idle,
            oidc: Vec::new(),
        }
    }
}

/// Algorithms an external issuer may sign with: asymmetric only. (HMAC would need a shared
/// secret, and `HS*` with a public key as the secret is the classic algorithm confusion.)
pub const OIDC_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// One external OpenID Connect issuer (e.g. an Auth0 tenant). Its tokens are verified
/// against the keys it publishes (JWKS); the user is found or created by (issuer, subject).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The exact `iss` of its tokens, e.g. `https://TENANT.auth0.com/` (Auth0 keeps the
    /// trailing slash). Discovery is at `<issuer without trailing slash>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` value(s): a string or a list; a token must name at least one.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// JWKS URL; unset = the `jwks_uri` of the issuer's discovery document.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms (default `["RS256"]`); asymmetric ones only.
    #[serde(default = "default_oidc_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim holding the e-mail address (Auth0 custom claims are namespaced, e.g.
    /// `https://example.com/email`).
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default = "default_email_verified_claim")]
    pub email_verified_claim: String,
    #[serde(default = "default_given_name_claim")]
    pub given_name_claim: String,
    #[serde(default = "default_family_name_claim")]
    pub family_name_claim: String,
    /// A first sign-in whose token carries a *verified* e-mail of an existing active account
    /// joins that account instead of creating a new one.
    #[serde(default)]
    pub link_by_verified_email: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "default_oidc_leeway")]
    pub leeway_secs: u64,
    /// Least time between two JWKS fetches caused by tokens naming an unknown `kid`.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_secs: u64,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn default_oidc_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}
fn default_email_claim() -> String {
    "email".to_owned()
}
fn default_email_verified_claim() -> String {
    "email_verified".to_owned()
}
fn default_given_name_claim() -> String {
    "given_name".to_owned()
}
fn default_family_name_claim() -> String {
    "family_name".to_owned()
}
fn default_oidc_leeway() -> u64 {
    30
}
fn default_jwks_min_refresh() -> u64 {
    10
}

/// `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.contains(char::is_whitespace)
    })
}

impl OidcProviderConfig {
    /// A provider with the defaults for everything but issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: vec![audience.into()],
            jwks_url: None,
            algorithms: default_oidc_algorithms(),
            email_claim: default_email_claim(),
            email_verified_claim: default_email_verified_claim(),
            given_name_claim: default_given_name_claim(),
            family_name_claim: default_family_name_claim(),
            link_by_verified_email: false,
            leeway_secs: default_oidc_leeway(),
            jwks_min_refresh_secs: default_jwks_min_refresh(),
        }
    }

    /// Checks what serde cannot: URLs, algorithms, audiences.
    pub fn validate(&self) -> Result<(), String> {
        let issuer = &self.issuer;
        if !is_http_url(issuer) {
            return Err(format!(
                "auth.oidc issuer {issuer:?} must be an http:// or https:// URL"
            ));
        }
        if let Some(url) = &self.jwks_url
            && !is_http_url(url)
        {
            return Err(format!(
                "auth.oidc jwks_url {url:?} (issuer {issuer}) must be an http:// or https:// URL"
            ));
        }
        if self.audience.is_empty() || self.audience.iter().any(|a| a.trim().is_empty()) {
            return Err(format!(
                "auth.oidc audience of issuer {issuer} must name at least one non-empty audience"
            ));
        }
        if self.algorithms.is_empty() {
            return Err(format!(
                "auth.oidc algorithms of issuer {issuer} must not be empty"
            ));
        }
        for alg in &self.algorithms {
            if !OIDC_ALGORITHMS.contains(&alg.as_str()) {
                return Err(format!(
                    "auth.oidc algorithm {alg:?} of issuer {issuer} is not allowed: only \
                     asymmetric algorithms ({}) are accepted",
                    OIDC_ALGORITHMS.join(", ")
                ));
            }
        }
        for (name, claim) in [
            ("email_claim", &self.email_claim),
            ("email_verified_claim", &self.email_verified_claim),
            ("given_name_claim", &self.given_name_claim),
            ("family_name_claim", &self.family_name_claim),
        ] {
            if claim.trim().is_empty() {
                return Err(format!(
                    "auth.oidc {name} of issuer {issuer} must not be empty"
                ));
            }
        }
        Ok(())
    }
}

/// How password-hashing threads are scheduled against request handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashScheduling {
    Idle,
    Low,
    Normal,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// Days a soft-deleted tenant's data is kept before housekeeping purges it for good
    /// (0 = at the next hourly run).
    pub deleted_retention_days: u32,
    /// Invitations one account may send in any hour, over all its tenants (0 = unlimited).
    /// Counted in the database, so the limit holds across restarts and nodes.
    pub invitations_per_sender_per_hour: u32,
    /// Invitations one tenant may send in any hour, all its members together (0 = unlimited).
    pub invitations_per_tenant_per_hour: u32,
    /// Pending invitations one tenant may have at a time (0 = unlimited).
    pub max_pending_invitations: u32,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            deleted_retention_days: 30,
            invitations_per_sender_per_hour: 50,
            invitations_per_tenant_per_hour: 100,
            max_pending_invitations: 500,
        }
    }
}

/// Documents and files (`TENANTRY_FILES__*`).
#[derive(Debug, Clone, Deserialize)]
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

    /// Checks the external identity providers: each valid, no issuer twice, none equal to
    /// our own issuer (a token's `iss` decides which keys verify it).
    pub fn validate_oidc(&self) -> Result<(), String> {
        let own = self.effective_issuer();
        let mut seen = std::collections::HashSet::new();
        for provider in &self.auth.oidc {
            provider.validate()?;
            if provider.issuer == own {
                return Err(format!(
                    "auth.oidc issuer {own:?} is this server's own token issuer (auth.issuer)"
                ));
            }
            if !seen.insert(provider.issuer.as_str()) {
                return Err(format!(
                    "auth.oidc issuer {:?} is configured twice",
                    provider.issuer
                ));
            }
        }
        Ok(())
    }

    pub fn effective_issuer(&self) -> String {
        self.auth
            .issuer
            .clone()
            .or_else(|| self.public_url.clone())
            .unwrap_or_else(|| "tenantry".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_providers_must_use_asymmetric_algorithms_and_http_urls() {
        let ok = OidcProviderConfig::new("https://tenant.auth0.com/", "api");
        assert!(ok.validate().is_ok());
        for alg in ["HS256", "HS512", "none", "rs256"] {
            let bad = OidcProviderConfig {
                algorithms: vec!["RS256".into(), alg.into()],
                ..ok.clone()
            };
            let error = bad.validate().unwrap_err();
            assert!(error.contains("not allowed"), "{alg}: {error}");
        }
        for issuer in [
            "tenant.auth0.com",
            "ftp://x/",
            "file:///etc/passwd",
            "https://",
            "",
        ] {
            let bad = OidcProviderConfig::new(issuer, "api");
            assert!(bad.validate().is_err(), "{issuer:?}");
        }
        let bad = OidcProviderConfig {
            jwks_url: Some("gopher://x/jwks".into()),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = OidcProviderConfig {
            audience: vec![],
            ..ok.clone()
        };
        assert!(bad.validate().is_err());

        let mut config = Config::default();
        config.auth.oidc = vec![ok.clone(), ok.clone()];
        assert!(config.validate_oidc().unwrap_err().contains("twice"));
        config.auth.oidc = vec![OidcProviderConfig::new("https://us.example/", "a")];
        config.auth.issuer = Some("https://us.example/".into());
        assert!(config.validate_oidc().unwrap_err().contains("own"));
    }
}
