//! Housekeeping: rows that can never matter again are deleted, so the identity tables stay
//! proportional to live use (guest sign-ins and refreshes would otherwise grow them forever).

use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;
use sea_query::{Expr, ExprTrait, Query, SelectStatement};
use tenantry_db::periodic::PeriodicTask;

use crate::{Identity, IdentityError};

/// How often expired identity rows are pruned (first a minute after start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Ended sessions (and their refresh tokens) stay listable for audits this long.
pub const KEEP_ENDED_SESSIONS: TimeDelta = TimeDelta::days(30);
/// Security events are kept this long.
pub const KEEP_SECURITY_EVENTS: TimeDelta = TimeDelta::days(365);

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub link_tokens: u64,
    pub throttle_entries: u64,
    pub guests: u64,
    pub security_events: u64,
}

/// Identity's periodic work: pruning. `held_users` are subqueries of user ids other contexts
/// still refer to (tenancy: members of a tenant), built by their owners; see
/// [`Identity::prune`].
pub fn periodic_tasks(identity: &Identity, held_users: Vec<SelectStatement>) -> Vec<PeriodicTask> {
    let identity = identity.clone();
    vec![
        PeriodicTask::new("identity.prune", PRUNE_EVERY, move |_| {
            let identity = identity.clone();
            let held_users = held_users.clone();
            async move {
                identity
                    .prune(&held_users)
                    .await
                    .context("pruning identity rows")
                    .map(|_| ())
            }
        })
        .first_after(Duration::from_secs(60)),
    ]
}

impl Identity {
    /// Deletes expired and long-ended identity rows. Safe to run on every node at once.
    ///
    /// A guest whose id appears in one of `held_users` (subqueries of user ids, built by the
    /// context that holds them: `tenantry_tenancy::member_user_ids`) is kept. Identity sits
    /// below those contexts, so it cannot ask them; the assembly hands their answers in.
    pub async fn prune(&self, held_users: &[SelectStatement]) -> Result<Pruned, IdentityError> {
        let now = self.db.now();
        let ended_before = now - KEEP_ENDED_SESSIONS;
        let mut tx = self.db.begin_write().await?;
        let mut pruned = Pruned {
            // A used token is only needed to detect its reuse while its session lives.
            refresh_tokens: tx
                .execute(
                    Query::delete()
                        .from_table("refresh_tokens")
                        .and_where(Expr::col("expires_at").lt(now)),
                )
                .await?,
            ..Pruned::default()
        };
        pruned.sessions = tx
            .execute(
                Query::delete().from_table("sessions").cond_where(
                    Expr::col("expires_at")
                        .lt(ended_before)
                        .or(Expr::col("revoked_at").lt(ended_before)),
                ),
            )
            .await?;
        pruned.link_tokens = tx
            .execute(
                Query::delete()
                    .from_table("user_tokens")
                    .and_where(Expr::col("expires_at").lt(now)),
            )
            .await?;
        // Entries no longer locked whose hour has passed carry no information.
        pruned.throttle_entries = tx
            .execute(
                Query::delete()
                    .from_table("login_throttle")
                    .and_where(Expr::col("window_started_at").lt(now - TimeDelta::hours(1)))
                    .and_where(
                        Expr::col("locked_until")
                            .is_null()
                            .or(Expr::col("locked_until").lt(now)),
                    ),
            )
            .await?;
        // Guests without a live session are gone for good (their tokens cannot come back);
        // one that belongs to a tenant is kept.
        let mut guests = Query::delete();
        guests
            .from_table("users")
            .and_where(Expr::col("is_guest").eq(true))
            .and_where(
                Expr::col("id").not_in_subquery(
                    Query::select()
                        .column("user_id")
                        .from("sessions")
                        .and_where(Expr::col("expires_at").gt(now))
                        .and_where(Expr::col("revoked_at").is_null())
                        .to_owned(),
                ),
            );
        for held in held_users {
            guests.and_where(Expr::col("id").not_in_subquery(held.clone()));
        }
        pruned.guests = tx.execute(&guests).await?;
        pruned.security_events = tx
            .execute(
                Query::delete()
                    .from_table("security_events")
                    .and_where(Expr::col("created_at").lt(now - KEEP_SECURITY_EVENTS)),
            )
            .await?;
        tx.commit().await?;
        if pruned != Pruned::default() {
            tracing::info!(?pruned, "pruned identity rows");
        }
        Ok(pruned)
    }
}
