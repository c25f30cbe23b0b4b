//! Download URLs of the local backend: the server signs `path` and an expiry with
//! HMAC-SHA256 and later checks the pair before serving the bytes. Key material comes from
//! the caller (e.g. a subkey of the deployment's master key), so every node of a
//! deployment accepts the URLs any node issued.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates these MACs from every other use of the same key.
const PURPOSE: &[u8] = b"tenantry/v1/download-url";
/// Shortest accepted key.
pub const MIN_KEY_LEN: usize = 32;

/// Signs and verifies `(path, expiry)` pairs. `Debug` does not show the key.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

/// Why a signed URL is refused (both are a 403 to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature does not match the path and expiry (tampered, or another key).
    #[error("the URL signature is invalid")]
    Invalid,
    #[error("the URL has expired")]
    Expired,
}

/// A signing key shorter than [`MIN_KEY_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a URL signing key needs at least {MIN_KEY_LEN} bytes")]
pub struct WeakKey;

impl UrlSigner {
    pub fn new(key: &[u8]) -> Result<Self, WeakKey> {
        if key.len() < MIN_KEY_LEN {
            return Err(WeakKey);
        }
        Ok(Self { key: key.to_vec() })
    }

    fn mac(&self, path: &str, expires: i64) -> HmacSha256 {
        #[allow(clippy::expect_used)] // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(PURPOSE);
        mac.update(&[0]);
        mac.update(path.as_bytes());
        mac.update(&[0]);
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The query string (`expires=<unix seconds>&signature=<hex>`) that makes `path` valid
    /// until `expires_at`. Sign the path exactly as the server will see it.
    pub fn sign(&self, path: &str, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let signature = hex::encode(self.mac(path, expires).finalize().into_bytes());
        format!("expires={expires}&signature={signature}")
    }

    /// Checks the `expires` and `signature` query parameters of a request for `path` now.
    pub fn verify(&self, path: &str, expires: i64, signature: &str) -> Result<(), SignatureError> {
        self.verify_at(path, expires, signature, Utc::now())
    }

    /// [`UrlSigner::verify`] at a given time. The signature is checked first (in constant
    /// time), so an expiry is only reported for URLs this server issued.
    pub fn verify_at(
        &self,
        path: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let tag = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(path, expires)
            .verify_slice(&tag)
            .map_err(|_| SignatureError::Invalid)?;
        if now.timestamp() >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn query(q: &str) -> (i64, String) {
        let mut expires = 0;
        let mut signature = String::new();
        for pair in q.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse().unwrap(),
                Some(("signature", v)) => signature = v.to_owned(),
                _ => panic!("unexpected {pair}"),
            }
        }
        (expires, signature)
    }

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let signer = UrlSigner::new(&[7; 32]).unwrap();
        let now = Utc::now();
        let path = "/api/v1/tenants/t/documents/d/content";
        let (expires, sig) = query(&signer.sign(path, now + TimeDelta::hours(1)));
        assert_eq!(signer.verify_at(path, expires, &sig, now), Ok(()));
        assert_eq!(signer.verify(path, expires, &sig), Ok(()));
        assert_eq!(
            signer.verify_at(path, expires, &sig, now + TimeDelta::hours(2)),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let signer = UrlSigner::new(&[7; 32]).unwrap();
        let now = Utc::now();
        let path = "/files/a";
        let (expires, sig) = query(&signer.sign(path, now + TimeDelta::hours(1)));
        let invalid = Err(SignatureError::Invalid);
        assert_eq!(signer.verify_at("/files/b", expires, &sig, now), invalid);
        assert_eq!(signer.verify_at(path, expires + 3600, &sig, now), invalid);
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(signer.verify_at(path, expires, &flipped, now), invalid);
        assert_eq!(signer.verify_at(path, expires, &sig[..10], now), invalid);
        assert_eq!(signer.verify_at(path, expires, "zz", now), invalid);
        assert_eq!(signer.verify_at(path, expires, "", now), invalid);
        let other = UrlSigner::new(&[8; 32]).unwrap();
        assert_eq!(other.verify_at(path, expires, &sig, now), invalid);
        // Expired and tampered: reported as invalid, not as expired.
        assert_eq!(
            signer.verify_at("/files/b", expires, &sig, now + TimeDelta::days(1)),
            invalid
        );
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert_eq!(UrlSigner::new(&[1; 31]).unwrap_err(), WeakKey);
        let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef").unwrap();
        assert!(!format!("{signer:?}").contains("0123"));
    }
}
