//! Per-client-IP rate limits of the unauthenticated identity endpoints (GCRA via
//! `governor`, in memory per node). IPv6 clients are limited per /64, since one host
//! usually holds a whole prefix.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    time::Duration,
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use tenantry_core::{Problem, config::RateLimitConfig};
use tenantry_identity::ClientInfo;

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
}

/// `count` per `period`, with a burst of the whole allowance (a user may retry quickly a
/// few times, then waits for cells to replenish).
fn limiter(count: u32, period: Duration) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    let burst = NonZeroU32::new(count)?;
    let quota = Quota::with_period(period / count)?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

fn client_key(client: &ClientInfo) -> Option<IpAddr> {
    let ip: IpAddr = client.ip.as_deref()?.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    })
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
        }
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
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("rate_limited_total", "bucket" => bucket.name()).increment(1);
            Problem::rate_limited()
                .with_detail("too many requests from this address; try again later")
                .with_retry_after(wait.as_secs() + 1)
        })
    }

    /// Forgets idle clients (call periodically so memory stays bounded).
    pub fn shrink(&self) {
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
    fn zero_means_unlimited() {
        let limits = Limits::new(&RateLimitConfig {
            guest_per_hour: 0,
            ..RateLimitConfig::default()
        });
        for _ in 0..1000 {
            limits.check(Bucket::Guest, &client("10.0.0.1")).unwrap();
        }
    }
}
