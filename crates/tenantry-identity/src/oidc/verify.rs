//! Verification of an external issuer's token against its keys, and the memo of tokens that
//! verified (the same idea as `tokens::VerifiedTokens`: an RSA verification per request
//! would cost more than the rest of the request).

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tenantry_core::Email;

use super::jwks::KeySnapshot;

/// Longest `sub` accepted (Auth0's are like `google-oauth2|1234…`, well below).
const MAX_SUBJECT_LEN: usize = 255;
/// Longest name taken from a claim (longer ones are cut).
const MAX_NAME_CHARS: usize = 100;

/// What one provider accepts, and where its claims are.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    pub email_claim: String,
    pub email_verified_claim: String,
    pub given_name_claim: String,
    pub family_name_claim: String,
}

/// What a verified external token asserts about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExternalClaims {
    pub subject: String,
    /// A syntactically valid address from the configured claim, lower-cased.
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: String,
    pub family_name: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A well-formed token naming a `kid` these keys lack: newer keys might have it.
    UnknownKid,
    Invalid,
}

/// Tokens that verified against one key set, by exact text, with their deadline (expiry
/// plus leeway), checked on every hit. Bounded: when full it is emptied.
/// Verified claims and the Unix time they stop being valid.
type Remembered = (Arc<ExternalClaims>, i64);

pub(crate) struct Memo {
    entries: parking_lot::RwLock<HashMap<Box<str>, Remembered>>,
    capacity: usize,
}

impl Memo {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: parking_lot::RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Verifies `token` against `keys` (whose memo this is), consulting and filling the memo.
    pub(crate) fn verify(
        &self,
        rules: &Rules,
        keys: &KeySnapshot,
        token: &str,
        now: i64,
    ) -> Result<Arc<ExternalClaims>, Refusal> {
        if let Some((claims, deadline)) = self.entries.read().get(token) {
            return if now < *deadline {
                Ok(claims.clone())
            } else {
                Err(Refusal::Invalid)
            };
        }
        let (claims, deadline) = verify(rules, keys, token, now)?;
        let claims = Arc::new(claims);
        let mut entries = self.entries.write();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(token.into(), (claims.clone(), deadline));
        Ok(claims)
    }
}

/// Checks the algorithm (allowed for the provider and fitting the key), the signature, `iss`
/// (exact), `aud` (one of ours), `exp` (required), `nbf` and `iat` (with leeway) and `sub`;
/// returns the claims and the moment the token stops being valid.
pub(crate) fn verify(
    rules: &Rules,
    keys: &KeySnapshot,
    token: &str,
    now: i64,
) -> Result<(ExternalClaims, i64), Refusal> {
    // `alg: none` and unknown algorithms fail to parse here.
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
    if !rules.algorithms.contains(&header.alg) {
        return Err(Refusal::Invalid);
    }
    let key = match keys.key(header.kid.as_deref()) {
        Some(key) => key,
        None if header.kid.is_some() => return Err(Refusal::UnknownKid),
        None => return Err(Refusal::Invalid),
    };
    if !key.accepts(header.alg) {
        return Err(Refusal::Invalid);
    }
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.set_issuer(&[&rules.issuer]);
    validation.set_audience(&rules.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = rules.leeway_secs;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map_err(|_| Refusal::Invalid)?;
    let claims = data.claims;
    let leeway = i64::try_from(rules.leeway_secs).unwrap_or(i64::MAX / 4);
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(Refusal::Invalid);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(Refusal::Invalid)?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_LEN)
        .ok_or(Refusal::Invalid)?
        .to_owned();
    let email = claims
        .get(&rules.email_claim)
        .and_then(Value::as_str)
        // As written only: see `Email::parse_as_written`.
        .and_then(|e| Email::parse_as_written(e).ok())
        .map(|e| e.as_str().to_owned());
    let email_verified = email.is_some()
        && match claims.get(&rules.email_verified_claim) {
            Some(Value::Bool(b)) => *b,
            // Some issuers (e.g. Cognito) send the boolean as a string.
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
    let name = |claim: &str| {
        claims
            .get(claim)
            .and_then(Value::as_str)
            // Names are shown to other members: drop what our own name rules refuse.
            .map(|s| {
                s.chars()
                    .filter(|c| !tenantry_core::text::is_hidden_char(*c))
                    .collect::<String>()
                    .trim()
                    .chars()
                    .take(MAX_NAME_CHARS)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    Ok((
        ExternalClaims {
            subject,
            email,
            email_verified,
            given_name: name(&rules.given_name_claim),
            family_name: name(&rules.family_name_claim),
        },
        exp.saturating_add(leeway),
    ))
}

/// The unverified `iss` of a JWT, to pick the keys that may verify it (never trusted
/// beyond that: the chosen verification checks `iss` again).
pub(crate) fn peek_issuer(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let mut parts = token.splitn(3, '.');
    let _header = parts.next()?;
    let payload = parts.next()?;
    parts.next()?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}
