//! The signing keys of one external issuer: discovered, fetched over HTTP(S) and cached.
//!
//! Keys are fetched lazily on first use (and, best effort, when the server starts), kept for
//! the response's `Cache-Control: max-age` (clamped to [`MIN_MAX_AGE`]..[`MAX_MAX_AGE`],
//! [`DEFAULT_MAX_AGE`] without one), and fetched again early when a token names a `kid` the
//! cache does not hold — at most once per `jwks_min_refresh_secs`, so tokens with made-up
//! `kid`s cannot make us hammer the issuer. A stale set keeps verifying while a background
//! fetch replaces it, and keeps verifying if that fetch fails (the issuer being down must
//! not log everyone out).
//!
//! The URLs are operator-configured and so trusted: there is no SSRF guard beyond allowing
//! only `http`/`https`, timeouts and a response size limit.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use super::verify::Memo;

/// Largest discovery document or JWKS accepted.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Verified tokens remembered per key set.
const MEMO_CAPACITY: usize = 10_000;

/// Which algorithms a key can verify, by its type and curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One usable public key.
pub(crate) struct PublicKey {
    pub(crate) key: DecodingKey,
    family: Family,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
}

impl PublicKey {
    /// Whether this key may verify a signature made with `alg`: the algorithm must fit the
    /// key's type (and curve), and the key's own `alg`, if any.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        if self.alg.is_some_and(|own| own != alg) {
            return false;
        }
        matches!(
            (self.family, alg),
            (Family::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (Family::P256, ES256)
                | (Family::P384, ES384)
                | (Family::Ed25519, EdDSA)
        )
    }

    /// The key a JWK describes, or `None` for keys we never verify with: symmetric (`oct`)
    /// keys, encryption keys, unsupported curves and types.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Family::P256,
                EllipticCurve::P384 => Family::P384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => Family::Ed25519,
                _ => return None,
            },
            _ => return None,
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return None,
            Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(Self { key, family, alg })
    }
}

/// One fetched generation of an issuer's keys, with the memo of tokens verified against
/// exactly these keys (a new generation starts with an empty memo, so a key the issuer
/// withdrew stops verifying remembered tokens too).
pub(crate) struct KeySnapshot {
    by_kid: HashMap<String, PublicKey>,
    /// Keys published without a `kid` (used only by tokens without one).
    unnamed: Vec<PublicKey>,
    fetched_at: Instant,
    max_age: Duration,
    pub(crate) memo: Memo,
}

impl KeySnapshot {
    pub(crate) fn parse(body: &[u8], max_age: Duration) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_slice(body).context("the JWKS is not a JSON key set")?;
        let mut by_kid = HashMap::new();
        let mut unnamed = Vec::new();
        for raw in set.keys {
            // Keys of kinds we do not understand are skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            let Some(key) = PublicKey::from_jwk(&jwk) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    by_kid.insert(kid, key);
                }
                None => unnamed.push(key),
            }
        }
        Ok(Self {
            by_kid,
            unnamed,
            fetched_at: Instant::now(),
            max_age,
            memo: Memo::new(MEMO_CAPACITY),
        })
    }

    /// The key for a token's `kid`; a token without `kid` may use the only unnamed key.
    pub(crate) fn key(&self, kid: Option<&str>) -> Option<&PublicKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.unnamed.len() == 1 => self.unnamed.first(),
            None => None,
        }
    }

    fn is_stale(&self) -> bool {
        self.fetched_at.elapsed() >= self.max_age
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }
}

/// The cached keys of one issuer and the means to fetch them.
pub(crate) struct Jwks {
    http: reqwest::Client,
    issuer: String,
    configured_url: Option<String>,
    discovered_url: Mutex<Option<String>>,
    current: RwLock<Option<Arc<KeySnapshot>>>,
    /// Serialises fetches.
    fetching: tokio::sync::Mutex<()>,
    /// When the last fetch was attempted (successful or not), and how many were.
    last_attempt: Mutex<Option<Instant>>,
    attempts: AtomicU64,
    min_refresh: Duration,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("issuer", &self.issuer)
            .field("keys", &self.current.read().as_ref().map(|s| s.len()))
            .finish()
    }
}

/// Why no keys could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The issuer could not be reached (or answered nonsense) and nothing is cached.
    NoKeys,
}

impl Jwks {
    pub(crate) fn new(
        http: reqwest::Client,
        issuer: String,
        configured_url: Option<String>,
        min_refresh: Duration,
    ) -> Self {
        Self {
            http,
            issuer,
            configured_url,
            discovered_url: Mutex::new(None),
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            attempts: AtomicU64::new(0),
            min_refresh,
        }
    }

    /// The keys to verify with now: the cached set (refreshed in the background when it is
    /// stale), or a first fetch (rate-limited after failures).
    pub(crate) async fn current(self: &Arc<Self>) -> Result<Arc<KeySnapshot>, Unavailable> {
        let cached = self.current.read().clone();
        match cached {
            Some(snapshot) => {
                if snapshot.is_stale() && self.may_attempt() {
                    let this = self.clone();
                    tokio::spawn(async move { this.refresh().await });
                }
                Ok(snapshot)
            }
            None => {
                self.refresh().await;
                self.current.read().clone().ok_or(Unavailable::NoKeys)
            }
        }
    }

    /// After a token named a `kid` the cached set `seen` lacks: fetches again unless that was
    /// done within `jwks_min_refresh_secs`; returns the set to retry with if it changed.
    pub(crate) async fn refresh_for_unknown_kid(
        &self,
        seen: &Arc<KeySnapshot>,
    ) -> Option<Arc<KeySnapshot>> {
        self.refresh().await;
        let now = self.current.read().clone()?;
        (!Arc::ptr_eq(&now, seen)).then_some(now)
    }

    /// Whether `jwks_min_refresh_secs` have passed since the last fetch attempt.
    fn may_attempt(&self) -> bool {
        self.last_attempt
            .lock()
            .is_none_or(|at| at.elapsed() >= self.min_refresh)
    }

    /// Fetches the keys, at most once per `jwks_min_refresh_secs`; callers that queued
    /// behind a fetch share its result instead of fetching again.
    pub(crate) async fn refresh(&self) {
        let seen = self.attempts.load(Ordering::Acquire);
        let _fetching = self.fetching.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen || !self.may_attempt() {
            return;
        }
        *self.last_attempt.lock() = Some(Instant::now());
        let result = self.fetch().await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(snapshot) => {
                tracing::info!(issuer = %self.issuer, keys = snapshot.len(), "fetched the JWKS of an external issuer");
                *self.current.write() = Some(Arc::new(snapshot));
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, error = format!("{error:#}"), "could not fetch the JWKS of an external issuer");
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySnapshot> {
        let url = match &self.configured_url {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        let (body, max_age) = get(&self.http, &url).await?;
        let snapshot = KeySnapshot::parse(&body, max_age)?;
        if snapshot.len() == 0 {
            bail!("the JWKS at {url} holds no usable signature key");
        }
        Ok(snapshot)
    }

    /// `jwks_uri` from the issuer's discovery document (remembered once found).
    async fn discover(&self) -> anyhow::Result<String> {
        if let Some(url) = self.discovered_url.lock().clone() {
            return Ok(url);
        }
        let base = self.issuer.trim_end_matches('/');
        let url = format!("{base}/.well-known/openid-configuration");
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (body, _) = get(&self.http, &url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .with_context(|| format!("{url} is not an OpenID Connect discovery document"))?;
        if doc.issuer.trim_end_matches('/') != base {
            bail!(
                "{url} names issuer {:?}, not the configured {:?}",
                doc.issuer,
                self.issuer
            );
        }
        if !(doc.jwks_uri.starts_with("https://") || doc.jwks_uri.starts_with("http://")) {
            bail!(
                "{url} names a jwks_uri that is not http(s): {:?}",
                doc.jwks_uri
            );
        }
        *self.discovered_url.lock() = Some(doc.jwks_uri.clone());
        Ok(doc.jwks_uri)
    }
}

/// Makes rustls' ring provider the process default (idempotent). reqwest is built with
/// `rustls-no-provider` (no aws-lc build), and that feature applies to every reqwest client
/// in a build that includes this crate: a client built without an explicit TLS
/// configuration panics unless a default provider is installed. Processes that build
/// plain clients (tests, the load bench) call this first; [`crate::Identity::new`] does too.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The outbound HTTP client: timeouts, few redirects, rustls with the Mozilla roots.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("tenantry/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client for OIDC issuers")
}

/// GETs `url`: a 200 of at most [`MAX_RESPONSE_BYTES`], and its `max-age`.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(Vec<u8>, Duration)> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        bail!("GET {url}: the response is larger than {MAX_RESPONSE_BYTES} bytes");
    }
    let max_age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .map_or(DEFAULT_MAX_AGE, |age| age.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading GET {url}"))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(anyhow!(
                "GET {url}: the response is larger than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age` of a `Cache-Control` value (`no-cache`/`no-store` count as 0).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|secs| secs.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600, stale-while-revalidate=60"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn symmetric_and_encryption_keys_are_never_used() {
        let set = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let snapshot =
            KeySnapshot::parse(&serde_json::to_vec(&set).unwrap(), DEFAULT_MAX_AGE).unwrap();
        assert!(snapshot.key(Some("hmac")).is_none());
        assert!(snapshot.key(Some("enc")).is_none());
        let sig = snapshot.key(Some("sig")).unwrap();
        assert!(sig.accepts(Algorithm::ES256));
        assert!(!sig.accepts(Algorithm::ES384));
        assert!(!sig.accepts(Algorithm::HS256));
        assert!(!sig.accepts(Algorithm::RS256));
    }
}
