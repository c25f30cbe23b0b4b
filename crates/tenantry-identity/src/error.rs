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
    /// A mailed link token that is unknown, used or expired.
    #[error("invalid link")]
    LinkInvalid,
    /// Password correct, second factor missing.
    #[error("multi-factor code required")]
    MfaRequired,
    #[error("invalid multi-factor code")]
    MfaInvalid,
    /// A TOTP or recovery code given to an MFA management call is wrong.
    #[error("invalid code")]
    InvalidCode,
    #[error("multi-factor authentication is already enabled")]
    MfaAlreadyEnabled,
    #[error("multi-factor authentication is not enabled")]
    MfaNotEnabled,
    #[error("no multi-factor enrolment is pending")]
    MfaNotPending,
    /// The current password given to a password change is wrong.
    #[error("wrong current password")]
    WrongPassword,
    /// Guests and accounts of external identity providers have no password here.
    #[error("the account has no password")]
    NoPassword,
    #[error("too many failed attempts")]
    Throttled { retry_after_secs: u64 },
    #[error("session not found")]
    SessionNotFound,
    #[error("user not found")]
    UserNotFound,
    /// A platform administrator disabling their own account.
    #[error("administrators cannot disable their own account")]
    CannotDisableSelf,
    /// Disabling the only active platform administrator.
    #[error("the last active platform administrator cannot be disabled")]
    LastPlatformAdmin,
    #[error("the account is already disabled")]
    AlreadyDisabled,
    #[error("the account is already active")]
    AlreadyActive,
    /// Too many password hashes are waiting; retry shortly.
    #[error("busy")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::password::HashError> for IdentityError {
    fn from(error: crate::password::HashError) -> Self {
        match error {
            crate::password::HashError::Busy => Self::Busy,
            crate::password::HashError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<IdentityError> for Problem {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::EmailTaken => Problem::already_exists()
                .with_detail("an account with this e-mail address already exists")
                .with_field("email", "is already registered"),
            IdentityError::InvalidCredentials => Problem::invalid_credentials(),
            IdentityError::InvalidToken => Problem::invalid_token(),
            IdentityError::LinkInvalid => Problem::link_invalid(),
            IdentityError::MfaRequired => Problem::mfa_required()
                .with_detail("this account uses two-step verification: send mfa_code"),
            IdentityError::MfaInvalid => Problem::mfa_invalid(),
            IdentityError::InvalidCode => {
                Problem::validation_failed().with_field("code", "is not a valid current code")
            }
            IdentityError::MfaAlreadyEnabled => Problem::conflict()
                .with_detail("two-step verification is already enabled; disable it first"),
            IdentityError::MfaNotEnabled => {
                Problem::conflict().with_detail("two-step verification is not enabled")
            }
            IdentityError::MfaNotPending => Problem::conflict()
                .with_detail("start enrolment with POST /api/v1/users/me/mfa/totp first"),
            IdentityError::WrongPassword => Problem::validation_failed()
                .with_field("current_password", "is not your current password"),
            IdentityError::NoPassword => Problem::conflict().with_detail(
                "this account signs in without a password (guest or external provider)",
            ),
            IdentityError::Throttled { retry_after_secs } => Problem::rate_limited()
                .with_detail("too many failed attempts; try again later")
                .with_retry_after(retry_after_secs),
            IdentityError::SessionNotFound | IdentityError::UserNotFound => Problem::not_found(),
            IdentityError::CannotDisableSelf => Problem::conflict()
                .with_detail("you cannot disable your own account; ask another administrator"),
            IdentityError::LastPlatformAdmin => Problem::conflict().with_detail(
                "this is the last active platform administrator; create another one first",
            ),
            IdentityError::AlreadyDisabled => {
                Problem::conflict().with_detail("the account is already disabled")
            }
            IdentityError::AlreadyActive => {
                Problem::conflict().with_detail("the account is already active")
            }
            IdentityError::Busy => Problem::not_ready()
                .with_detail("too many sign-ins at once; retry in a moment")
                .with_retry_after(1),
            IdentityError::Db(e) => e.into(),
            IdentityError::Internal(e) => Problem::internal_error(&e),
        }
    }
}
