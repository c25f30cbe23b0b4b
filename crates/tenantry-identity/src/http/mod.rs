//! Identity's HTTP surface: how a bearer token becomes a caller, and (next to the service)
//! the routes of accounts, sessions and tokens.

use tenantry_core::{Problem, UserId};
use tenantry_http::{Authenticate, Principal};

use crate::{Authenticated, Identity};

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
