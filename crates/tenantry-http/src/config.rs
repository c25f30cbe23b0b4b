//! The `rate_limits` section (`TENANTRY_RATE_LIMITS__*`), read by [`Limits`](crate::Limits).

use serde::{Deserialize, Serialize};

/// Per-client-IP limits of the unauthenticated identity endpoints, and per-tenant and per-API-key
/// limits of every tenant-scoped request (0 = unlimited). Failed logins are additionally
/// throttled per account, independently of these. All are kept in memory per node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// `POST /auth/login` attempts per IP per minute.
    pub login_per_minute: u32,
    /// `POST /auth/register` per IP per hour.
    pub register_per_hour: u32,
    /// `POST /auth/forgot-password` and `POST /auth/reset-password` per IP per hour.
    pub password_reset_per_hour: u32,
    /// `POST /auth/guest` per IP per hour.
    pub guest_per_hour: u32,
    /// `POST /auth/verify-email` and `POST /auth/refresh` per IP per minute.
    pub token_per_minute: u32,
    /// Requests per second to one tenant's `/tenants/{tenant_id}/…` routes, from all its
    /// members and keys together, so one noisy tenant cannot crowd out the others.
    pub tenant_per_second: u32,
    /// Requests one tenant may make at once above its rate (0 = the rate).
    pub tenant_burst: u32,
    /// Requests per second made with one API key (within its tenant's limit).
    pub api_key_per_second: u32,
    /// Requests one API key may make at once above its rate (0 = the rate).
    pub api_key_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_per_minute: 30,
            register_per_hour: 30,
            password_reset_per_hour: 20,
            guest_per_hour: 60,
            token_per_minute: 600,
            tenant_per_second: 100,
            tenant_burst: 200,
            api_key_per_second: 50,
            api_key_burst: 100,
        }
    }
}
