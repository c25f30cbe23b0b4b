//! Rate limits (GCRA via `governor`, in memory per node): per client IP on the
//! unauthenticated identity endpoints (IPv6 clients per /64, since one host usually holds a
//! whole prefix), and per tenant and per API key on every tenant-scoped request, so one noisy
//! tenant cannot take the server from the others.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::Duration,
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use tenantry_core::Origin as ClientInfo;
use tenantry_core::{ApiKeyId, Problem, TenantId};
use tenantry_db::TenantScope;

use crate::config::RateLimitConfig;

/// The limited operations.
#[derive(Debug, Clone, Copy)]
pub enum Bucket {
    Login,
    Register,
    PasswordReset,
    Guest,
    Token,
}

/// One keyed limiter per bucket; `None` where the limit is 0 (unlimited).
#[derive(Debug)]
pub struct Limits {
    login: Option<DefaultKeyedRateLimiter<IpAddr>>,
    register: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password_reset: Option<DefaultKeyedRateLimiter<IpAddr>>,
    guest: Option<DefaultKeyedRateLimiter<IpAddr>>,
    token: Option<DefaultKeyedRateLimiter<IpAddr>>,
    tenant: Option<DefaultKeyedRateLimiter<TenantId>>,
    api_key: Option<DefaultKeyedRateLimiter<ApiKeyId>>,
}

/// `count` per `period`, with a burst of the whole allowance (a user may retry quickly a
/// few times, then waits for cells to replenish).
fn limiter(count: u32, period: Duration) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    let burst = NonZeroU32::new(count)?;
    let quota = Quota::with_period(period / count)?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

/// `per_second` with bursts of `burst` (at least the rate).
fn per_second<K: Clone + Eq + std::hash::Hash>(
    per_second: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second))?;
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Whole seconds until a refused request may succeed (at least 1).
fn retry_after(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn client_key(client: &ClientInfo) -> Option<IpAddr> {
    Some(ip_key(client.ip.as_deref()?.parse().ok()?))
}

/// The key one client is counted under: its IPv4 address, or its IPv6 /64 (one subscriber's
/// share; an IPv4-mapped address counts as the IPv4 one).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limits {
    pub fn new(config: &RateLimitConfig) -> Self {
        const MINUTE: Duration = Duration::from_secs(60);
        const HOUR: Duration = Duration::from_secs(3600);
        Self {
            login: limiter(config.login_per_minute, MINUTE),
            register: limiter(config.register_per_hour, HOUR),
            password_reset: limiter(config.password_reset_per_hour, HOUR),
            guest: limiter(config.guest_per_hour, HOUR),
            token: limiter(config.token_per_minute, MINUTE),
            tenant: per_second(config.tenant_per_second, config.tenant_burst),
            api_key: per_second(config.api_key_per_second, config.api_key_burst),
        }
    }

    /// Takes one cell of the API key (when the caller is one) and one of the tenant, or
    /// answers 429 with `Retry-After`. Called once per tenant-scoped request, right after
    /// authorization.
    pub fn check_scope(&self, scope: &TenantScope) -> Result<(), Problem> {
        self.check_tenant(scope.tenant_id(), scope.actor().api_key())
    }

    fn check_tenant(&self, tenant: TenantId, api_key: Option<ApiKeyId>) -> Result<(), Problem> {
        if let (Some(limiter), Some(key)) = (&self.api_key, api_key) {
            limiter.check_key(&key).map_err(|not_until| {
                metrics::counter!("rate_limited_total", "bucket" => "api_key").increment(1);
                Problem::rate_limited()
                    .with_detail("too many requests with this API key; try again later")
                    .with_retry_after(retry_after(&not_until))
            })?;
        }
        if let Some(limiter) = &self.tenant {
            limiter.check_key(&tenant).map_err(|not_until| {
                metrics::counter!("rate_limited_total", "bucket" => "tenant").increment(1);
                Problem::rate_limited()
                    .with_detail("too many requests for this tenant; try again later")
                    .with_retry_after(retry_after(&not_until))
            })?;
        }
        Ok(())
    }

    /// Takes one cell for the client, or answers 429 with `Retry-After`.
    pub fn check(&self, bucket: Bucket, client: &ClientInfo) -> Result<(), Problem> {
        let limiter = match bucket {
            Bucket::Login => &self.login,
            Bucket::Register => &self.register,
            Bucket::PasswordReset => &self.password_reset,
            Bucket::Guest => &self.guest,
            Bucket::Token => &self.token,
        };
        let (Some(limiter), Some(key)) = (limiter, client_key(client)) else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            metrics::counter!("rate_limited_total", "bucket" => bucket.name()).increment(1);
            Problem::rate_limited()
                .with_detail("too many requests from this address; try again later")
                .with_retry_after(retry_after(&not_until))
        })
    }

    /// Forgets idle clients, tenants and keys (call periodically so memory stays bounded).
    pub fn shrink(&self) {
        if let Some(limiter) = &self.tenant {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.api_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [
            &self.login,
            &self.register,
            &self.password_reset,
            &self.guest,
            &self.token,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::PasswordReset => "password_reset",
            Self::Guest => "guest",
            Self::Token => "token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> ClientInfo {
        ClientInfo {
            ip: Some(ip.to_owned()),
            ..ClientInfo::default()
        }
    }

    #[test]
    fn limits_per_address_and_prefix() {
        let limits = Limits::new(&RateLimitConfig {
            login_per_minute: 3,
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            limits.check(Bucket::Login, &client("10.0.0.1")).unwrap();
        }
        let refused = limits
            .check(Bucket::Login, &client("10.0.0.1"))
            .unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        assert!(refused.retry_after.is_some_and(|s| (1..=21).contains(&s)));
        limits.check(Bucket::Login, &client("10.0.0.2")).unwrap();
        for _ in 0..3 {
            limits.check(Bucket::Login, &client("2001:db8::1")).unwrap();
        }
        assert!(
            limits
                .check(Bucket::Login, &client("2001:db8::ffff"))
                .is_err(),
            "same /64"
        );
        limits
            .check(Bucket::Login, &client("2001:db8:0:1::1"))
            .unwrap();
    }

    #[test]
    fn limits_per_tenant_and_per_api_key() {
        let limits = Limits::new(&RateLimitConfig {
            tenant_per_second: 2,
            tenant_burst: 4,
            api_key_per_second: 1,
            api_key_burst: 2,
            ..RateLimitConfig::default()
        });
        let (a, b) = (TenantId::new(), TenantId::new());
        for _ in 0..4 {
            limits.check_tenant(a, None).unwrap();
        }
        let refused = limits.check_tenant(a, None).unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        assert_eq!(refused.retry_after, Some(1));
        limits.check_tenant(b, None).unwrap();
        // A key has its own, smaller allowance inside its tenant's.
        let key = ApiKeyId::new();
        limits.check_tenant(b, Some(key)).unwrap();
        limits.check_tenant(b, Some(key)).unwrap();
        let refused = limits.check_tenant(b, Some(key)).unwrap_err();
        assert!(refused.detail.as_deref().unwrap_or("").contains("API key"));
        limits.check_tenant(b, Some(ApiKeyId::new())).unwrap();
        // A burst below the rate is raised to the rate.
        let limits = Limits::new(&RateLimitConfig {
            tenant_per_second: 3,
            tenant_burst: 0,
            ..RateLimitConfig::default()
        });
        for _ in 0..3 {
            limits.check_tenant(a, None).unwrap();
        }
        assert!(limits.check_tenant(a, None).is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = Limits::new(&RateLimitConfig {
            guest_per_hour: 0,
            ..RateLimitConfig::default()
        });
        for _ in 0..1000 {
            limits.check(Bucket::Guest, &client("10.0.0.1")).unwrap();
        }
        let limits = Limits::new(&RateLimitConfig {
            tenant_per_second: 0,
            api_key_per_second: 0,
            ..RateLimitConfig::default()
        });
        let (tenant, key) = (TenantId::new(), ApiKeyId::new());
        for _ in 0..1000 {
            limits.check_tenant(tenant, Some(key)).unwrap();
        }
    }
}
