//! External OpenID Connect issuers (e.g. Auth0): their tokens are accepted as bearers.
//!
//! A bearer's unverified `iss` picks the keys that may verify it: our own issuer → our
//! Ed25519 keys (the existing path, untouched); a configured external issuer → that issuer's
//! JWKS (`jwks`); anything else fails our own verification (wrong `iss`). So an external
//! token is never checked against our keys, nor ours against theirs, and issuers cannot
//! stand in for each other. The user is found by (issuer, subject), or linked or created
//! on first sight (`users`).

mod jwks;
mod users;
mod verify;

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use jsonwebtoken::Algorithm;

pub use jwks::{CONNECT_TIMEOUT, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT, install_tls_provider};
pub(crate) use verify::peek_issuer;
use verify::{ExternalClaims, Refusal, Rules};

use crate::{
    IdentityError,
    config::{AuthConfig, OidcProviderConfig},
};

/// One configured issuer.
#[derive(Debug)]
pub(crate) struct Provider {
    rules: Rules,
    link_by_verified_email: bool,
    jwks: Arc<jwks::Jwks>,
}

impl Provider {
    fn new(config: &OidcProviderConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| anyhow!("unknown algorithm {a:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            rules: Rules {
                issuer: config.issuer.clone(),
                audiences: config.audience.clone(),
                algorithms,
                leeway_secs: config.leeway_secs,
                email_claim: config.email_claim.clone(),
                email_verified_claim: config.email_verified_claim.clone(),
                given_name_claim: config.given_name_claim.clone(),
                family_name_claim: config.family_name_claim.clone(),
            },
            link_by_verified_email: config.link_by_verified_email,
            jwks: Arc::new(jwks::Jwks::new(
                http,
                config.issuer.clone(),
                config.jwks_url.clone(),
                Duration::from_secs(config.jwks_min_refresh_secs),
            )),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.rules.issuer
    }

    /// Verifies a token of this issuer: from the memo, against the cached keys, or (for a
    /// `kid` not seen yet, rate-limited) against freshly fetched keys.
    async fn verify(&self, token: &str, now: i64) -> Result<Arc<ExternalClaims>, IdentityError> {
        let keys = self.jwks.current().await.map_err(|_| {
            tracing::warn!(issuer = %self.rules.issuer, "external token refused: the issuer's keys are unavailable");
            IdentityError::InvalidToken
        })?;
        match keys.memo.verify(&self.rules, &keys, token, now) {
            Ok(claims) => Ok(claims),
            Err(Refusal::Invalid) => Err(IdentityError::InvalidToken),
            Err(Refusal::UnknownKid) => {
                let fresh = self
                    .jwks
                    .refresh_for_unknown_kid(&keys)
                    .await
                    .ok_or(IdentityError::InvalidToken)?;
                fresh
                    .memo
                    .verify(&self.rules, &fresh, token, now)
                    .map_err(|_| IdentityError::InvalidToken)
            }
        }
    }
}

/// The configured issuers, by exact `iss`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExternalProviders {
    by_issuer: Arc<HashMap<String, Arc<Provider>>>,
}

impl ExternalProviders {
    /// Checks the configuration (asymmetric algorithms only, http(s) URLs, no issuer twice
    /// or equal to ours) and prepares one key cache per issuer; fetches nothing yet.
    pub(crate) fn from_config(auth: &AuthConfig, own_issuer: &str) -> anyhow::Result<Self> {
        install_tls_provider();
        auth.validate(own_issuer)
            .map_err(|e| anyhow!(e))
            .context("invalid auth.oidc configuration")?;
        if auth.oidc.is_empty() {
            return Ok(Self::default());
        }
        let http = jwks::http_client()?;
        let mut by_issuer = HashMap::new();
        for provider in &auth.oidc {
            let built = Provider::new(provider, http.clone())
                .with_context(|| format!("auth.oidc issuer {}", provider.issuer))?;
            by_issuer.insert(provider.issuer.clone(), Arc::new(built));
        }
        Ok(Self {
            by_issuer: Arc::new(by_issuer),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    pub(crate) fn get(&self, issuer: &str) -> Option<&Arc<Provider>> {
        self.by_issuer.get(issuer)
    }

    /// Fetches every issuer's keys once; failures are logged, not fatal (the first token
    /// of that issuer tries again).
    pub(crate) async fn prefetch(&self) {
        for provider in self.by_issuer.values() {
            provider.jwks.refresh().await;
        }
    }
}
