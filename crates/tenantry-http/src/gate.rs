//! Who is calling, and with what scope: the extractors every context's handlers take, over
//! the authentication and authorization the router state provides.
//!
//! Identity implements [`Authenticate`] (a bearer token becomes a [`Principal`]); tenancy
//! implements [`Authorize`] (a principal or an API key becomes a `TenantScope`, a platform
//! administrator an `AdminScope`); the assembly's state implements [`Gate`] by handing out
//! both and its rate limits. Static dispatch throughout: no boxed future on the hot path.

use std::{future::Future, sync::Arc};

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::{HeaderMap, header, request::Parts},
};
use tenantry_core::{Origin, Problem, TenantId, UserId};
use tenantry_db::{Actor, AdminScope, TenantScope};

use crate::{Limits, client::origin};

/// An authenticated caller as the identity context represents it.
pub trait Principal: Clone + Send + Sync + 'static {
    /// The user the caller is, for logs.
    fn user_id(&self) -> UserId;
}

/// Turns a bearer token into a caller (implemented by identity).
pub trait Authenticate: Send + Sync + 'static {
    type Principal: Principal;

    /// The caller the token proves, or a problem (401).
    fn authenticate(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Self::Principal, Problem>> + Send;
}

/// Issues scopes (implemented by tenancy): the only way handlers get one.
pub trait Authorize<P: Principal>: Send + Sync + 'static {
    /// Whether `token` has the shape of a tenant API key: API keys authorize only on tenant
    /// paths, so [`Caller`] refuses them and [`TenantCtx`] hands them to
    /// [`Authorize::api_key_scope`].
    fn is_api_key(&self, token: &str) -> bool;

    /// The scope of a signed-in member in `tenant`; 404 for a non-member.
    fn member_scope(
        &self,
        caller: &P,
        tenant: TenantId,
        origin: Arc<Origin>,
    ) -> impl Future<Output = Result<TenantScope, Problem>> + Send;

    /// The scope of an API key of `tenant`.
    fn api_key_scope(
        &self,
        token: &str,
        tenant: TenantId,
        origin: Arc<Origin>,
    ) -> impl Future<Output = Result<TenantScope, Problem>> + Send;

    /// The scope of the requester a signed link names, re-authorized now; 404 when it may no
    /// longer read in `tenant`.
    fn requester_scope(
        &self,
        tenant: TenantId,
        requester: Actor,
        origin: Arc<Origin>,
    ) -> impl Future<Output = Result<TenantScope, Problem>> + Send;

    /// A platform administrator's scope; 403 `platform_admin_required` for anyone else.
    fn admin_scope(&self, caller: &P, origin: Arc<Origin>) -> Result<AdminScope, Problem>;
}

/// What a router's state provides to the extractors of this module.
pub trait Gate: Clone + Send + Sync + 'static {
    type Authn: Authenticate;
    type Authz: Authorize<<Self::Authn as Authenticate>::Principal>;
    fn authn(&self) -> &Self::Authn;
    fn authz(&self) -> &Self::Authz;
    fn limits(&self) -> &Limits;
}

/// The principal type of a gate.
type PrincipalOf<S> = <<S as Gate>::Authn as Authenticate>::Principal;

fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Problem::unauthenticated().with_detail("send Authorization: Bearer <token>")
    })?;
    let value = value.to_str().map_err(|_| Problem::invalid_token())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Problem::unauthenticated().with_detail("send Authorization: Bearer <token>")),
    }
}

/// The authenticated caller (a user with a live session, or an external issuer's token).
#[derive(Debug, Clone)]
pub struct Caller<P>(pub P);

impl<S: Gate> FromRequestParts<S> for Caller<PrincipalOf<S>> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        let token = bearer(&parts.headers)?;
        if state.authz().is_api_key(token) {
            return Err(Problem::invalid_token().with_detail(
                "API keys work only on tenant paths (/api/v1/tenants/{tenant_id}/…)",
            ));
        }
        let principal = state.authn().authenticate(token).await?;
        tracing::Span::current().record("user_id", tracing::field::display(principal.user_id()));
        let caller = Caller(principal);
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The caller's scope in the tenant named by the `{tenant_id}` path segment: a signed-in
/// member, or an API key (`tnt_…`) of that tenant.
#[derive(Debug, Clone)]
pub struct TenantCtx {
    pub scope: TenantScope,
}

impl<S: Gate> FromRequestParts<S> for TenantCtx {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // Resolved (and rate-limited) already by the idempotency middleware.
        if let Some(ctx) = parts.extensions.get::<TenantCtx>() {
            return Ok(ctx.clone());
        }
        let api_key = bearer(&parts.headers)
            .ok()
            .filter(|t| state.authz().is_api_key(t))
            .map(str::to_owned);
        let caller = match api_key {
            Some(_) => None,
            None => Some(Caller::<PrincipalOf<S>>::from_request_parts(parts, state).await?),
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found())?;
        // A malformed id names no tenant: answer as for any unknown tenant.
        let tenant_id: TenantId = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(Problem::not_found)?;
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
        let origin = Arc::new(origin(parts));
        let scope = match (&caller, api_key) {
            (Some(Caller(caller)), _) => {
                state
                    .authz()
                    .member_scope(caller, tenant_id, origin)
                    .await?
            }
            (None, Some(key)) => {
                Box::pin(state.authz().api_key_scope(&key, tenant_id, origin)).await?
            }
            (None, None) => return Err(Problem::invalid_token()),
        };
        if let Some(key_id) = scope.actor().api_key() {
            tracing::Span::current().record("user_id", tracing::field::display(key_id));
        }
        state.limits().check_scope(&scope)?;
        Ok(Self { scope })
    }
}

/// A platform administrator's scope for `/api/v1/admin/…`; anyone else gets 403
/// `platform_admin_required`. (A handler that needs the administrator too takes [`Caller`]
/// beside it: the caller is authenticated once per request.)
#[derive(Debug, Clone)]
pub struct AdminCtx {
    pub scope: AdminScope,
}

impl<S: Gate> FromRequestParts<S> for AdminCtx {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Caller(caller) = Caller::<PrincipalOf<S>>::from_request_parts(parts, state).await?;
        let scope = state
            .authz()
            .admin_scope(&caller, Arc::new(origin(parts)))?;
        Ok(Self { scope })
    }
}
