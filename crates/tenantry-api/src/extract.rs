//! The shared extractors (`tenantry-http`).

pub use tenantry_http::{AdminCtx, Caller, Client, Json, Query, TenantCtx};

/// A path id that must parse; anything else is "not found".
pub fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, tenantry_core::Problem> {
    raw.parse().map_err(|_| tenantry_core::Problem::not_found())
}
