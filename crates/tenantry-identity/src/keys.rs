//! The access-token signing keys (Ed25519), kept in the database so every server node signs
//! and verifies with the same set, and published as a JWKS.
//!
//! `signing_keys.retired_at` is the moment a key stops verifying: `NULL` for keys in service,
//! set by [`rotate`] for the keys it replaces. The signer is the newest key with
//! `retired_at IS NULL`; every key whose `retired_at` is unset or still ahead verifies and is
//! published. The first start generates a key; later starts load the set.
//!
//! A running server holds the set in a [`KeyRing`] and re-reads it every [`RELOAD_INTERVAL`],
//! when a retiring key reaches its end, and (rate-limited) when a token names a `kid` it does
//! not know, so a rotation made by the CLI or another node arrives without a restart.
//!
//! Retirements are times of the system clock ([`crate::tokens::token_now`]), like the claims
//! of the tokens they verify.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use parking_lot::{RwLock, RwLockReadGuard};
use rand::RngCore;
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantry_core::crypto::MasterKey;
use tenantry_db::{Db, DbError, FromRow, InsertRow, Row};

use crate::tokens::{VerifiedTokens, token_now};

pub const ALGORITHM: &str = "EdDSA";

/// How often a running server re-reads the keys (and so the longest a node keeps signing
/// with a key after another process rotated it).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Least time between two reloads caused by tokens naming an unknown `kid`.
pub const UNKNOWN_KID_RELOAD_GAP: Duration = Duration::from_secs(5);

/// Entries of the verified-token memo of one key set.
const MEMO_CAPACITY: usize = 50_000;

#[derive(Clone)]
pub(crate) struct StoredKey {
    pub(crate) kid: String,
    pub(crate) private_der: Vec<u8>,
    pub(crate) public_raw: Vec<u8>,
    pub(crate) retired_at: Option<DateTime<Utc>>,
}

impl FromRow for StoredKey {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            kid: row.string()?,
            private_der: row.bytes()?,
            public_raw: row.bytes()?,
            retired_at: row.opt_time()?,
        })
    }
}

/// A public key that verifies tokens until `retires_at` (Unix seconds; `i64::MAX` if never).
pub(crate) struct Verifier {
    pub(crate) key: DecodingKey,
    pub(crate) retires_at: i64,
}

/// One loaded generation of keys: the signer, the verifiers, the JWKS and the memo of tokens
/// verified against exactly these keys (a new generation starts with an empty memo).
pub(crate) struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, Verifier>,
    jwks: serde_json::Value,
    /// (kid, retired_at) as loaded, to tell whether a reload changed anything.
    loaded: Vec<(String, Option<DateTime<Utc>>)>,
    pub(crate) memo: VerifiedTokens,
}

impl KeySet {
    fn from_stored(keys: &[StoredKey]) -> anyhow::Result<Self> {
        let signer = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .context("no signing key in service")?;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for key in keys {
            let x = URL_SAFE_NO_PAD.encode(&key.public_raw);
            verifying.insert(
                key.kid.clone(),
                Verifier {
                    key: DecodingKey::from_ed_components(&x)
                        .context("loading a verification key")?,
                    retires_at: key.retired_at.map_or(i64::MAX, |t| t.timestamp()),
                },
            );
            jwks.push(json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
                "kid": key.kid, "alg": ALGORITHM, "use": "sig",
            }));
        }
        Ok(Self {
            signing_kid: signer.kid.clone(),
            signing: EncodingKey::from_ed_der(&signer.private_der),
            verifying,
            jwks: json!({ "keys": jwks }),
            loaded: keys.iter().map(|k| (k.kid.clone(), k.retired_at)).collect(),
            memo: VerifiedTokens::new(MEMO_CAPACITY),
        })
    }

    pub(crate) fn signing(&self) -> (&str, &EncodingKey) {
        (&self.signing_kid, &self.signing)
    }

    pub(crate) fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifying.get(kid)
    }

    /// The earliest moment a loaded key stops verifying, if any is retiring.
    fn next_retirement(&self) -> Option<DateTime<Utc>> {
        self.loaded.iter().filter_map(|(_, at)| *at).min()
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing_kid)
            .field("loaded", &self.loaded)
            .finish()
    }
}

/// Lets one caller through per `gap`; the others are refused without waiting.
#[derive(Debug)]
struct RateGate {
    origin: Instant,
    /// Milliseconds after `origin` before which the gate stays shut.
    open_at_ms: AtomicU64,
    gap_ms: u64,
}

impl RateGate {
    fn new(gap: Duration) -> Self {
        Self {
            origin: Instant::now(),
            open_at_ms: AtomicU64::new(0),
            gap_ms: u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn try_pass(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let open_at = self.open_at_ms.load(Ordering::Acquire);
        now >= open_at
            && self
                .open_at_ms
                .compare_exchange(
                    open_at,
                    now.saturating_add(self.gap_ms),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

/// The keys in effect, swappable while the server runs. Readers take a read lock only for
/// the synchronous verification; a reload builds the new set outside the lock and holds the
/// write lock just to swap one pointer.
pub struct KeyRing {
    current: RwLock<Arc<KeySet>>,
    /// Serialises reloads (never held by verification).
    reloading: tokio::sync::Mutex<()>,
    unknown_kid_gate: RateGate,
    /// Wakes the background refresher when the set changed (its next wake-up may move).
    changed: tokio::sync::Notify,
    /// Private keys are stored sealed with the data key.
    sealer: MasterKey,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &*self.current.read())
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
        retired_at: None,
    })
}

/// Sealing context of a private key: a sealed key moved to another row does not open.
fn seal_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// PKCS#8 DER starts with a SEQUENCE tag; sealed values start with their format byte.
const DER_SEQUENCE: u8 = 0x30;

/// The stored private key in the clear: sealed ones are opened, keys written before keys
/// were sealed (plain DER) are taken as they are.
fn open_private(key: &mut StoredKey, sealer: &MasterKey) -> anyhow::Result<()> {
    if key.private_der.first() != Some(&DER_SEQUENCE) {
        key.private_der = sealer
            .open(&key.private_der, &seal_context(&key.kid))
            .with_context(|| {
                format!(
                    "signing key {} does not decrypt: the data key (TENANTRY_SECRET_KEY or \
                     <data_dir>/secret.key) differs from the one that sealed it",
                    key.kid
                )
            })?;
    }
    Ok(())
}

async fn insert(
    tx: &mut tenantry_db::Tx,
    key: &StoredKey,
    now: DateTime<Utc>,
    sealer: &MasterKey,
) -> anyhow::Result<()> {
    tx.execute(
        Query::insert().into_table("signing_keys").row([
            ("kid", key.kid.clone().into()),
            ("algorithm", ALGORITHM.into()),
            (
                "private_key",
                sealer
                    .seal(&key.private_der, &seal_context(&key.kid))
                    .into(),
            ),
            ("public_key", key.public_raw.clone().into()),
            ("created_at", now.into()),
        ]),
    )
    .await
    .context("storing a signing key")?;
    Ok(())
}

/// The keys that still verify, newest first.
async fn load(db: &Db, sealer: &MasterKey) -> anyhow::Result<Vec<StoredKey>> {
    let mut tx = db.begin_read().await?;
    let mut keys: Vec<StoredKey> = tx
        .fetch_all(
            Query::select()
                .columns(["kid", "private_key", "public_key", "retired_at"])
                .from("signing_keys")
                .cond_where(
                    Expr::col("retired_at")
                        .is_null()
                        .or(Expr::col("retired_at").gt(token_now())),
                )
                .order_by("created_at", Order::Desc)
                .order_by("kid", Order::Desc),
        )
        .await
        .context("loading signing keys")?;
    tx.commit().await?;
    for key in &mut keys {
        open_private(key, sealer)?;
    }
    Ok(keys)
}

/// Loads the keys, generating a signer when none is in service.
async fn load_or_create(db: &Db, sealer: &MasterKey) -> anyhow::Result<KeySet> {
    let mut keys = load(db, sealer).await?;
    if keys.iter().all(|k| k.retired_at.is_some()) {
        let key = generate()?;
        let mut tx = db.begin_write().await?;
        insert(&mut tx, &key, token_now(), sealer).await?;
        tx.commit().await?;
        tracing::info!(kid = key.kid, "generated an access-token signing key");
        // Another node may have raced us; whatever is stored now is the truth.
        keys = load(db, sealer).await?;
    }
    KeySet::from_stored(&keys)
}

/// What `rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new signing key.
    pub kid: String,
    /// The keys it replaced, and when each stops verifying.
    pub retiring: Vec<(String, DateTime<Utc>)>,
    /// Keys past their retirement that were deleted.
    pub deleted: u64,
}

/// Makes a new key the signer; the keys in service until now keep verifying for `grace`.
/// Keys whose retirement has passed are deleted.
pub(crate) async fn rotate(
    db: &Db,
    grace: TimeDelta,
    sealer: &MasterKey,
) -> anyhow::Result<Rotation> {
    let now = token_now();
    let retires_at = now + grace;
    let key = generate()?;
    let mut tx = db.begin_write().await?;
    let deleted = tx
        .execute(
            Query::delete()
                .from_table("signing_keys")
                .and_where(Expr::col("retired_at").is_not_null())
                .and_where(Expr::col("retired_at").lte(now)),
        )
        .await
        .context("deleting retired signing keys")?;
    let previous: Vec<String> = tx
        .fetch_all(
            Query::select()
                .column("kid")
                .from("signing_keys")
                .and_where(Expr::col("retired_at").is_null())
                .order_by("created_at", Order::Desc)
                .order_by("kid", Order::Desc),
        )
        .await?;
    insert(&mut tx, &key, now, sealer).await?;
    tx.execute(
        Query::update()
            .table("signing_keys")
            .value("retired_at", retires_at)
            .and_where(Expr::col("retired_at").is_null())
            .and_where(Expr::col("kid").ne(key.kid.as_str())),
    )
    .await
    .context("retiring the previous signing keys")?;
    tenantry_audit::record_in(
        &mut tx,
        tenantry_audit::Chain::Platform,
        tenantry_audit::AuditActor::System,
        &tenantry_core::Origin::NONE,
        tenantry_audit::Entry::new("signing_key.rotated", "signing_key", &key.kid).with_summary(
            serde_json::json!({ "retiring": previous, "retires_at": retires_at, "deleted": deleted }),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(kid = key.kid, ?previous, %retires_at, "rotated the access-token signing key");
    Ok(Rotation {
        kid: key.kid,
        retiring: previous.into_iter().map(|kid| (kid, retires_at)).collect(),
        deleted,
    })
}

impl KeyRing {
    /// Loads the keys, generating the first one when there is none.
    pub async fn load_or_create(db: &Db, sealer: MasterKey) -> anyhow::Result<Self> {
        Ok(Self::with(load_or_create(db, &sealer).await?, sealer))
    }

    fn with(set: KeySet, sealer: MasterKey) -> Self {
        Self {
            sealer,
            current: RwLock::new(Arc::new(set)),
            reloading: tokio::sync::Mutex::new(()),
            unknown_kid_gate: RateGate::new(UNKNOWN_KID_RELOAD_GAP),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The keys in effect. Hold the guard only for synchronous work.
    pub(crate) fn current(&self) -> RwLockReadGuard<'_, Arc<KeySet>> {
        self.current.read()
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        self.current.read().jwks.clone()
    }

    /// Re-reads the keys; returns whether anything changed. A change starts a new
    /// generation (and with it an empty verified-token memo).
    pub async fn reload(&self, db: &Db) -> anyhow::Result<bool> {
        let _one_at_a_time = self.reloading.lock().await;
        let set = load_or_create(db, &self.sealer).await?;
        let changed = {
            let current = self.current.read();
            set.loaded != current.loaded || set.signing_kid != current.signing_kid
        };
        if changed {
            tracing::info!(signing_kid = set.signing_kid, keys = ?set.loaded, "signing keys reloaded");
            *self.current.write() = Arc::new(set);
            self.changed.notify_one();
        }
        Ok(changed)
    }

    /// Called when a token names a `kid` this ring does not know: reloads at most once per
    /// [`UNKNOWN_KID_RELOAD_GAP`], or waits for a reload already under way. Returns whether
    /// a retry can see keys newer than the caller's.
    pub(crate) async fn reload_for_unknown_kid(&self, db: &Db) -> bool {
        if self.unknown_kid_gate.try_pass() {
            match self.reload(db).await {
                Ok(changed) => changed,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "reloading signing keys failed"
                    );
                    false
                }
            }
        } else {
            // A reload may be in flight (typically for the same new kid): wait for it.
            drop(self.reloading.lock().await);
            true
        }
    }

    /// Keeps the ring current until the future is dropped: reloads every
    /// [`RELOAD_INTERVAL`] and just after a loaded key's retirement.
    pub async fn refresh_forever(self: Arc<Self>, db: Db) {
        loop {
            let next_retirement = self.current.read().next_retirement();
            let mut wait = RELOAD_INTERVAL;
            if let Some(at) = next_retirement {
                let until = (at - token_now()).to_std().unwrap_or_default();
                // Not sooner than a second: a failing database is not polled in a tight loop.
                wait = wait.min((until + Duration::from_millis(100)).max(Duration::from_secs(1)));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if let Err(error) = self.reload(&db).await {
                        tracing::warn!(error = format!("{error:#}"), "reloading signing keys failed");
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn stored(retired_at: Option<DateTime<Utc>>) -> StoredKey {
        StoredKey {
            retired_at,
            ..generate().unwrap()
        }
    }

    pub(crate) fn set(keys: &[StoredKey]) -> KeySet {
        KeySet::from_stored(keys).unwrap()
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let stored = generate().unwrap();
        assert_eq!(stored.public_raw.len(), 32);
        let set = set(&[stored]);
        let (kid, key) = set.signing();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let token =
            jsonwebtoken::encode(&header, &json!({"sub": "x", "exp": 4_000_000_000u64}), key)
                .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &set.verifier(kid).unwrap().key,
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "x");
        assert_eq!(set.jwks["keys"][0]["kid"], kid);
        assert_eq!(set.jwks["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn the_signer_is_the_newest_key_in_service_and_retiring_keys_still_verify() {
        let later = Utc::now() + TimeDelta::seconds(90);
        // Newest first, as loaded: a retiring key may be newer than the signer.
        let keys = [stored(Some(later)), stored(None), stored(None)];
        let set = set(&keys);
        assert_eq!(set.signing().0, keys[1].kid);
        assert_eq!(set.verifying.len(), 3);
        assert_eq!(set.jwks["keys"].as_array().unwrap().len(), 3);
        assert_eq!(
            set.verifier(&keys[0].kid).unwrap().retires_at,
            later.timestamp()
        );
        assert_eq!(set.verifier(&keys[1].kid).unwrap().retires_at, i64::MAX);
        assert_eq!(set.next_retirement(), Some(later));
        assert!(KeySet::from_stored(&[stored(Some(later))]).is_err());
    }

    #[test]
    fn the_unknown_kid_gate_lets_one_through_per_gap() {
        let gate = RateGate::new(Duration::from_millis(200));
        assert!(gate.try_pass());
        assert!(!gate.try_pass(), "second within the gap");
        assert!(!gate.try_pass());
        std::thread::sleep(Duration::from_millis(250));
        assert!(gate.try_pass(), "after the gap");
        assert!(!gate.try_pass());
    }
}
