//! Storage keys: where an object lives. Keys are built from identifiers and content hashes
//! only, never from user-supplied file names (those are metadata in the database).
//!
//! ```text
//! tenants/{tenant_id}/files/{yyyy}/{mm}/{file_id}_{sha256}   a stored file (immutable)
//! tenants/{tenant_id}/staging/{uuid}                         an upload in progress
//! ```
//!
//! Every key starts with its tenant, so a tenant's objects are one prefix (listing, export,
//! deletion, per-tenant bucket policies), and a key can never name another tenant's object
//! unless the tenant id in it is wrong. `{yyyy}/{mm}` (of the file's creation) spreads a
//! tenant's files over prefixes and makes age-based lifecycle rules and inventories cheap.
//! The SHA-256 in the name lets an operator verify an object without the database.
//! Identifiers are written in their 32-digit form without hyphens: keys stay short (a file key
//! is 152 bytes), which some S3-compatible servers that map keys to file names need.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use tenantry_core::TenantId;
use uuid::Uuid;

const TENANTS: &str = "tenants";
const FILES: &str = "files";
const STAGING: &str = "staging";

/// A validated object key (or a key prefix of whole segments, for [`crate::BlobStore::list`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

/// A key that is not a valid storage key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid storage key {key:?}: {reason}")]
pub struct InvalidKey {
    pub key: String,
    pub reason: &'static str,
}

/// What a key under `tenants/` is, as far as the layout tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// `tenants/{tenant}/files/{yyyy}/{mm}/{file_id}_{sha256}`
    File {
        tenant_id: TenantId,
        file_id: Uuid,
        sha256: String,
    },
    /// `tenants/{tenant}/staging/{upload}`
    Staging { tenant_id: TenantId, upload: Uuid },
}

impl BlobKey {
    /// Checks a key read from the database or a listing: non-empty `/`-separated segments
    /// of `A-Z a-z 0-9 . _ -`, no `.` or `..` segment, at most 1024 bytes.
    pub fn parse(key: &str) -> Result<Self, InvalidKey> {
        let invalid = |reason| InvalidKey {
            key: key.to_owned(),
            reason,
        };
        if key.is_empty() || key.len() > 1024 {
            return Err(invalid("must be 1 to 1024 bytes long"));
        }
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(invalid("empty, `.` or `..` segment"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(invalid(
                    "only A-Z, a-z, 0-9, `.`, `_`, `-` and `/` are allowed",
                ));
            }
        }
        Ok(Self(key.to_owned()))
    }

    /// Where the content of file `file_id` (created at `created_at`) is stored.
    /// `sha256` is the lowercase hex digest of the content ([`crate::PutOutcome::sha256`]).
    pub fn file(
        tenant_id: TenantId,
        file_id: Uuid,
        sha256: &str,
        created_at: DateTime<Utc>,
    ) -> Result<Self, InvalidKey> {
        if !is_sha256_hex(sha256) {
            return Err(InvalidKey {
                key: sha256.to_owned(),
                reason: "a SHA-256 must be 64 lowercase hex digits",
            });
        }
        Ok(Self(format!(
            "{TENANTS}/{tenant}/{FILES}/{yyyy:04}/{mm:02}/{file_id}_{sha256}",
            tenant = tenant_id.as_uuid().simple(),
            file_id = file_id.simple(),
            yyyy = created_at.year(),
            mm = created_at.month(),
        )))
    }

    /// A fresh key for an upload in progress of `tenant_id`.
    pub fn staging(tenant_id: TenantId) -> Self {
        Self(format!(
            "{TENANTS}/{tenant}/{STAGING}/{upload}",
            tenant = tenant_id.as_uuid().simple(),
            upload = Uuid::now_v7().simple()
        ))
    }

    /// Prefix of everything stored for all tenants (the sweep lists it).
    pub fn all_tenants_prefix() -> Self {
        Self(TENANTS.to_owned())
    }

    /// Prefix of everything stored for `tenant_id`.
    pub fn tenant_prefix(tenant_id: TenantId) -> Self {
        Self(format!("{TENANTS}/{}", tenant_id.as_uuid().simple()))
    }

    /// Prefix of the stored files of `tenant_id`.
    pub fn files_prefix(tenant_id: TenantId) -> Self {
        Self(format!(
            "{TENANTS}/{}/{FILES}",
            tenant_id.as_uuid().simple()
        ))
    }

    /// Prefix of the uploads in progress of `tenant_id`.
    pub fn staging_prefix(tenant_id: TenantId) -> Self {
        Self(format!(
            "{TENANTS}/{}/{STAGING}",
            tenant_id.as_uuid().simple()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant this key belongs to, when it follows the layout.
    pub fn tenant_id(&self) -> Option<TenantId> {
        let mut segments = self.0.split('/');
        (segments.next()? == TENANTS)
            .then(|| {
                segments
                    .next()?
                    .parse::<Uuid>()
                    .ok()
                    .map(TenantId::from_uuid)
            })
            .flatten()
    }

    /// Classifies a key of the layout (for the orphan sweep); `None` for anything else.
    pub fn kind(&self) -> Option<KeyKind> {
        let segments: Vec<&str> = self.0.split('/').collect();
        match segments.as_slice() {
            [TENANTS, tenant, FILES, yyyy, mm, name]
                if yyyy.len() == 4 && mm.len() == 2 && is_digits(yyyy) && is_digits(mm) =>
            {
                let (file_id, sha256) = name.split_once('_')?;
                is_sha256_hex(sha256).then_some(())?;
                Some(KeyKind::File {
                    tenant_id: TenantId::from_uuid(tenant.parse().ok()?),
                    file_id: file_id.parse().ok()?,
                    sha256: sha256.to_owned(),
                })
            }
            [TENANTS, tenant, STAGING, upload] => Some(KeyKind::Staging {
                tenant_id: TenantId::from_uuid(tenant.parse().ok()?),
                upload: upload.parse().ok()?,
            }),
            _ => None,
        }
    }

    pub(crate) fn to_path(&self) -> object_store::path::Path {
        // Validated segments contain nothing `Path` would encode or reject.
        object_store::path::Path::from(self.0.as_str())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({:?})", self.0)
    }
}

impl AsRef<str> for BlobKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SHA: &str = "6b0698a2c35ab08f3a2d6d94615eb501ecf3f404733530be0ea94e0d3a31c78b";

    #[test]
    fn file_keys_follow_the_layout_and_classify_back() {
        let tenant = TenantId::new();
        let file_id = Uuid::now_v7();
        let at = Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap();
        let key = BlobKey::file(tenant, file_id, SHA, at).unwrap();
        assert_eq!(
            key.as_str(),
            format!(
                "tenants/{}/files/2026/03/{}_{SHA}",
                tenant.as_uuid().simple(),
                file_id.simple()
            )
        );
        assert_eq!(key.as_str().len(), 152);
        assert_eq!(BlobKey::parse(key.as_str()), Ok(key.clone()));
        assert_eq!(key.tenant_id(), Some(tenant));
        assert_eq!(
            key.kind(),
            Some(KeyKind::File {
                tenant_id: tenant,
                file_id,
                sha256: SHA.to_owned()
            })
        );
        assert!(
            key.as_str()
                .starts_with(BlobKey::files_prefix(tenant).as_str())
        );
        assert!(BlobKey::file(tenant, file_id, &SHA.to_uppercase(), at).is_err());
        assert!(BlobKey::file(tenant, file_id, &SHA[1..], at).is_err());
    }

    #[test]
    fn staging_keys_are_fresh_and_classify_back() {
        let tenant = TenantId::new();
        let (a, b) = (BlobKey::staging(tenant), BlobKey::staging(tenant));
        assert_ne!(a, b);
        assert!(
            matches!(a.kind(), Some(KeyKind::Staging { tenant_id, .. }) if tenant_id == tenant)
        );
        assert!(
            a.as_str()
                .starts_with(BlobKey::staging_prefix(tenant).as_str())
        );
    }

    #[test]
    fn parse_refuses_what_could_escape_or_confuse() {
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "./a", "a/b#1", "a b", "a\\b", "é", "a?b",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BlobKey::parse(&"a".repeat(1025)).is_err());
        assert_eq!(BlobKey::parse("other/thing").unwrap().kind(), None);
        assert_eq!(
            BlobKey::parse("tenants/x/files/a/b/c").unwrap().kind(),
            None
        );
    }
}
