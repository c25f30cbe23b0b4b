//! Where services read the current time, so tests can move it forward instead of sleeping.
//!
//! A [`Clock`] is the system clock unless a test built it from a [`ManualClock`]: then it
//! reads the system clock plus everything the test has [advanced](ManualClock::advance) it
//! by. Time keeps flowing either way, so what depends on it moving (distinct timestamps,
//! ordering by creation time, request timeouts) behaves as in production, while a test jumps
//! over an expiry, a lock-out or a retention period in no time. `tenantry_db::Db` carries
//! the clock of the deployment, so every service reads it with `db.now()` (or `tx.now()`).
//!
//! Not everything follows it: JWT validation reads the system clock inside `jsonwebtoken`
//! (so issuing access tokens and rotating their keys do too), TOTP codes are checked against
//! the authenticator's real time, and monotonic timing (timeouts, metrics, rate limiters)
//! uses `Instant`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};

/// The current time as services see it; cheap to clone (the system clock allocates nothing).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds a [`ManualClock`] has been advanced by; `None` for the system clock.
    skew: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time, truncated to microseconds like [`crate::now`].
    pub fn now(&self) -> DateTime<Utc> {
        let now = crate::now();
        match &self.skew {
            None => now,
            Some(skew) => now
                .checked_add_signed(TimeDelta::microseconds(skew.load(Ordering::Relaxed)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// A clock a test moves forward: hand [`ManualClock::clock`] to what it starts, then call
/// [`ManualClock::advance`] where it would otherwise sleep.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    skew: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that reads the system time until advanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// The [`Clock`] that follows this one (every copy sees every advance).
    pub fn clock(&self) -> Clock {
        Clock {
            skew: Some(self.skew.clone()),
        }
    }

    /// What its clocks read now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    /// Moves every clock of this one forward by `by` (saturating at about 292,000 years).
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .skew
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |skew| {
                Some(skew.saturating_add(micros))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_runs_with_the_system_clock_plus_its_advances() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        let before = crate::now();
        let read = clock.now();
        assert!(read >= before && read - before < TimeDelta::seconds(5));
        manual.advance(Duration::from_secs(3600));
        let copy = clock.clone();
        let later = copy.now();
        assert!(later - read >= TimeDelta::hours(1));
        assert!(later - read < TimeDelta::hours(1) + TimeDelta::seconds(5));
        assert_eq!(later.timestamp_subsec_nanos() % 1000, 0, "microseconds");
        let system = Clock::system().now();
        assert!(system < later - TimeDelta::minutes(59));
    }
}
