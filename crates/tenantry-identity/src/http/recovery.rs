//! `/api/v1/auth/{forgot-password,reset-password,verify-email}`: flows started from a
//! mailed link.

use std::sync::Arc;

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Deserialize;
use tenantry_core::{Password, Problem, problem::Validator};
use tenantry_http::{Bucket, Client, Json, Limits, RouterState, redacted_debug};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::Identity;

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: RouterState,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(verify_email))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
}

/// Ask for a password-reset link. Always 202: whether the address has an account is not
/// revealed. The link (valid 1 h, single use) is e-mailed to accounts that sign in with a
/// password.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "identity",
    request_body = ForgotPasswordRequest,
    responses((status = 202, description = "Accepted (whether or not the address is known)"),
        (status = 429, body = Problem)))]
pub async fn forgot_password(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<ForgotPasswordRequest>,
) -> Result<StatusCode, Problem> {
    limits.check(Bucket::PasswordReset, &client)?;
    identity.forgot_password(&body.email, client);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the e-mailed link.
    pub token: String,
    pub new_password: String,
}

/// Set a new password with a reset token. Every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "identity",
    request_body = ResetPasswordRequest,
    responses((status = 204, description = "Password changed; all sessions ended"),
        (status = 400, description = "Unknown, used or expired token (`link_invalid`)", body = Problem),
        (status = 422, description = "The new password is not acceptable", body = Problem),
        (status = 429, body = Problem)))]
pub async fn reset_password(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<StatusCode, Problem> {
    limits.check(Bucket::PasswordReset, &client)?;
    let mut v = Validator::new();
    let password = v.field("new_password", Password::parse(&body.new_password));
    v.finish()?;
    let password = password.ok_or_else(Problem::validation_failed)?;
    identity
        .reset_password(&body.token, &password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the e-mailed link.
    pub token: String,
}

/// Confirm an e-mail address with the token sent at registration (or re-sent with
/// `POST /api/v1/users/me/verification-email`).
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "identity",
    request_body = VerifyEmailRequest,
    responses((status = 204, description = "Address verified"),
        (status = 400, description = "Unknown, used or expired token (`link_invalid`)", body = Problem),
        (status = 429, body = Problem)))]
pub async fn verify_email(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<VerifyEmailRequest>,
) -> Result<StatusCode, Problem> {
    limits.check(Bucket::Token, &client)?;
    identity.verify_email(&body.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

redacted_debug!(ResetPasswordRequest, VerifyEmailRequest);
