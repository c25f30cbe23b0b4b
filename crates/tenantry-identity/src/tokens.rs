//! Access tokens (short-lived JWTs bound to a session) and refresh tokens (opaque, random,
//! stored only as a SHA-256 digest).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_core::{SessionId, UserId};
use uuid::Uuid;

use crate::keys::KeySet;

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

pub(crate) fn issue_access(
    keys: &KeySet,
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

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Well-formed header naming a `kid` this key set does not hold: a newer set might.
    UnknownKid,
    Invalid,
}

/// Memoises successful signature verifications. Clients reuse one access token for many
/// requests, and an Ed25519 verification costs more than the rest of a typical request; the
/// key is the exact token text, so only a byte-identical copy of a token that already
/// verified can hit. Each entry keeps the token's deadline (its expiry plus leeway, or its
/// key's retirement if sooner), checked on every hit; session liveness is checked against
/// the database by the caller either way. Every key set has its own memo, so a reload that
/// drops or shortens a key starts from an empty one.
pub(crate) struct VerifiedTokens {
    entries: parking_lot::RwLock<HashMap<Box<str>, (VerifiedAccess, i64)>>,
    capacity: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("len", &self.entries.read().len())
            .finish()
    }
}

impl VerifiedTokens {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: parking_lot::RwLock::new(HashMap::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
        }
    }

    /// Verifies `token` against `keys` (see [`verify_access`]), consulting and filling the
    /// memo; `keys` must be the set this memo belongs to.
    pub(crate) fn verify(
        &self,
        keys: &KeySet,
        settings: &TokenSettings,
        token: &str,
        now: i64,
    ) -> Result<VerifiedAccess, Refusal> {
        if let Some((access, deadline)) = self.entries.read().get(token) {
            return if now < *deadline {
                Ok(*access)
            } else {
                Err(Refusal::Invalid)
            };
        }
        let (access, deadline) = verify_access(keys, settings, token, now)?;
        let mut entries = self.entries.write();
        if entries.len() >= self.capacity {
            // Dropping everything is crude but bounded and O(1) amortised; hot tokens
            // come straight back on their next request.
            entries.clear();
        }
        entries.insert(token.into(), (access, deadline));
        Ok(access)
    }
}

/// The time access tokens are issued and checked at: the system clock, not the deployment's
/// `Clock` (`Db::now`), because `jsonwebtoken` checks `exp` and `nbf` against the system
/// clock and cannot be told otherwise; the memo's deadlines and the signing keys'
/// retirements (`keys.rs`) must agree with it. So a test's `ManualClock` moves sessions,
/// links and other expiries, not access tokens.
pub(crate) fn token_now() -> chrono::DateTime<chrono::Utc> {
    tenantry_core::now()
}

/// [`token_now`] in Unix seconds, as the claims carry it.
pub(crate) fn token_time() -> i64 {
    token_now().timestamp()
}

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;

/// Verifies signature, algorithm, `kid` (and that its key has not retired), issuer, audience
/// and time claims; returns the assertion and the moment it stops being valid (the earlier
/// of expiry plus leeway and the key's retirement). Session liveness is checked by the
/// caller against the database.
pub(crate) fn verify_access(
    keys: &KeySet,
    settings: &TokenSettings,
    token: &str,
    now: i64,
) -> Result<(VerifiedAccess, i64), Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
    // Only our own algorithm: refuses `none`, HMAC-with-public-key confusion and the like.
    if header.alg != Algorithm::EdDSA {
        return Err(Refusal::Invalid);
    }
    let kid = header.kid.as_deref().ok_or(Refusal::Invalid)?;
    let verifier = keys.verifier(kid).ok_or(Refusal::UnknownKid)?;
    if now >= verifier.retires_at {
        return Err(Refusal::Invalid);
    }
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS as u64;
    let data = jsonwebtoken::decode::<AccessClaims>(token, &verifier.key, &validation)
        .map_err(|_| Refusal::Invalid)?;
    Ok((
        VerifiedAccess {
            user_id: UserId::from_uuid(data.claims.sub),
            session_id: SessionId::from_uuid(data.claims.sid),
        },
        data.claims
            .exp
            .saturating_add(LEEWAY_SECS)
            .min(verifier.retires_at),
    ))
}

/// A fresh refresh token and the digest to store.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = digest(&token);
    (token, digest)
}

/// A fresh one-time link token (e-mail verification, password reset) and its digest.
pub fn new_link_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
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
    use chrono::{TimeDelta, Utc};

    use super::*;
    use crate::keys::{
        StoredKey,
        tests::{set, stored},
    };

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "i".into(),
            audience: "a".into(),
            access_ttl_secs: 60,
        }
    }

    #[test]
    fn memo_still_enforces_expiry_and_rejects_what_never_verified() {
        let keys = set(&[stored(None)]);
        let settings = settings();
        let now = Utc::now().timestamp();
        let token = issue_access(&keys, &settings, UserId::new(), SessionId::new(), now).unwrap();
        let memo = VerifiedTokens::new(2);
        assert!(memo.verify(&keys, &settings, &token, now).is_ok());
        assert!(memo.verify(&keys, &settings, &token, now).is_ok(), "hit");
        assert_eq!(
            memo.verify(&keys, &settings, &token, now + 60 + LEEWAY_SECS),
            Err(Refusal::Invalid),
            "expired hit"
        );
        let mut forged = token.clone();
        forged.push('x');
        assert!(memo.verify(&keys, &settings, &forged, now).is_err());
        let other = TokenSettings {
            audience: "b".into(),
            ..settings.clone()
        };
        let foreign = issue_access(&keys, &other, UserId::new(), SessionId::new(), now).unwrap();
        assert!(
            memo.verify(&keys, &settings, &foreign, now).is_err(),
            "wrong audience"
        );
        // Bounded: a third entry evicts.
        for _ in 0..3 {
            let t = issue_access(&keys, &settings, UserId::new(), SessionId::new(), now).unwrap();
            memo.verify(&keys, &settings, &t, now).unwrap();
        }
        assert!(memo.entries.read().len() <= 2);
    }

    #[test]
    fn a_retiring_key_verifies_until_its_retirement_memo_included() {
        let settings = settings();
        let t = Utc::now();
        let now = t.timestamp();
        let retiring = stored(Some(t + TimeDelta::seconds(10)));
        let before = set(&[StoredKey {
            retired_at: None,
            ..retiring.clone()
        }]);
        let token = issue_access(&before, &settings, UserId::new(), SessionId::new(), now).unwrap();
        let after = set(&[stored(None), retiring]);
        assert_ne!(after.signing().0, before.signing().0);
        let memo = VerifiedTokens::new(8);
        assert!(memo.verify(&after, &settings, &token, now).is_ok());
        assert!(
            memo.verify(&after, &settings, &token, now + 9).is_ok(),
            "hit before retirement"
        );
        assert_eq!(
            memo.verify(&after, &settings, &token, now + 10),
            Err(Refusal::Invalid),
            "hit at retirement"
        );
        assert_eq!(
            verify_access(&after, &settings, &token, now + 10).err(),
            Some(Refusal::Invalid),
            "miss at retirement"
        );
        assert_eq!(
            verify_access(&set(&[stored(None)]), &settings, &token, now).err(),
            Some(Refusal::UnknownKid)
        );
    }

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
