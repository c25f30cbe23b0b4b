//! `/api/v1/users/me/mfa/totp*`: two-step verification with an authenticator app.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_core::{Password, Problem};
use tenantry_http::{Caller, Client, Gate, Json, redacted_debug};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Authenticated, Identity};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Identity: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(enroll, disable))
        .routes(routes!(confirm))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollResponse {
    /// Base32 secret for manual entry.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    pub secret: String,
    /// `otpauth://totp/…` for QR codes.
    pub otpauth_url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The account's current password: a session alone may not change how the account
    /// signs in.
    pub current_password: String,
}

/// Start enrolment: a new secret to add to an authenticator app. Needs the current password
/// (wrong → 422 on `current_password`, counted as a failed login and throttled like one).
/// Nothing changes for login until the enrolment is confirmed with a code. Accounts without
/// a password (guests, accounts of an external identity provider, whose provider handles
/// their second factor) → 409.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/totp", tag = "identity",
    security(("bearer" = [])), request_body = EnrollRequest,
    responses((status = 201, body = TotpEnrollResponse),
        (status = 401, body = Problem),
        (status = 409, description = "Already enabled, or the account has no password", body = Problem),
        (status = 422, description = "Wrong current password", body = Problem),
        (status = 429, description = "Too many wrong passwords or codes", body = Problem)))]
pub async fn enroll(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<EnrollRequest>,
) -> Result<impl IntoResponse, Problem> {
    check_password_length(&body.current_password)?;
    let enrollment = identity
        .totp_enroll(&caller.user, &body.current_password, &client)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollResponse {
            secret: enrollment.secret,
            otpauth_url: enrollment.otpauth_url,
        }),
    ))
}

/// A current password longer than any password we accept is wrong without hashing it (the
/// answer of a wrong password, as for a password change).
fn check_password_length(current_password: &str) -> Result<(), Problem> {
    if current_password.len() > Password::MAX_BYTES {
        return Err(Problem::validation_failed()
            .with_field("current_password", "is not your current password"));
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A current 6-digit code from the authenticator app.
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Single-use codes that stand in for the app; shown only now.
    pub recovery_codes: Vec<String>,
}

/// Confirm enrolment with a current code. From now on login needs `mfa_code`. Answers the
/// recovery codes, which are never shown again.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/totp/confirm", tag = "identity",
    security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodesResponse),
        (status = 401, body = Problem),
        (status = 409, description = "No enrolment pending, or already enabled", body = Problem),
        (status = 422, description = "Wrong code", body = Problem)))]
pub async fn confirm(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<CodeRequest>,
) -> Result<Json<RecoveryCodesResponse>, Problem> {
    let recovery_codes = identity
        .totp_confirm(&caller.user, &body.code, &client)
        .await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// The account's current password.
    pub current_password: String,
    /// A current 6-digit code or an unused recovery code.
    #[schema(example = "123456")]
    pub code: String,
}

/// Turn two-step verification off. Needs the current password and a current code or a
/// recovery code; wrong ones count as failed logins and are throttled like them.
#[utoipa::path(delete, path = "/api/v1/users/me/mfa/totp", tag = "identity",
    security(("bearer" = [])), request_body = DisableRequest,
    responses((status = 204),
        (status = 401, body = Problem),
        (status = 409, description = "Not enabled, or the account has no password", body = Problem),
        (status = 422, description = "Wrong current password or code", body = Problem),
        (status = 429, description = "Too many wrong passwords or codes", body = Problem)))]
pub async fn disable(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<DisableRequest>,
) -> Result<StatusCode, Problem> {
    check_password_length(&body.current_password)?;
    identity
        .totp_disable(&caller.user, &body.current_password, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

redacted_debug!(CodeRequest, DisableRequest, EnrollRequest);
