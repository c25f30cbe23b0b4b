//! A local OpenID Connect issuer: serves a discovery document and a JWKS on 127.0.0.1:0 and
//! signs tokens with fixed test keys (`fixtures/*.pem`, generated once with openssl). It
//! counts requests, can rotate its published keys and can play dead (503).

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use std::sync::Mutex;

pub const RSA_A: &str = include_str!("../fixtures/issuer_rsa_a.pem");
pub const RSA_B: &str = include_str!("../fixtures/issuer_rsa_b.pem");
pub const OTHER_RSA: &str = include_str!("../fixtures/other_rsa.pem");
pub const P256: &str = include_str!("../fixtures/issuer_p256.pem");

/// A private key with its `kid` and public JWK.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl Key {
    pub fn rsa(pem: &str, kid: &str) -> Self {
        Self::new(
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            Algorithm::RS256,
            kid,
        )
    }

    pub fn p256(pem: &str, kid: &str) -> Self {
        Self::new(
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            Algorithm::ES256,
            kid,
        )
    }

    fn new(encoding: EncodingKey, alg: Algorithm, kid: &str) -> Self {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// The same private key under another `kid`.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut key = self.clone();
        key.kid = kid.to_owned();
        key.jwk["kid"] = json!(kid);
        key
    }
}

struct Shared {
    issuer: Mutex<String>,
    published: Mutex<Vec<Value>>,
    down: AtomicBool,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

pub struct Issuer {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    shared: Arc<Shared>,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    shared.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = shared.issuer.lock().unwrap().clone();
    let base = issuer.trim_end_matches('/').to_owned();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{base}/authorize"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = shared.published.lock().unwrap().clone();
    (
        [("cache-control", "public, max-age=15000")],
        Json(json!({ "keys": keys })),
    )
        .into_response()
}

impl Issuer {
    /// Starts an issuer whose `iss` is `http://<addr><path>` (`path` `/` gives the Auth0
    /// shape with a trailing slash), publishing `keys`.
    pub async fn start(path: &str, keys: &[&Key]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}{path}");
        let base = path.trim_end_matches('/');
        let shared = Arc::new(Shared {
            issuer: Mutex::new(issuer.clone()),
            published: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            down: AtomicBool::new(false),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                &format!("{base}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route(&format!("{base}/.well-known/jwks.json"), get(jwks))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { issuer, shared }
    }

    /// Publishes exactly `keys` from now on.
    pub fn publish(&self, keys: &[&Key]) {
        *self.shared.published.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    /// Standard claims for `sub` with the given audience; override or add with `extra`.
    pub fn claims(&self, sub: &str, audience: &str, extra: Value) -> Value {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(&k);
            } else {
                claims[k] = v;
            }
        }
        claims
    }

    /// A token signed by `key` (header `alg` and `kid` of the key).
    pub fn sign(&self, key: &Key, claims: &Value) -> String {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    /// A signed token for `sub` at `audience` with `extra` claims.
    pub fn token(&self, key: &Key, sub: &str, audience: &str, extra: Value) -> String {
        self.sign(key, &self.claims(sub, audience, extra))
    }
}
