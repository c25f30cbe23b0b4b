//! Who may send invitations, and how many.
//!
//! An invitation mails an arbitrary address on the tenant's behalf, so sending one needs an
//! account whose own address is verified (guests have none), and sending is limited per
//! account (over all its tenants) and per tenant in any hour, with a cap on a tenant's
//! pending invitations. Everything is counted in the database — rows of `invitation_sends`
//! for accounts, the `invitations` table for tenants — so limits hold across restarts and
//! nodes on both backends. A refused or failed invitation rolls its count back with it.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Func, Query};
use tenantry_core::{Email, UserId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, TenantScope, Tx};

use super::pending;
use crate::{TenancyError, config::TenancyConfig};

/// The sliding window of the hourly limits.
const WINDOW: TimeDelta = TimeDelta::hours(1);

/// How many rows fell in the window, and when the oldest of them did.
struct Window {
    count: i64,
    oldest: Option<DateTime<Utc>>,
}

impl FromRow for Window {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            count: row.i64()?,
            oldest: row.opt_time()?,
        })
    }
}

impl Window {
    /// `Err` when `limit` (0 = none) is reached, with the seconds until the oldest row leaves
    /// the window.
    fn check(&self, limit: u32, now: DateTime<Utc>) -> Result<(), TenancyError> {
        if limit == 0 || self.count < i64::from(limit) {
            return Ok(());
        }
        let free_at = self.oldest.map_or(now + WINDOW, |t| t + WINDOW);
        let secs = Ord::max((free_at - now).num_seconds(), 1);
        Err(TenancyError::InvitationRateLimited {
            retry_after_secs: u64::try_from(secs).unwrap_or(1),
        })
    }
}

/// Checks that `sender` may invite and counts one invitation against their hourly limit.
/// Runs before the transaction is confined to the tenant (the table is not a tenant's).
///
/// The sender's account row is locked on PostgreSQL so that concurrent invitations of one
/// sender count one after the other (SQLite serialises writers already).
pub(super) async fn count_sender(
    tx: &mut Tx,
    sender: UserId,
    now: DateTime<Utc>,
    limits: &TenancyConfig,
) -> Result<(), TenancyError> {
    let account = tenantry_identity::directory::lock_sender(tx, sender).await?;
    if !account.is_some_and(|a| a.email_verified && !a.is_guest) {
        return Err(TenancyError::SenderNotVerified);
    }
    let since = now - WINDOW;
    // Rows older than the window no longer count; dropping them here keeps the table at
    // most one window deep per sender without a separate housekeeping pass.
    tx.execute(
        Query::delete()
            .from_table("invitation_sends")
            .and_where(Expr::col("user_id").eq(sender))
            .and_where(Expr::col("sent_at").lte(since)),
    )
    .await?;
    let window: Window = tx
        .fetch_one(
            Query::select()
                .expr(Func::count(Expr::col("sent_at")))
                .expr(Func::min(Expr::col("sent_at")))
                .from("invitation_sends")
                .and_where(Expr::col("user_id").eq(sender))
                .and_where(Expr::col("sent_at").gt(since)),
        )
        .await?;
    window.check(limits.invitations_per_sender_per_hour, now)?;
    tx.execute(
        Query::insert()
            .into_table("invitation_sends")
            .row([("user_id", sender.into()), ("sent_at", now.into())]),
    )
    .await?;
    Ok(())
}

/// Checks the tenant's hourly limit and its cap on pending invitations (a re-invitation of
/// `email` replaces its pending one, so that one does not count). The tenant row is locked
/// on PostgreSQL so that concurrent invitations of one tenant count one after the other.
pub(super) async fn check_tenant(
    tx: &mut Tx,
    scope: &TenantScope,
    email: &Email,
    now: DateTime<Utc>,
    limits: &TenancyConfig,
) -> Result<(), TenancyError> {
    tx.lock_rows(
        Query::select()
            .column("id")
            .from("tenants")
            .and_where(Expr::col("id").eq(scope.tenant_id()))
            .to_owned(),
    )
    .await?;
    let window: Window = tx
        .fetch_one(
            Query::select()
                .expr(Func::count(Expr::col("id")))
                .expr(Func::min(Expr::col("created_at")))
                .from("invitations")
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("created_at").gt(now - WINDOW)),
        )
        .await?;
    window.check(limits.invitations_per_tenant_per_hour, now)?;
    let cap = limits.max_pending_invitations;
    if cap > 0 {
        let pending_count: i64 = tx
            .fetch_one(
                Query::select()
                    .expr(Func::count(Expr::col("id")))
                    .from("invitations")
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("email").ne(email.as_str()))
                    .cond_where(pending(now)),
            )
            .await?;
        if pending_count >= i64::from(cap) {
            return Err(TenancyError::TooManyPendingInvitations { limit: cap });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_reopens_when_its_oldest_entry_leaves() {
        let now = tenantry_core::now();
        let window = Window {
            count: 3,
            oldest: Some(now - TimeDelta::minutes(50)),
        };
        assert!(window.check(4, now).is_ok());
        assert!(window.check(0, now).is_ok(), "0 = unlimited");
        match window.check(3, now) {
            Err(TenancyError::InvitationRateLimited { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 600);
            }
            other => panic!("{other:?}"),
        }
    }
}
