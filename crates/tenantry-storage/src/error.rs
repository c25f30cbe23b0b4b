//! Errors of the blob store and how they reach clients.

use tenantry_core::Problem;

/// A failed storage operation. Messages say what was being done ("reading object …"), the
/// backend's error is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {key} not found")]
    NotFound { key: String },
    /// The requested byte range starts at or after the end of the object (HTTP 416).
    #[error("range not satisfiable for object {key} of {size} bytes")]
    RangeNotSatisfiable { key: String, size: u64 },
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: object_store::Error,
    },
    /// The backend cannot do this (e.g. presigned URLs on the local backend).
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Maps an `object_store` error, keeping "not found" distinguishable.
    pub(crate) fn backend(key: &str, context: String) -> impl FnOnce(object_store::Error) -> Self {
        move |source| match source {
            object_store::Error::NotFound { .. } => Self::NotFound {
                key: key.to_owned(),
            },
            source => Self::Backend { context, source },
        }
    }
}

/// Why a streaming upload did not store an object. In every case nothing is left under the
/// key (a partial multipart upload is aborted, a local staging file removed).
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// More than `limit` bytes arrived; the upload stopped at the first byte past it.
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The body stream failed (client disconnected, malformed multipart, …).
    #[error("reading the upload body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<StorageError> for Problem {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound { .. } => Problem::not_found(),
            StorageError::RangeNotSatisfiable { .. } => Problem::range_not_satisfiable(),
            error @ (StorageError::Backend { .. }
            | StorageError::Unsupported(_)
            | StorageError::Io { .. }) => Problem::internal_error(&anyhow::Error::new(error)),
        }
    }
}

impl From<PutError> for Problem {
    fn from(error: PutError) -> Self {
        match error {
            PutError::TooLarge { limit } => Problem::payload_too_large()
                .with_detail(format!("The file is larger than {limit} bytes.")),
            PutError::Body(_) => {
                Problem::malformed().with_detail("The upload body could not be read.")
            }
            PutError::Storage(error) => error.into(),
        }
    }
}
