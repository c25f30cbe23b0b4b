//! [`BlobStore`]: one interface over the local file system and S3-compatible services
//! (`object_store`), with the operations the files context needs.

use std::{fmt, ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    aws::{AmazonS3, AmazonS3Builder},
    local::LocalFileSystem,
    signer::{Method, SignedUrlOptions, Signer},
};
use secrecy::ExposeSecret;
use url::Url;

use crate::{
    BlobKey, StorageError,
    config::{S3Target, StorageConfig},
    disposition::attachment,
};

/// Parts of a multipart upload are this large (S3's minimum is 5 MiB, except the last).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// At most this many parts of one upload are sent at once; with the part being filled, one
/// upload holds at most `(MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes of body in memory.
pub const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Where objects live.
#[derive(Clone)]
pub struct BlobStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    backend: Backend,
    pub(crate) part_size: usize,
    /// The directory of the local backend.
    pub(crate) local_root: Option<std::path::PathBuf>,
}

#[derive(Clone)]
enum Backend {
    Local,
    S3(Arc<AmazonS3>),
    /// A store given by the caller ([`BlobStore::from_object_store`]); no presigning.
    Other,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `AmazonS3`'s Display names the bucket, never the credentials.
        f.debug_struct("BlobStore")
            .field("store", &self.store.to_string())
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// Which kind of backend a [`BlobStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A local directory: downloads are served by the server behind a [`crate::UrlSigner`] URL.
    Local,
    /// S3-compatible: downloads are presigned URLs of the service ([`BlobStore::presigned_get`]).
    S3,
    Other,
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: BlobKey,
    pub size: u64,
    /// Time of the last write (for S3 a copy counts as a write, so a promoted object is as
    /// old as its promotion). The orphan sweep's grace period is measured against it.
    pub last_modified: DateTime<Utc>,
    pub e_tag: Option<String>,
}

/// A byte range to read, with HTTP `Range` semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` is `Bounded(a..b + 1)`; an end past the object is clamped.
    Bounded(Range<u64>),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last `n` bytes (the whole object when it is shorter).
    Last(u64),
}

/// An object being read.
pub struct BlobRead {
    pub meta: BlobMeta,
    /// The bytes `body` yields: `0..size` without a range (for `Content-Range`).
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Response headers a presigned download URL makes the service send.
#[derive(Debug, Clone)]
pub struct DownloadHeaders<'a> {
    /// `Content-Type` of the response (the stored MIME type of the document).
    pub content_type: &'a str,
    /// Offered file name of `Content-Disposition: attachment`.
    pub filename: Option<&'a str>,
}

impl BlobStore {
    /// Opens the configured backend. Local: creates the directory. S3: checks nothing
    /// over the network (use [`BlobStore::check`] for readiness).
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        match config {
            StorageConfig::Local { root } => Self::local(root),
            StorageConfig::S3(target) => Self::s3(target),
        }
    }

    /// A local directory, created when missing. Writes are atomic (temporary file, fsync,
    /// rename).
    ///
    /// Empty directories are left in place (a tenant's `staging/`, `files/{yyyy}/{mm}/`: a
    /// handful per tenant and month). `object_store`'s automatic cleanup (remove a directory
    /// when a delete empties it) races with concurrent writers in the same directory: a
    /// promotion renames `staging/a` out, a concurrent discard deletes `staging/b` and removes
    /// the now empty `staging/`, and the rename's fsync of its source directory then fails
    /// with "not found" although the rename happened — the upload answered 500 and left its
    /// promoted object to the sweep (seen in the crash test's concurrent uploads).
    pub fn local(root: impl AsRef<std::path::Path>) -> Result<Self, StorageError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|source| StorageError::Io {
            context: format!("creating the storage directory {}", root.display()),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(root)
            .map_err(|source| StorageError::Backend {
                context: format!("opening the storage directory {}", root.display()),
                source,
            })?
            .with_automatic_cleanup(false)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            backend: Backend::Local,
            part_size: PART_SIZE,
            local_root: Some(root.to_path_buf()),
        })
    }

    /// A bucket of an S3-compatible service.
    pub fn s3(target: &S3Target) -> Result<Self, StorageError> {
        // reqwest is built with `rustls-no-provider`, like the rest of the workspace: make
        // sure a process-wide provider exists (a no-op when the binary installed one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = match (&target.access_key_id, &target.secret_access_key) {
            (Some(id), Some(secret)) => AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose_secret()),
            _ => AmazonS3Builder::from_env(),
        };
        builder = builder
            .with_bucket_name(&target.bucket)
            .with_region(&target.region)
            .with_virtual_hosted_style_request(!target.path_style)
            .with_allow_http(target.allow_http);
        if let Some(endpoint) = &target.endpoint {
            builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
        }
        let s3 = builder.build().map_err(|source| StorageError::Backend {
            context: format!("configuring S3 bucket {}", target.bucket),
            source,
        })?;
        let s3 = Arc::new(s3);
        Ok(Self {
            store: s3.clone(),
            backend: Backend::S3(s3),
            part_size: PART_SIZE,
            local_root: None,
        })
    }

    /// Wraps any `object_store` implementation (tests, instrumentation). Such a store
    /// cannot presign URLs.
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            backend: Backend::Other,
            part_size: PART_SIZE,
            local_root: None,
        }
    }

    /// The underlying store, e.g. to wrap it ([`BlobStore::from_object_store`]).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Local => BackendKind::Local,
            Backend::S3(_) => BackendKind::S3,
            Backend::Other => BackendKind::Other,
        }
    }

    /// Readiness: the store answers a listing (the bucket exists and the credentials work).
    pub async fn check(&self) -> Result<(), StorageError> {
        let prefix = BlobKey::all_tenants_prefix();
        self.store
            .list_with_delimiter(Some(&prefix.to_path()))
            .await
            .map(drop)
            .map_err(|source| StorageError::Backend {
                context: format!("listing {prefix} (storage readiness check)"),
                source,
            })
    }

    /// Size and age of an object; [`StorageError::NotFound`] when there is none.
    pub async fn head(&self, key: &BlobKey) -> Result<BlobMeta, StorageError> {
        let meta = self
            .store
            .head(&key.to_path())
            .await
            .map_err(StorageError::backend(
                key.as_str(),
                format!("reading metadata of {key}"),
            ))?;
        Ok(blob_meta(key.clone(), meta))
    }

    /// Deletes an object. Deleting a missing object succeeds (the sweep and retries may
    /// race with each other).
    pub async fn delete(&self, key: &BlobKey) -> Result<(), StorageError> {
        match self.store.delete(&key.to_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StorageError::Backend {
                context: format!("deleting {key}"),
                source,
            }),
        }
    }

    /// Every object under `prefix` (whole segments: `tenants/a` does not match `tenants/ab`),
    /// in no particular order. Keys outside the layout's character set are skipped with a
    /// warning, so a sweep never touches foreign objects.
    pub fn list(&self, prefix: &BlobKey) -> BoxStream<'static, Result<BlobMeta, StorageError>> {
        let context = format!("listing {prefix}");
        self.store
            .list(Some(&prefix.to_path()))
            .map_err(move |source| StorageError::Backend {
                context: context.clone(),
                source,
            })
            .try_filter_map(|meta| async move {
                Ok(match BlobKey::parse(meta.location.as_ref()) {
                    Ok(key) => Some(blob_meta(key, meta)),
                    Err(error) => {
                        tracing::warn!(%error, "skipping an object outside the storage layout");
                        None
                    }
                })
            })
            .boxed()
    }

    /// Moves a finished upload to its final key: a rename on the local backend (atomic),
    /// copy then delete on S3 (the object exists under `to` before `from` disappears, so a
    /// crash in between leaves an extra staging object for the sweep, never a missing one).
    /// An existing object under `to` is replaced.
    pub async fn promote(&self, from: &BlobKey, to: &BlobKey) -> Result<(), StorageError> {
        self.store
            .rename(&from.to_path(), &to.to_path())
            .await
            .map_err(StorageError::backend(
                from.as_str(),
                format!("moving {from} to {to}"),
            ))
    }

    /// Reads an object, or the part of it `range` selects, as a stream of chunks.
    pub async fn get_range(
        &self,
        key: &BlobKey,
        range: Option<ByteRange>,
    ) -> Result<BlobRead, StorageError> {
        let path = key.to_path();
        let resolved = match range {
            None => None,
            Some(range) => {
                // Objects are immutable in this layout, so the size cannot change between
                // this head and the read; resolving here gives HTTP semantics on every backend.
                let size = self.head(key).await?.size;
                Some(resolve_range(&range, size).ok_or_else(|| {
                    StorageError::RangeNotSatisfiable {
                        key: key.to_string(),
                        size,
                    }
                })?)
            }
        };
        let options = GetOptions {
            range: resolved.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&path, options)
            .await
            .map_err(StorageError::backend(
                key.as_str(),
                format!("reading {key}"),
            ))?;
        let meta = blob_meta(key.clone(), result.meta.clone());
        let range = result.range.clone();
        let context = format!("reading {key}");
        let body = result
            .into_stream()
            .map_err(move |source| StorageError::Backend {
                context: context.clone(),
                source,
            })
            .boxed();
        Ok(BlobRead { meta, range, body })
    }

    /// A presigned `GET` URL of an S3 object, valid for `expires_in` (at most 7 days), that
    /// makes the service answer with `Content-Disposition: attachment` and `content_type`
    /// (S3's `response-content-*` parameters, part of the signature so they cannot be
    /// changed). S3 cannot be told to send `X-Content-Type-Options: nosniff`; the
    /// attachment disposition is what keeps browsers from rendering the content.
    /// [`StorageError::Unsupported`] on the local backend: use [`crate::UrlSigner`].
    pub async fn presigned_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        headers: &DownloadHeaders<'_>,
    ) -> Result<Url, StorageError> {
        let Backend::S3(s3) = &self.backend else {
            return Err(StorageError::Unsupported(
                "presigned URLs need the S3 backend; sign a server URL with UrlSigner",
            ));
        };
        let options = SignedUrlOptions::default().with_query([
            (
                "response-content-disposition",
                attachment(headers.filename.unwrap_or("download")),
            ),
            ("response-content-type", headers.content_type.to_owned()),
        ]);
        s3.signed_url_opts(Method::GET, &key.to_path(), expires_in, &options)
            .await
            .map_err(|source| StorageError::Backend {
                context: format!("presigning a download of {key}"),
                source,
            })
    }
}

fn blob_meta(key: BlobKey, meta: ObjectMeta) -> BlobMeta {
    BlobMeta {
        key,
        size: meta.size,
        last_modified: meta.last_modified,
        e_tag: meta.e_tag,
    }
}

/// The bytes of an object of `size` that `range` selects, or `None` when none are (416).
pub fn resolve_range(range: &ByteRange, size: u64) -> Option<Range<u64>> {
    let resolved = match *range {
        ByteRange::Bounded(ref r) => r.start..r.end.min(size),
        ByteRange::From(start) => start..size,
        ByteRange::Last(n) => size.saturating_sub(n)..size,
    };
    (resolved.start < resolved.end).then_some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_http() {
        let r = |range, size| resolve_range(&range, size);
        assert_eq!(r(ByteRange::Bounded(0..10), 100), Some(0..10));
        assert_eq!(r(ByteRange::Bounded(90..200), 100), Some(90..100));
        assert_eq!(r(ByteRange::Bounded(100..200), 100), None);
        assert_eq!(r(ByteRange::From(99), 100), Some(99..100));
        assert_eq!(r(ByteRange::From(100), 100), None);
        assert_eq!(r(ByteRange::Last(10), 100), Some(90..100));
        assert_eq!(r(ByteRange::Last(1000), 100), Some(0..100));
        assert_eq!(r(ByteRange::Last(0), 100), None);
        assert_eq!(r(ByteRange::From(0), 0), None);
    }
}
