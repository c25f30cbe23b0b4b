//! Identity's HTTP surface: how a bearer token becomes a caller, and (next to the service)
//! the routes of accounts, sessions and tokens, one module per resource. Sign-up, login and
//! the caller's tenants answer with tenants, so tenancy serves them (identity does not know
//! tenants).
//!
//! A handler that reads a body takes its path id as `Result<Ids<_>, Problem>` and judges it
//! after the body: the body's errors come first for a malformed id exactly as for an unknown
//! one.

mod account;
mod admin;
mod auth;
mod mfa;
mod recovery;
mod users;

use std::sync::Arc;

use axum::extract::FromRef;
use tenantry_core::{Problem, UserId};
use tenantry_http::{Authenticate, Gate, Limits, Principal};
use utoipa_axum::router::OpenApiRouter;

use crate::{Authenticated, Identity};

/// Identity's routes, for any state that authenticates with [`Identity`] and holds it and
/// the rate limits.
pub fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Identity: FromRef<S>,
    Arc<Limits>: FromRef<S>,
{
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(recovery::router())
        .merge(users::router())
        .merge(account::router())
        .merge(mfa::router())
        .merge(admin::router())
}

impl Principal for Authenticated {
    fn user_id(&self) -> UserId {
        self.user.id
    }
}

impl Authenticate for Identity {
    type Principal = Authenticated;

    async fn authenticate(&self, token: &str) -> Result<Authenticated, Problem> {
        Identity::authenticate(self, token)
            .await
            .map_err(Problem::from)
    }
}
