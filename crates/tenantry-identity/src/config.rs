//! The `auth` section (`TENANTRY_AUTH__*`, `[[auth.oidc]]`): token lifetimes, password
//! hashing, and the external OpenID Connect issuers, with the checks serde cannot make.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashScheduling {
    Idle,
    Low,
    Normal,
}

impl AuthConfig {
    /// The `iss` of our access tokens: `auth.issuer`, else the configured `public_url`, else
    /// `tenantry`. (Not the listening address: an issuer must not change with the port.)
    pub fn effective_issuer(&self, public_url: Option<&str>) -> String {
        self.issuer
            .clone()
            .or_else(|| public_url.map(str::to_owned))
            .unwrap_or_else(|| "tenantry".to_owned())
    }

    /// Checks the external identity providers: each valid, no issuer twice, none equal to
    /// `own_issuer` (a token's `iss` decides which keys verify it).
    pub fn validate(&self, own_issuer: &str) -> Result<(), String> {
        let mut seen = HashSet::new();
        for provider in &self.oidc {
            provider.validate()?;
            if provider.issuer == own_issuer {
                return Err(format!(
                    "auth.oidc issuer {own_issuer:?} is this server's own token issuer (auth.issuer)"
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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

        let mut auth = AuthConfig {
            oidc: vec![ok.clone(), ok.clone()],
            ..AuthConfig::default()
        };
        let own = auth.effective_issuer(None);
        assert!(auth.validate(&own).unwrap_err().contains("twice"));
        auth.oidc = vec![OidcProviderConfig::new("https://us.example/", "a")];
        auth.issuer = Some("https://us.example/".into());
        let own = auth.effective_issuer(Some("https://elsewhere.example"));
        assert!(auth.validate(&own).unwrap_err().contains("own"));
    }

    #[test]
    fn the_issuer_falls_back_to_the_public_url_then_tenantry() {
        let mut auth = AuthConfig::default();
        assert_eq!(auth.effective_issuer(None), "tenantry");
        assert_eq!(
            auth.effective_issuer(Some("https://api.example")),
            "https://api.example"
        );
        auth.issuer = Some("https://issuer.example".into());
        assert_eq!(
            auth.effective_issuer(Some("https://api.example")),
            "https://issuer.example"
        );
    }
}
