//! `/api/v1/users/me/{password,verification-email,security-events}`: account security.

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Deserialize;
use tenantry_core::{Page, Password, Problem, page::PageParams, problem::Validator};
use tenantry_http::{Caller, Client, Gate, Json, Query, redacted_debug};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Authenticated, Identity, SecurityEvent};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Identity: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(resend_verification))
        .routes(routes!(security_events))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password. The current one is required; every other session ends, and the
/// account's address is told by e-mail.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "identity",
    security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses((status = 204),
        (status = 401, body = Problem),
        (status = 409, description = "The account has no password (guest or external)", body = Problem),
        (status = 422, description = "Wrong current password or unacceptable new one", body = Problem),
        (status = 429, description = "Too many wrong current passwords", body = Problem)))]
pub async fn change_password(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<StatusCode, Problem> {
    let session_id = caller.session_id();
    let mut v = Validator::new();
    let password = v.field("new_password", Password::parse(&body.new_password));
    if let (Some(p), Some(email)) = (&password, caller.user.email.as_deref())
        && p.expose().to_lowercase() == email
    {
        v.error("new_password", "must not be your e-mail address");
    }
    if body.current_password.len() > Password::MAX_BYTES {
        v.error("current_password", "is not your current password");
    }
    v.finish()?;
    let password = password.ok_or_else(Problem::validation_failed)?;
    identity
        .change_password(
            caller.user.id,
            session_id,
            &body.current_password,
            &password,
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// E-mail a new verification link (at most one a minute; nothing is sent when the address is
/// already verified).
#[utoipa::path(post, path = "/api/v1/users/me/verification-email", tag = "identity",
    security(("bearer" = [])),
    responses((status = 202, description = "Accepted"), (status = 401, body = Problem)))]
pub async fn resend_verification(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
) -> Result<StatusCode, Problem> {
    identity
        .resend_verification(caller.user.id, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The caller's security events (failed logins, lockouts, password and MFA changes),
/// newest first.
#[utoipa::path(get, path = "/api/v1/users/me/security-events", tag = "identity",
    security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<SecurityEvent>), (status = 401, body = Problem)))]
pub async fn security_events(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<SecurityEvent>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(identity.security_events(caller.user.id, &page).await?))
}

redacted_debug!(ChangePasswordRequest);
