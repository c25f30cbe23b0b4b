//! The shared extractors (`tenantry-http`), with the principal of this assembly's gate.

pub use tenantry_http::{Caller, Client, Json, Query, TenantCtx};
use tenantry_identity::Authenticated;

/// A platform administrator's scope.
pub type AdminCtx = tenantry_http::AdminCtx<Authenticated>;

/// A path id that must parse; anything else is "not found".
pub fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, tenantry_core::Problem> {
    raw.parse().map_err(|_| tenantry_core::Problem::not_found())
}
