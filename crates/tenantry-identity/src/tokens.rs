//! Access tokens (short-lived JWTs bound to a session) and refresh tokens (opaque, random,
//! stored only as a SHA-256 digest).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_core::{SessionId, UserId};
use uuid::Uuid;

use crate::keys::KeyRing;

/// Prefix that makes a leaked refresh token recognisable to secret scanners.
pub const REFRESH_PREFIX: &str = "tnr_";

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    /// The session this token belongs to; revoking the session revokes the token.
    pub sid: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// What a verified access token asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub session_id: SessionId,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
}

pub fn issue_access(
    keys: &KeyRing,
    settings: &TokenSettings,
    user_id: UserId,
    session_id: SessionId,
    now: i64,
) -> anyhow::Result<String> {
    let (kid, key) = keys.signing();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: user_id.as_uuid(),
        sid: session_id.as_uuid(),
        iat: now,
        nbf: now,
        exp: now + settings.access_ttl_secs,
    };
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

/// Verifies signature, algorithm, `kid`, issuer, audience and time claims. Session liveness
/// is checked by the caller against the database.
pub fn verify_access(
    keys: &KeyRing,
    settings: &TokenSettings,
    token: &str,
) -> Option<VerifiedAccess> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    // Only our own algorithm: refuses `none`, HMAC-with-public-key confusion and the like.
    if header.alg != Algorithm::EdDSA {
        return None;
    }
    let key = keys.verifying(header.kid.as_deref()?)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).ok()?;
    Some(VerifiedAccess {
        user_id: UserId::from_uuid(data.claims.sub),
        session_id: SessionId::from_uuid(data.claims.sid),
    })
}

/// A fresh refresh token and the digest to store.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = digest(&token);
    (token, digest)
}

/// SHA-256 of a high-entropy token. A slow hash adds nothing for 256 random bits, and a
/// digest lookup by unique index avoids comparing secrets in application code at all.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_prefixed() {
        let (a, da) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert!(a.starts_with(REFRESH_PREFIX));
        assert_eq!(digest(&a), da);
        assert_eq!(da.len(), 32);
    }
}
