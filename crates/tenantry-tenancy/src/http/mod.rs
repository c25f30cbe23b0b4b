//! Tenancy's HTTP surface: the authorization the shared extractors reach through
//! [`Authorize`], and (next to the services) the routes of tenants, members, roles, projects,
//! API keys and invitations.

use std::sync::Arc;

use tenantry_core::{Origin, Problem, TenantId};
use tenantry_db::{Actor, AdminScope, Db, TenantScope};
use tenantry_http::Authorize;
use tenantry_identity::Authenticated;

use crate::{TenancyError, authz};

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
        authz::authorize_download_link(&self.db, tenant, requester, &origin)
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
