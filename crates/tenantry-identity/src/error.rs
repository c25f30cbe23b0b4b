use tenantry_core::Problem;
use tenantry_db::DbError;

/// Everything identity operations can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the e-mail address is already registered")]
    EmailTaken,
    /// Unknown e-mail, wrong password, disabled account: one answer, so none can be probed.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Missing, malformed, expired, revoked or reused token.
    #[error("invalid token")]
    InvalidToken,
    #[error("session not found")]
    SessionNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<IdentityError> for Problem {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::EmailTaken => Problem::already_exists()
                .with_detail("an account with this e-mail address already exists")
                .with_field("email", "is already registered"),
            IdentityError::InvalidCredentials => Problem::invalid_credentials(),
            IdentityError::InvalidToken => Problem::invalid_token(),
            IdentityError::SessionNotFound | IdentityError::UserNotFound => Problem::not_found(),
            IdentityError::Db(e) => e.into(),
            IdentityError::Internal(e) => Problem::internal_error(&e),
        }
    }
}
