//! Tenancy's HTTP surface: the authorization the shared extractors reach through
//! [`Authorize`], and (next to the services) the routes of tenants, members, roles, projects,
//! API keys, invitations and settings, one module per resource; also the routes whose answer
//! needs tenancy though their path is identity's (sign-up, login, `/users/me/tenants`).
//!
//! A handler that reads a body takes its path ids as `Result<Ids<_>, Problem>` and judges
//! them after the body: the body's errors come first for a malformed id exactly as for an
//! unknown one.

mod admin;
mod api_keys;
mod auth;
mod invitations;
mod members;
mod project_members;
mod projects;
mod roles;
mod settings;
mod tenants;

use std::sync::Arc;

use axum::extract::FromRef;
use tenantry_core::{Origin, Problem, TenantId};
use tenantry_db::{Actor, AdminScope, Db, TenantScope};
use tenantry_http::{Authorize, Gate, Limits};
use tenantry_identity::{Authenticated, Identity};
use utoipa_axum::router::OpenApiRouter;

use crate::TenancyConfig;
use crate::{TenancyError, authz};

/// Tenancy's routes, for any state that authenticates with [`Identity`] and holds the
/// database, the identity service (sign-up, invitations), the rate limits and the tenancy
/// configuration (invitation limits).
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Db: FromRef<S>,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
    TenancyConfig: FromRef<S>,
{
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(tenants::router())
        .merge(members::router())
        .merge(projects::router())
        .merge(roles::router())
        .merge(project_members::router())
        .merge(api_keys::router())
        .merge(invitations::router())
        .merge(settings::router())
        .merge(admin::router())
}

/// The authorization layer as the HTTP extractors see it: the only issuer of scopes.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    db: Db,
}

impl Gatekeeper {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Authorize<Authenticated> for Gatekeeper {
    fn is_api_key(&self, token: &str) -> bool {
        authz::is_api_key(token)
    }

    async fn member_scope(
        &self,
        caller: &Authenticated,
        tenant: TenantId,
        origin: Arc<Origin>,
    ) -> Result<TenantScope, Problem> {
        Ok(authz::authorize(&self.db, caller.user.id, tenant, origin).await?)
    }

    async fn api_key_scope(
        &self,
        token: &str,
        tenant: TenantId,
        origin: Arc<Origin>,
    ) -> Result<TenantScope, Problem> {
        Ok(authz::authorize_api_key(&self.db, token, tenant, origin).await?)
    }

    async fn requester_scope(
        &self,
        tenant: TenantId,
        requester: Actor,
        origin: Arc<Origin>,
    ) -> Result<TenantScope, Problem> {
        authz::authorize_download_link(&self.db, tenant, requester, origin)
            .await
            .map_err(|e| match e {
                TenancyError::Db(e) => Problem::from(e),
                _ => Problem::not_found(),
            })
    }

    fn admin_scope(
        &self,
        caller: &Authenticated,
        origin: Arc<Origin>,
    ) -> Result<AdminScope, Problem> {
        Ok(authz::authorize_admin(&caller.user, origin)?)
    }
}
