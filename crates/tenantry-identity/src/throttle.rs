//! Per-account login throttling. Keyed by a MAC of the normalised e-mail address (not by
//! user id), so addresses without an account lock exactly like real ones and the lockout
//! reveals nothing; stored in the database, so it holds across restarts and nodes.
//!
//! After [`FREE_FAILURES`] consecutive failures each further failure locks the key for an
//! exponentially growing time (1 s, 2 s, 4 s, … capped at [`MAX_LOCK_SECS`]); independently,
//! [`MAX_FAILURES_PER_HOUR`] failures within an hour lock it until that hour has passed.
//! A successful login clears the key.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Query};
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};

use crate::Identity;

pub const FREE_FAILURES: i64 = 5;
pub const MAX_LOCK_SECS: i64 = 15 * 60;
pub const MAX_FAILURES_PER_HOUR: i64 = 100;

/// The throttle key of an e-mail address (or any login name).
#[derive(Debug, Clone)]
pub(crate) struct ThrottleKey(Vec<u8>);

/// A key's throttling as read before an attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throttle {
    /// Failures are on record (a success must clear them).
    pub recorded: bool,
    /// Seconds until the next attempt is allowed, when locked.
    pub locked_for: Option<u64>,
}

struct State {
    failures: i64,
    window_started_at: DateTime<Utc>,
    window_failures: i64,
    locked_until: Option<DateTime<Utc>>,
}

impl FromRow for State {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            failures: row.i64()?,
            window_started_at: row.time()?,
            window_failures: row.i64()?,
            locked_until: row.opt_time()?,
        })
    }
}

const COLUMNS: [&str; 4] = [
    "failures",
    "window_started_at",
    "window_failures",
    "locked_until",
];

/// How long the key stays locked after `failures` consecutive failures.
fn lock_for(failures: i64) -> Option<TimeDelta> {
    if failures < FREE_FAILURES {
        return None;
    }
    let exponent = u32::try_from(Ord::min(failures - FREE_FAILURES, 20)).unwrap_or(20);
    Some(TimeDelta::seconds(Ord::min(
        1i64 << exponent,
        MAX_LOCK_SECS,
    )))
}

fn retry_after(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = Ord::max((until - now).num_milliseconds(), 0);
    Ord::max(u64::try_from((millis + 999) / 1000).unwrap_or(1), 1)
}

impl Identity {
    pub(crate) fn throttle_key(&self, login: &str) -> ThrottleKey {
        // The address's canonical form, so that look-alike spellings of one address
        // (`ｊｏｅ@…` for `joe@…`) share its key instead of each getting free attempts.
        let normalised = tenantry_core::Email::parse_for_lookup(login).map_or_else(
            |_| tenantry_core::Email::fold(login),
            |e| e.as_str().to_owned(),
        );
        ThrottleKey(
            self.key
                .mac("login-throttle", normalised.as_bytes())
                .to_vec(),
        )
    }

    /// Seconds until this key may try again, if it is locked now.
    pub(crate) async fn throttled_for(&self, key: &ThrottleKey) -> Result<Option<u64>, DbError> {
        Ok(self.throttle_state(key).await?.locked_for)
    }

    /// Whether the key has a record, and for how long it is locked.
    pub(crate) async fn throttle_state(&self, key: &ThrottleKey) -> Result<Throttle, DbError> {
        let state: Option<State> = self
            .db
            .read_optional(
                Query::select()
                    .columns(COLUMNS)
                    .from("login_throttle")
                    .and_where(Expr::col("key_hash").eq(key.0.clone())),
            )
            .await?;
        let now = self.db.now();
        Ok(Throttle {
            recorded: state.is_some(),
            locked_for: state
                .and_then(|s| s.locked_until)
                .filter(|until| *until > now)
                .map(|until| retry_after(until, now)),
        })
    }

    /// Counts a failure in `tx`; returns the lock it caused, in seconds, if any.
    pub(crate) async fn throttle_failure(
        tx: &mut Tx,
        key: &ThrottleKey,
    ) -> Result<Option<u64>, DbError> {
        let now = tx.now();
        // An atomic increment: concurrent failures each count (the row stays locked on
        // PostgreSQL until this transaction ends).
        tx.execute(
            Query::insert()
                .into_table("login_throttle")
                .row([
                    ("key_hash", key.0.clone().into()),
                    ("failures", 1i64.into()),
                    ("window_started_at", now.into()),
                    ("window_failures", 1i64.into()),
                    ("updated_at", now.into()),
                ])
                .on_conflict(
                    OnConflict::column("key_hash")
                        .value(
                            "failures",
                            Expr::col(("login_throttle", "failures")).add(1i64),
                        )
                        .value(
                            "window_failures",
                            Expr::col(("login_throttle", "window_failures")).add(1i64),
                        )
                        .value("updated_at", now)
                        .to_owned(),
                ),
        )
        .await?;
        let state: State = tx
            .fetch_one(
                Query::select()
                    .columns(COLUMNS)
                    .from("login_throttle")
                    .and_where(Expr::col("key_hash").eq(key.0.clone())),
            )
            .await?;
        let (window_started_at, window_failures) =
            if now - state.window_started_at >= TimeDelta::hours(1) {
                (now, 1)
            } else {
                (state.window_started_at, state.window_failures)
            };
        let mut until = lock_for(state.failures).map(|d| now + d);
        if window_failures >= MAX_FAILURES_PER_HOUR {
            let hour_end = window_started_at + TimeDelta::hours(1);
            until = Some(until.map_or(hour_end, |u| Ord::max(u, hour_end)));
        }
        let until = Ord::max(until, state.locked_until.filter(|u| *u > now));
        tx.execute(
            Query::update()
                .table("login_throttle")
                .value("window_started_at", window_started_at)
                .value("window_failures", window_failures)
                .value("locked_until", until)
                .and_where(Expr::col("key_hash").eq(key.0.clone())),
        )
        .await?;
        Ok(until.map(|u| retry_after(u, now)))
    }

    /// Clears the key after a successful login.
    pub(crate) async fn throttle_success(&self, key: &ThrottleKey) -> Result<(), DbError> {
        let mut tx = self.db.begin_write().await?;
        Self::clear_throttle(&mut tx, key).await?;
        tx.commit().await
    }

    /// Forgets the key's failures and lock in `tx`.
    pub(crate) async fn clear_throttle(tx: &mut Tx, key: &ThrottleKey) -> Result<(), DbError> {
        tx.execute(
            Query::delete()
                .from_table("login_throttle")
                .and_where(Expr::col("key_hash").eq(key.0.clone())),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_exponentially_and_are_capped() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(TimeDelta::seconds(1)));
        assert_eq!(lock_for(6), Some(TimeDelta::seconds(2)));
        assert_eq!(lock_for(10), Some(TimeDelta::seconds(32)));
        assert_eq!(lock_for(40), Some(TimeDelta::seconds(MAX_LOCK_SECS)));
        // Even without the hourly cap, the back-off admits fewer than 100 failures an hour.
        let mut elapsed = 0;
        let mut failures = 0;
        while elapsed < 3600 {
            failures += 1;
            elapsed += lock_for(failures).map_or(0, |d| d.num_seconds());
        }
        assert!(failures < MAX_FAILURES_PER_HOUR, "{failures}");
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = tenantry_core::now();
        assert_eq!(retry_after(now + TimeDelta::milliseconds(1), now), 1);
        assert_eq!(retry_after(now + TimeDelta::milliseconds(1001), now), 2);
        assert_eq!(retry_after(now, now), 1);
    }
}
