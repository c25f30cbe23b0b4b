use tenantry_core::{Permission, Problem};
use tenantry_db::DbError;
use tenantry_storage::{SignatureError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("not found")]
    NotFound,
    #[error("requires permission {0}")]
    Forbidden(Permission),
    /// The upload crossed the size limit.
    #[error("the upload exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The upload does not fit the tenant's storage quota.
    #[error("the tenant's storage quota of {quota} bytes would be exceeded")]
    QuotaExceeded { quota: u64 },
    /// A request field that fails a rule.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The multipart body has no `file` part, or it is not a well-formed upload.
    #[error("malformed upload: {0}")]
    Malformed(String),
    /// Deleting a file that documents still reference.
    #[error("the file is referenced by {0} documents")]
    FileInUse(i64),
    /// A download URL whose signature is wrong or whose time has passed.
    #[error("invalid download signature")]
    Signature(#[from] SignatureError),
    #[error("the requested range is not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<FilesError> for Problem {
    fn from(error: FilesError) -> Self {
        match error {
            FilesError::NotFound => Problem::not_found(),
            FilesError::Forbidden(permission) => {
                Problem::forbidden().with_detail(format!("requires permission {permission}"))
            }
            FilesError::TooLarge { limit } => Problem::payload_too_large()
                .with_detail(format!("uploads are limited to {limit} bytes")),
            FilesError::QuotaExceeded { quota } => Problem::quota_exceeded().with_detail(format!(
                "the upload does not fit the tenant's storage quota of {quota} bytes"
            )),
            FilesError::Invalid { field, message } => Problem::validation_failed()
                .with_detail(format!("{field} {message}"))
                .with_field(field, message),
            FilesError::Malformed(detail) => Problem::malformed().with_detail(detail),
            FilesError::FileInUse(count) => Problem::file_in_use().with_detail(format!(
                "{count} documents reference this file; delete them first"
            )),
            FilesError::Signature(_) => Problem::signature_invalid()
                .with_detail("the download link is invalid or has expired"),
            FilesError::RangeNotSatisfiable { size } => Problem::range_not_satisfiable()
                .with_detail(format!("the content has {size} bytes")),
            FilesError::Storage(e) => Problem::internal_error(&anyhow::Error::new(e)),
            FilesError::Db(e) => e.into(),
            FilesError::Internal(e) => Problem::internal_error(&e),
        }
    }
}
