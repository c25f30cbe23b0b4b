//! Blob storage of the files context: one [`BlobStore`] over a local directory or an
//! S3-compatible service (the `object_store` crate), chosen by configuration
//! ([`StorageConfig`]).
//!
//! * [`BlobStore::put_stream`] streams an upload to a key while computing its size,
//!   SHA-256 and MD5, refuses it past a byte limit, and never leaves a partial object.
//! * [`BlobKey`] is the key layout (`tenants/{tenant}/files/{yyyy}/{mm}/{file_id}_{sha256}`,
//!   `tenants/{tenant}/staging/{uuid}`): identifiers and hashes only, never user file names.
//! * Downloads: [`BlobStore::get_range`] streams an object or a byte range;
//!   [`BlobStore::presigned_get`] (S3) and [`UrlSigner`] (local, served by the server) give
//!   expiring URLs.
//! * [`sniff::check`] compares a declared MIME type with the content's first bytes.
//!
//! # Write order (crash consistency)
//!
//! The SHA-256 that names a file is only known once the whole body has been read, and
//! identical content in a tenant must end up as one file. So an upload is written in three
//! steps, each of which can be interrupted by a crash without harm:
//!
//! 1. **Stage.** [`BlobStore::put_stream`] to [`BlobKey::staging`]. No row refers to it. A
//!    crash leaves a staging object (or, mid-upload, an incomplete multipart upload / a local
//!    temporary file, which readers never see).
//! 2. **Deduplicate or promote.** If the tenant already has a file with this SHA-256, the
//!    staging object is deleted and the new document points at that file. Otherwise
//!    [`BlobStore::promote`] moves it to [`BlobKey::file`] of a new file id (rename on local,
//!    copy then delete on S3). A crash leaves an object under `files/` without a file row.
//! 3. **Commit.** One database transaction inserts the file row (with its key), the document,
//!    the usage counters and the event. Only now does anything point at the object, and the
//!    object already exists: no row ever points at a missing object.
//!
//! Deletion runs the other way: the transaction that removes the last reference commits
//! first, then the object is deleted (a failure there leaves an orphan, never a dangling row).
//!
//! **Sweep.** Orphans are what a crash or failed delete leaves: [`BlobStore::list`] under
//! [`BlobKey::all_tenants_prefix`] with [`BlobMeta::last_modified`]; a staging object older
//! than the grace period, or a file object ([`BlobKey::kind`]) whose file id has no row and
//! that is older than the grace period, is deleted. The grace period must exceed the longest
//! time between step 2 and step 3 (an upload in flight), e.g. one hour. Two concurrent uploads
//! of the same new content in one tenant both promote; the second commit hits the unique
//! (tenant, sha256) constraint, points its document at the first file and deletes its own
//! object (or leaves it to the sweep). Incomplete uploads: S3 buckets need a lifecycle rule
//! `AbortIncompleteMultipartUpload` (e.g. 1 day); on the local backend
//! [`BlobStore::sweep_incomplete_uploads`] removes temporary files of dead uploads.

mod config;
mod disposition;
mod error;
mod key;
mod put;
mod signer;
pub mod sniff;
mod store;
mod sweep;

pub use config::{ConfigError, DEFAULT_REGION, S3Config, S3Target, StorageConfig};
pub use disposition::attachment;
pub use error::{PutError, StorageError};
pub use key::{BlobKey, InvalidKey, KeyKind};
pub use put::{PutOutcome, SNIFF_LEN};
pub use signer::{MIN_KEY_LEN, SignatureError, UrlSigner, WeakKey};
pub use store::{
    BackendKind, BlobMeta, BlobRead, BlobStore, ByteRange, DownloadHeaders, MAX_PARTS_IN_FLIGHT,
    PART_SIZE, resolve_range,
};
