//! `/api/v1/auth/{register,login}`: sign-up and login. Identity owns the account, but both
//! answer with tenants (sign-up may create the first one, login lists the caller's), so they
//! are served here; identity's `http` serves the other `/auth` routes.

use std::sync::Arc;

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_core::{
    Email, PageRequest, Password, PersonName, Problem, ResourceName, TenantId, problem::Validator,
};
use tenantry_db::Db;
use tenantry_http::{Bucket, Client, Json, Limits, RouterState, redacted_debug};
use tenantry_identity::{Identity, NewUser, UserView};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Tenant, authz};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: RouterState,
    Db: FromRef<S>,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters and not a common password.
    #[schema(example = "correct horse battery")]
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    /// Also create a tenant with this name, owned by the new user.
    pub tenant_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
}

/// Create an account (and optionally its first tenant).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "identity",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = RegisterResponse),
        (status = 409, description = "E-mail already registered", body = Problem),
        (status = 415, body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 429, description = "Too many sign-ups from this address", body = Problem),
    ))]
pub async fn register(
    State(identity): State<Identity>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<RegisterRequest>,
) -> Result<impl IntoResponse, Problem> {
    limits.check(Bucket::Register, &client)?;
    let mut v = Validator::new();
    let email = v.field("email", Email::parse(&body.email));
    let password = v.field("password", Password::parse(&body.password));
    let first_name = v.field("first_name", PersonName::parse(&body.first_name));
    let last_name = v.field("last_name", PersonName::parse(&body.last_name));
    let tenant_name = match body.tenant_name.as_deref() {
        Some(name) => v.field("tenant_name", ResourceName::parse(name)),
        None => None,
    };
    if let (Some(e), Some(p)) = (&email, &password)
        && p.expose().to_lowercase() == e.as_str()
    {
        v.error("password", "must not be your e-mail address");
    }
    v.finish()?;
    let (Some(email), Some(password), Some(first_name), Some(last_name)) =
        (email, password, first_name, last_name)
    else {
        return Err(Problem::validation_failed());
    };
    let new = NewUser {
        email,
        password,
        first_name,
        last_name,
    };
    let (user, tenant) = crate::register(&identity, new, tenant_name, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: UserView::from(&user),
            tenant,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// For accounts with two-step verification: a current TOTP code or an unused recovery
    /// code. Without it such accounts answer 401 `mfa_required` (after the password checked).
    pub mfa_code: Option<String>,
}

redacted_debug!(RegisterRequest, LoginRequest);

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginTenant {
    pub id: TenantId,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserView,
    pub tenants: Vec<LoginTenant>,
}

/// Exchange e-mail and password for tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "identity",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "Invalid credentials (the same answer for an unknown e-mail); \
            `mfa_required` when the account needs `mfa_code`; `mfa_invalid` for a wrong code", body = Problem),
        (status = 429, description = "Too many attempts from this address, or too many failures \
            for this account (exponential back-off); see Retry-After", body = Problem),
    ))]
pub async fn login(
    State(identity): State<Identity>,
    State(db): State<Db>,
    State(limits): State<Arc<Limits>>,
    Client(client): Client,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, Problem> {
    limits.check(Bucket::Login, &client)?;
    if body.password.len() > Password::MAX_BYTES {
        return Err(Problem::invalid_credentials());
    }
    let (user, tokens) = identity
        .login(
            &body.email,
            &body.password,
            body.mfa_code.as_deref(),
            &client,
        )
        .await?;
    let memberships =
        crate::list_my_tenants(&db, &authz::authorize_user(&user), &PageRequest::first(200))
            .await?;
    Ok(Json(LoginResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        user: UserView::from(&user),
        tenants: memberships
            .items
            .into_iter()
            .map(|m| LoginTenant {
                id: m.tenant.id,
                name: m.tenant.name,
                role: m.role,
            })
            .collect(),
    }))
}
