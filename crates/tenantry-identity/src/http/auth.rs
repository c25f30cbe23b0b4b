//! `/api/v1/auth/{refresh,logout,guest}`: tokens and sessions. (Sign-up and login answer
//! the caller's tenants, so tenancy serves them; flows that start from a mailed link are in
//! `recovery`.)

use std::sync::Arc;

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_core::Problem;
use tenantry_http::{Bucket, Caller, Client, Gate, Json, Limits, redacted_debug};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Authenticated, Identity, TokenPair, UserView};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(guest))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

redacted_debug!(RefreshRequest);

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
}

impl From<TokenPair> for TokenResponse {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
        }
    }
}

/// Rotate a refresh token. A token works once; presenting a used one revokes its session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused token", body = Problem),
    ))]
pub async fn refresh(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    limits.check(Bucket::Token, &client)?;
    let tokens = identity.refresh(&body.refresh_token, &client).await?;
    Ok(Json(tokens.into()))
}

/// End the current session: its access and refresh tokens stop working immediately.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem),
        (status = 409, description = "The bearer is a token of an external identity provider: \
            there is no session here to end; sign out at the provider", body = Problem)))]
pub async fn logout(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
) -> Result<StatusCode, Problem> {
    let Some(session_id) = caller.session_id() else {
        return Err(Problem::conflict().with_detail(
            "this token was issued by an external identity provider: there is no session \
             here to end; sign out at the provider",
        ));
    };
    identity.logout(caller.user.id, session_id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GuestResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub user: UserView,
}

/// Start an anonymous guest session (no personal data).
#[utoipa::path(post, path = "/api/v1/auth/guest", tag = "identity",
    responses((status = 201, body = GuestResponse),
        (status = 429, description = "Too many guest sessions from this address", body = Problem)))]
pub async fn guest(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
) -> Result<impl IntoResponse, Problem> {
    limits.check(Bucket::Guest, &client)?;
    let (user, tokens) = identity.guest(&client).await?;
    Ok((
        StatusCode::CREATED,
        Json(GuestResponse {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            user: UserView::from(&user),
        }),
    ))
}
