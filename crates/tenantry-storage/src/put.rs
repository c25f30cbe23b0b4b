//! Streaming uploads: the body goes to the store chunk by chunk while SHA-256 and MD5 are
//! computed, and never sits in memory as a whole.
//!
//! Bodies up to one part ([`PART_SIZE`]) are stored with one `PUT`. Larger ones become a
//! multipart upload whose parts are sent while the body is still arriving, at most
//! [`MAX_PARTS_IN_FLIGHT`] at a time: reading the body waits for a part to finish, so a
//! fast client cannot fill the server's memory with a slow store. On the local backend
//! both go to a temporary file next to the key that is renamed into place at the end.

use std::{error::Error as StdError, pin::pin};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use md5::Md5;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::{
    BlobKey, BlobStore, PutError, StorageError,
    store::{MAX_PARTS_IN_FLIGHT, PART_SIZE},
};

/// How many leading bytes of an upload are kept for content sniffing ([`crate::sniff`]).
pub const SNIFF_LEN: usize = 8 * 1024;

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub size: u64,
    /// Lowercase hex SHA-256 of the content (64 digits).
    pub sha256: String,
    /// Lowercase hex MD5 of the content (32 digits).
    pub md5: String,
    /// The first bytes (up to [`SNIFF_LEN`]) for magic-number checks.
    pub head: Bytes,
}

/// A multipart upload that is aborted when dropped unfinished (the request was cancelled,
/// e.g. the client went away or a timeout fired), so no parts are left behind.
struct Upload {
    writer: Option<WriteMultipart>,
    key: BlobKey,
}

impl Upload {
    fn writer(&mut self) -> Result<&mut WriteMultipart, StorageError> {
        self.writer
            .as_mut()
            .ok_or(StorageError::Unsupported("upload already finished"))
    }

    async fn abort(mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(error) = writer.abort().await
        {
            // What is left (S3 parts, a local temporary file) is invisible to readers;
            // the bucket's lifecycle rule / `sweep_incomplete_uploads` removes it.
            tracing::warn!(key = %self.key, error = %error, "aborting a multipart upload failed");
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let key = self.key.clone();
            runtime.spawn(async move {
                if let Err(error) = writer.abort().await {
                    tracing::warn!(%key, %error, "aborting a cancelled upload failed");
                }
            });
        }
    }
}

struct Hashes {
    sha256: Sha256,
    md5: Md5,
    head: BytesMut,
    size: u64,
}

impl Hashes {
    fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        md5::Digest::update(&mut self.md5, chunk);
        let room = SNIFF_LEN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    fn finish(self) -> PutOutcome {
        PutOutcome {
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            md5: hex::encode(md5::Digest::finalize(self.md5)),
            head: self.head.freeze(),
        }
    }
}

impl BlobStore {
    /// Streams `body` to `key`, computing its size, SHA-256 and MD5 on the way. More than
    /// `limit` bytes → [`PutError::TooLarge`] as soon as the chunk crossing it arrives; a
    /// failing body → [`PutError::Body`]. Either way, and when the returned future is
    /// dropped, nothing is left under `key` (the object appears only when complete).
    /// Memory held: at most `(MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE` plus one chunk.
    pub async fn put_stream<S, E>(
        &self,
        key: &BlobKey,
        body: S,
        limit: u64,
    ) -> Result<PutOutcome, PutError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        let mut body = pin!(body);
        let mut hashes = Hashes {
            sha256: Sha256::new(),
            md5: <Md5 as md5::Digest>::new(),
            head: BytesMut::new(),
            size: 0,
        };
        // The first part is collected before deciding between one PUT and a multipart upload.
        let mut first = BytesMut::new();
        let mut upload: Option<Upload> = None;
        while let Some(chunk) = body.next().await {
            let failure = match chunk {
                Err(error) => Some(PutError::Body(error.into())),
                Ok(chunk) => {
                    hashes.size += chunk.len() as u64;
                    if hashes.size > limit {
                        Some(PutError::TooLarge { limit })
                    } else {
                        hashes.update(&chunk);
                        self.write(key, &mut first, &mut upload, &chunk).await.err()
                    }
                }
            };
            if let Some(error) = failure {
                if let Some(upload) = upload {
                    upload.abort().await;
                }
                return Err(error);
            }
        }
        match upload {
            None => {
                let path = key.to_path();
                self.store
                    .put(&path, PutPayload::from(first.freeze()))
                    .await
                    .map_err(|source| StorageError::Backend {
                        context: format!("storing {key}"),
                        source,
                    })?;
            }
            Some(mut upload) => {
                let writer = upload
                    .writer
                    .take()
                    .ok_or(StorageError::Unsupported("upload already finished"))?;
                // `finish` aborts the upload itself when completing fails.
                writer
                    .finish()
                    .await
                    .map_err(|source| StorageError::Backend {
                        context: format!("completing the multipart upload of {key}"),
                        source,
                    })?;
            }
        }
        Ok(hashes.finish())
    }

    async fn write(
        &self,
        key: &BlobKey,
        first: &mut BytesMut,
        upload: &mut Option<Upload>,
        chunk: &Bytes,
    ) -> Result<(), PutError> {
        let writer = match upload {
            Some(upload) => upload.writer()?,
            None if first.len() + chunk.len() <= self.part_size => {
                first.extend_from_slice(chunk);
                return Ok(());
            }
            None => {
                let multipart =
                    self.store
                        .put_multipart(&key.to_path())
                        .await
                        .map_err(|source| StorageError::Backend {
                            context: format!("starting a multipart upload of {key}"),
                            source,
                        })?;
                let writer = WriteMultipart::new_with_chunk_size(multipart, self.part_size);
                let started = upload.insert(Upload {
                    writer: Some(writer),
                    key: key.clone(),
                });
                let writer = started.writer()?;
                writer.put(std::mem::take(first).freeze());
                writer
            }
        };
        // Back-pressure: the body is not read further while the parts in flight are full.
        writer
            .wait_for_capacity(MAX_PARTS_IN_FLIGHT)
            .await
            .map_err(|source| StorageError::Backend {
                context: format!("uploading a part of {key}"),
                source,
            })?;
        // Copied (not `put`): the chunk may be a view into a larger buffer we must not pin.
        writer.write(chunk);
        Ok(())
    }
}

// The sniffing head is always within the first part.
const _: () = assert!(PART_SIZE >= SNIFF_LEN);
