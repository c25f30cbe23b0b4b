//! `/api/v1/users/me/mfa/totp*`: two-step verification with an authenticator app.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use tenantry_core::Problem;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    extract::{Caller, Client, Json},
};

pub fn router() -> OpenApiRouter<AppState> {
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

/// Start enrolment: a new secret to add to an authenticator app. Nothing changes for login
/// until the enrolment is confirmed with a code.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/totp", tag = "identity",
    security(("bearer" = [])),
    responses((status = 201, body = TotpEnrollResponse),
        (status = 401, body = Problem),
        (status = 409, description = "Already enabled, or the account has no password", body = Problem)))]
pub async fn enroll(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
) -> Result<impl IntoResponse, Problem> {
    let enrollment = state.identity.totp_enroll(&caller.user, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrollResponse {
            secret: enrollment.secret,
            otpauth_url: enrollment.otpauth_url,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A current 6-digit code (or, to disable, an unused recovery code).
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
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    Json(body): Json<CodeRequest>,
) -> Result<Json<RecoveryCodesResponse>, Problem> {
    let recovery_codes = state
        .identity
        .totp_confirm(&caller.user, &body.code, &client)
        .await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }))
}

/// Turn two-step verification off (needs a current code or a recovery code).
#[utoipa::path(delete, path = "/api/v1/users/me/mfa/totp", tag = "identity",
    security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 204),
        (status = 401, body = Problem),
        (status = 409, description = "Not enabled", body = Problem),
        (status = 422, description = "Wrong code", body = Problem)))]
pub async fn disable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    Json(body): Json<CodeRequest>,
) -> Result<StatusCode, Problem> {
    state
        .identity
        .totp_disable(&caller.user, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

redacted_debug!(CodeRequest);
