//! The access-token signing keys (Ed25519), kept in the database so every server node signs
//! and verifies with the same set, and published as a JWKS.
//!
//! The first start generates a key; later starts load it. Keys marked retired are neither
//! used nor published (rotation, which keeps the previous key verifying until its tokens
//! expire, arrives with `tenantry admin rotate-keys`).

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantry_db::{Db, DbError, FromRow, Row};

pub const ALGORITHM: &str = "EdDSA";

struct StoredKey {
    kid: String,
    private_der: Vec<u8>,
    public_raw: Vec<u8>,
}

impl FromRow for StoredKey {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            kid: row.string()?,
            private_der: row.bytes()?,
            public_raw: row.bytes()?,
        })
    }
}

/// Keys in effect: the newest signs, all verify.
pub struct KeyRing {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("signing_kid", &self.signing_kid)
            .field("verifying", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: a stable, content-derived `kid`.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn generate() -> anyhow::Result<StoredKey> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let private_der = key
        .to_pkcs8_der()
        .map_err(|e| anyhow!("encoding the signing key: {e}"))?
        .as_bytes()
        .to_vec();
    let public_raw = key.verifying_key().to_bytes().to_vec();
    Ok(StoredKey {
        kid: thumbprint(&URL_SAFE_NO_PAD.encode(&public_raw)),
        private_der,
        public_raw,
    })
}

async fn load(db: &Db) -> anyhow::Result<Vec<StoredKey>> {
    let mut tx = db.begin_read().await?;
    let keys = tx
        .fetch_all(
            Query::select()
                .columns(["kid", "private_key", "public_key"])
                .from("signing_keys")
                .and_where(Expr::col("retired_at").is_null())
                .order_by("created_at", Order::Desc)
                .order_by("kid", Order::Desc),
        )
        .await
        .context("loading signing keys")?;
    tx.commit().await?;
    Ok(keys)
}

impl KeyRing {
    /// Loads the keys, generating the first one when there is none.
    pub async fn load_or_create(db: &Db) -> anyhow::Result<Self> {
        let mut keys = load(db).await?;
        if keys.is_empty() {
            let key = generate()?;
            let mut tx = db.begin_write().await?;
            tx.execute(
                Query::insert()
                    .into_table("signing_keys")
                    .columns([
                        "kid",
                        "algorithm",
                        "private_key",
                        "public_key",
                        "created_at",
                    ])
                    .values_panic([
                        key.kid.clone().into(),
                        ALGORITHM.into(),
                        key.private_der.clone().into(),
                        key.public_raw.clone().into(),
                        tenantry_core::now().into(),
                    ]),
            )
            .await
            .context("storing the first signing key")?;
            tx.commit().await?;
            tracing::info!(kid = key.kid, "generated the access-token signing key");
            // Another node may have raced us; whatever is stored now is the truth.
            keys = load(db).await?;
        }
        Self::from_stored(&keys)
    }

    fn from_stored(keys: &[StoredKey]) -> anyhow::Result<Self> {
        let newest = keys.first().context("no signing key")?;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            let x = URL_SAFE_NO_PAD.encode(&key.public_raw);
            verifying.insert(
                key.kid.clone(),
                DecodingKey::from_ed_components(&x).context("loading a verification key")?,
            );
            jwks.push(json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": key.kid, "alg": ALGORITHM, "use": "sig",
            }));
        }
        Ok(Self {
            signing_kid: newest.kid.clone(),
            signing: EncodingKey::from_ed_der(&newest.private_der),
            verifying,
            jwks: json!({ "keys": jwks }),
        })
    }

    pub fn signing(&self) -> (&str, &EncodingKey) {
        (&self.signing_kid, &self.signing)
    }

    pub fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn ring() -> KeyRing {
        KeyRing::from_stored(&[generate().unwrap()]).unwrap()
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let stored = generate().unwrap();
        assert_eq!(stored.public_raw.len(), 32);
        let ring = KeyRing::from_stored(&[stored]).unwrap();
        let (kid, key) = ring.signing();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let token =
            jsonwebtoken::encode(&header, &json!({"sub": "x", "exp": 4_000_000_000u64}), key)
                .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            ring.verifying(kid).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "x");
        assert_eq!(ring.jwks()["keys"][0]["kid"], kid);
        assert_eq!(ring.jwks()["keys"][0]["crv"], "Ed25519");
    }
}
