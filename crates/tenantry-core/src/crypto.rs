//! Protection of data at rest with one 256-bit master key from configuration
//! (`TENANTRY_SECRET_KEY`, base64). Two subkeys are derived from it: one for AES-256-GCM
//! encryption (TOTP secrets, queued e-mails that carry one-time links, signing keys) and
//! one for HMAC-SHA256 tags (peppered digests of short secrets such as recovery codes, URL
//! signatures).
//!
//! Without a configured key the embedded default generates one on first start and keeps it
//! in `<data_dir>/secret.key` (mode 0600). Deployments with several nodes, or whose database
//! lives elsewhere, must configure the same key on every node.

use std::{io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use anyhow::{Context, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Format byte of sealed values, so the scheme can change without guessing.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_FILE: &str = "secret.key";

type HmacSha256 = Hmac<Sha256>;

/// The derived keys. Cheap to clone behind an `Arc`; never printed.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    mac_key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[allow(clippy::expect_used)] // HMAC accepts keys of every length; this cannot fail.
fn hmac(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = hmac(master);
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl MasterKey {
    pub fn from_bytes(master: &[u8; 32]) -> Self {
        let enc = derive(master, "tenantry/v1/encrypt");
        Self {
            cipher: Aes256Gcm::new(&enc.into()),
            mac_key: derive(master, "tenantry/v1/mac"),
        }
    }

    /// Parses a base64 (standard or URL-safe) encoding of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> anyhow::Result<Self> {
        let encoded = encoded.trim();
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
            .map_err(|_| anyhow!("the secret key must be base64"))?;
        let master: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow!("the secret key must be 32 bytes (44 base64 characters)"))?;
        Ok(Self::from_bytes(&master))
    }

    /// A new random key and its base64 form (for `tenantry.toml` or the key file).
    pub fn generate() -> (Self, String) {
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        (Self::from_bytes(&master), STANDARD.encode(master))
    }

    /// The configured key (`secret_key`), else the one kept under the data directory
    /// (created on first use).
    pub fn load_or_create(
        secret_key: Option<&SecretString>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        if let Some(key) = secret_key {
            return Self::from_base64(key.expose_secret()).context("TENANTRY_SECRET_KEY");
        }
        Self::from_file(&data_dir.join(KEY_FILE))
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Self::from_base64(&text).with_context(|| format!("{}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let (key, encoded) = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(encoded.as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated the data encryption key");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. `"totp:<user id>"`), so a sealed
    /// value copied into another row or column does not open.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption fails only for messages beyond 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`MasterKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> anyhow::Result<Vec<u8>> {
        let Some((&version, rest)) = sealed.split_first() else {
            bail!("empty sealed value");
        };
        if version != SEALED_V1 || rest.len() < NONCE_LEN + 16 {
            bail!("unknown sealed value format");
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into()?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("sealed value does not open with this key (wrong key or tampered)")
            })
    }

    /// HMAC-SHA256 of `data` under the MAC subkey, separated by `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = hmac(&self.mac_key);
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of a tag made by [`MasterKey::mac`].
    pub fn verify_mac(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = hmac(&self.mac_key);
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let (key, encoded) = MasterKey::generate();
        let sealed = key.seal(b"JBSWY3DPEHPK3PXP", "totp:1");
        assert_ne!(&sealed[13..], b"JBSWY3DPEHPK3PXP");
        assert_eq!(key.open(&sealed, "totp:1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(key.open(&sealed, "totp:2").is_err(), "other context");
        let again = MasterKey::from_base64(&encoded).unwrap();
        assert_eq!(again.open(&sealed, "totp:1").unwrap(), b"JBSWY3DPEHPK3PXP");
        let (other, _) = MasterKey::generate();
        assert!(other.open(&sealed, "totp:1").is_err(), "other key");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(&tampered, "totp:1").is_err(), "tampered");
        assert!(key.open(&[], "totp:1").is_err());
        assert_ne!(
            key.seal(b"x", "c"),
            key.seal(b"x", "c"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn macs_are_keyed_and_purpose_separated() {
        let (key, _) = MasterKey::generate();
        let tag = key.mac("recovery", b"abcd-efgh");
        assert!(key.verify_mac("recovery", b"abcd-efgh", &tag));
        assert!(!key.verify_mac("other", b"abcd-efgh", &tag));
        assert!(!key.verify_mac("recovery", b"abcd-efgi", &tag));
        let (other, _) = MasterKey::generate();
        assert_ne!(other.mac("recovery", b"abcd-efgh"), tag);
    }

    #[test]
    fn rejects_keys_of_the_wrong_size_and_keeps_the_generated_file() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        let dir = tempfile_dir();
        let path = dir.join("secret.key");
        let first = MasterKey::from_file(&path).unwrap();
        let second = MasterKey::from_file(&path).unwrap();
        assert_eq!(first.mac("p", b"d"), second.mac("p", b"d"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tenantry-key-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
