//! The outbox: enqueue inside the caller's transaction, deliver in the background.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;
use rand::Rng;
use sea_query::{Expr, ExprTrait, Func, Order, Query};
use secrecy::SecretString;
use tenantry_core::crypto::MasterKey;
use tenantry_db::{Db, DbError, FromRow, InsertRow, Row, Tx, periodic::PeriodicTask};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    MailConfig, Templates,
    templates::Rendered,
    transport::{SendError, Transport},
};

/// How long a claimed message is reserved for one delivery attempt.
const LEASE: TimeDelta = TimeDelta::seconds(120);
/// Idle polling interval of the worker (it is also woken after each enqueue).
const POLL: Duration = Duration::from_secs(2);
/// Delivered mail rows (bodies are already wiped) are kept this long.
pub const KEEP_SENT_MAIL: TimeDelta = TimeDelta::days(7);
/// How often delivered mail is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Messages claimed per pass.
const BATCH: u64 = 16;

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    to: String,
    #[serde(flatten)]
    rendered: Rendered,
}

/// Queue figures (for tests and operations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

struct Inner {
    db: Db,
    key: MasterKey,
    templates: Templates,
    transport: Transport,
    from: Mailbox,
    max_attempts: i64,
    wake: Arc<Notify>,
}

/// The e-mail service. Cheap to clone.
#[derive(Clone)]
pub struct Mailer(Arc<Inner>);

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("transport", &self.0.transport)
            .field("from", &self.0.from.to_string())
            .finish()
    }
}

fn outbox_context(id: Uuid) -> String {
    format!("mail_outbox:{id}")
}

impl Mailer {
    /// The mailer of the `mail` section. `smtp_url` unset: messages are written under
    /// `<data_dir>/mail/`. `public_url` is the base of links in templates.
    pub fn new(
        db: Db,
        config: &MailConfig,
        smtp_url: Option<&SecretString>,
        data_dir: &Path,
        public_url: &str,
        key: MasterKey,
    ) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow!("mail.from {:?} is not a mailbox: {e}", config.from))?;
        let templates = Templates::load(config.templates_dir.as_deref(), "Tenantry", public_url)?;
        let transport = Transport::from_config(config, smtp_url, data_dir)?;
        tracing::info!(transport = transport.describe(), "mail delivery configured");
        Ok(Self(Arc::new(Inner {
            db,
            key,
            templates,
            transport,
            from,
            max_attempts: i64::from(Ord::max(config.max_attempts, 1)),
            wake: Arc::new(Notify::new()),
        })))
    }

    /// Renders `template` for `to` and queues it in `tx`: the message is sent only if the
    /// transaction commits. Call [`Mailer::wake`] after committing for prompt delivery.
    pub async fn enqueue(
        &self,
        tx: &mut Tx,
        to: &str,
        template: &str,
        context: &serde_json::Value,
    ) -> anyhow::Result<Uuid> {
        let rendered = self.0.templates.render(template, context)?;
        let id = Uuid::now_v7();
        let envelope = serde_json::to_vec(&Envelope {
            to: to.to_owned(),
            rendered,
        })?;
        let payload = self.0.key.seal(&envelope, &outbox_context(id));
        let now = tx.now();
        tx.execute(Query::insert().into_table("mail_outbox").row([
            ("id", id.into()),
            ("template", template.into()),
            ("payload", payload.into()),
            ("next_attempt_at", now.into()),
            ("created_at", now.into()),
        ]))
        .await
        .context("queueing an e-mail")?;
        Ok(id)
    }

    /// Nudges the worker (after the enqueuing transaction committed).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Delivers every due message, pass after pass while passes come back full.
    pub async fn deliver_all_due(&self) -> anyhow::Result<()> {
        // A full batch: there may be more.
        while self.deliver_due().await? as u64 >= BATCH {}
        Ok(())
    }

    /// Delivery (every two seconds when idle, at once after [`Mailer::wake`]) and the pruning
    /// of delivered mail.
    pub fn periodic_tasks(&self) -> Vec<PeriodicTask> {
        let mailer = self.clone();
        let deliver = PeriodicTask::new("mail.deliver", POLL, move |_| {
            let mailer = mailer.clone();
            async move { mailer.deliver_all_due().await }
        })
        .woken_by(self.0.wake.clone());
        let mailer = self.clone();
        let prune = PeriodicTask::new("mail.prune_sent", PRUNE_EVERY, move |_| {
            let mailer = mailer.clone();
            async move {
                mailer
                    .prune_sent()
                    .await
                    .context("pruning delivered mail")
                    .map(|_| ())
            }
        })
        .first_after(Duration::from_secs(60));
        vec![deliver, prune]
    }

    /// Deletes delivered and failed messages (bodies already wiped) older than
    /// [`KEEP_SENT_MAIL`]; returns how many. Safe to run on every node at once.
    pub async fn prune_sent(&self) -> Result<u64, DbError> {
        let mut tx = self.0.db.begin_write().await?;
        let pruned = tx
            .execute(
                Query::delete()
                    .from_table("mail_outbox")
                    .and_where(Expr::col("status").ne("pending"))
                    .and_where(Expr::col("created_at").lt(tx.now() - KEEP_SENT_MAIL)),
            )
            .await?;
        tx.commit().await?;
        if pruned > 0 {
            tracing::info!(mail = pruned, "pruned delivered mail");
        }
        Ok(pruned)
    }

    /// One pass: claims due messages and attempts each once. Returns how many were attempted.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let now = self.0.db.now();
        let due: Vec<Uuid> = self
            .0
            .db
            .read_all(
                Query::select()
                    .column("id")
                    .from("mail_outbox")
                    .and_where(Expr::col("status").eq("pending"))
                    .and_where(Expr::col("next_attempt_at").lte(now))
                    .and_where(
                        Expr::col("locked_until")
                            .is_null()
                            .or(Expr::col("locked_until").lt(now)),
                    )
                    .order_by("next_attempt_at", Order::Asc)
                    .limit(BATCH),
            )
            .await?;
        let mut attempted = 0;
        for id in due {
            if let Some(claimed) = self.claim(id).await? {
                attempted += 1;
                self.attempt(claimed).await?;
            }
        }
        Ok(attempted)
    }

    /// Reserves one message for this node (another node may have taken it meanwhile).
    async fn claim(&self, id: Uuid) -> anyhow::Result<Option<Claimed>> {
        let now = self.0.db.now();
        let mut tx = self.0.db.begin_write().await?;
        let updated = tx
            .execute(
                Query::update()
                    .table("mail_outbox")
                    .value("locked_until", now + LEASE)
                    .value("attempts", Expr::col("attempts").add(1))
                    .and_where(Expr::col("id").eq(id))
                    .and_where(Expr::col("status").eq("pending"))
                    .and_where(
                        Expr::col("locked_until")
                            .is_null()
                            .or(Expr::col("locked_until").lt(now)),
                    ),
            )
            .await?;
        if updated != 1 {
            return Ok(None);
        }
        let claimed: Option<Claimed> = tx
            .fetch_optional(
                Query::select()
                    .columns(["id", "template", "payload", "attempts"])
                    .from("mail_outbox")
                    .and_where(Expr::col("id").eq(id)),
            )
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn attempt(&self, claimed: Claimed) -> anyhow::Result<()> {
        let result = match claimed
            .payload
            .as_deref()
            .ok_or_else(|| anyhow!("no payload"))
            .and_then(|p| self.0.key.open(p, &outbox_context(claimed.id)))
            .and_then(|plain| Ok(serde_json::from_slice::<Envelope>(&plain)?))
        {
            Ok(envelope) => {
                self.0
                    .transport
                    .send(&self.0.from, &envelope.to, &envelope.rendered, claimed.id)
                    .await
            }
            Err(e) => Err(SendError {
                permanent: true,
                message: format!("unreadable message: {e:#}"),
            }),
        };
        let now = self.0.db.now();
        let mut update = Query::update();
        update
            .table("mail_outbox")
            .value("locked_until", Option::<DateTime<Utc>>::None)
            .and_where(Expr::col("id").eq(claimed.id));
        match result {
            Ok(()) => {
                metrics::counter!("mail_messages_total", "outcome" => "sent").increment(1);
                tracing::info!(mail_id = %claimed.id, template = claimed.template, "e-mail sent");
                // The sealed body may carry a one-time link: keep nothing once delivered.
                update
                    .value("status", "sent")
                    .value("sent_at", now)
                    .value("payload", Option::<Vec<u8>>::None)
                    .value("last_error", Option::<String>::None);
            }
            Err(e) if e.permanent || claimed.attempts >= self.0.max_attempts => {
                metrics::counter!("mail_messages_total", "outcome" => "failed").increment(1);
                tracing::error!(mail_id = %claimed.id, template = claimed.template,
                    attempts = claimed.attempts, error = e.message, "e-mail failed for good");
                update
                    .value("status", "failed")
                    .value("payload", Option::<Vec<u8>>::None)
                    .value("last_error", truncate(&e.message));
            }
            Err(e) => {
                metrics::counter!("mail_messages_total", "outcome" => "retry").increment(1);
                let delay = backoff(claimed.attempts);
                tracing::warn!(mail_id = %claimed.id, template = claimed.template,
                    attempts = claimed.attempts, retry_in_secs = delay.num_seconds(),
                    error = e.message, "e-mail attempt failed; will retry");
                update
                    .value("next_attempt_at", now + delay)
                    .value("last_error", truncate(&e.message));
            }
        }
        let mut tx = self.0.db.begin_write().await?;
        tx.execute(&update).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts of the outbox by status.
    pub async fn stats(&self) -> anyhow::Result<OutboxStats> {
        let rows: Vec<(String, i64)> = self
            .0
            .db
            .read_all(
                Query::select()
                    .column("status")
                    .expr(Func::count(Expr::col("id")))
                    .from("mail_outbox")
                    .group_by_col("status"),
            )
            .await?;
        let mut stats = OutboxStats::default();
        for (status, count) in rows {
            match status.as_str() {
                "pending" => stats.pending = count,
                "sent" => stats.sent = count,
                _ => stats.failed += count,
            }
        }
        Ok(stats)
    }
}

/// 15 s, 30 s, 1 min, … capped at one hour, with ±20 % jitter so retries of many messages
/// after an outage spread out.
fn backoff(attempts: i64) -> TimeDelta {
    let exponent = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let base = Ord::min(15i64 << exponent, 3600);
    let jitter = rand::rng().random_range(0.8..1.2);
    TimeDelta::milliseconds((base as f64 * 1000.0 * jitter) as i64)
}

fn truncate(message: &str) -> String {
    message.chars().take(500).collect()
}

struct Claimed {
    id: Uuid,
    template: String,
    payload: Option<Vec<u8>>,
    attempts: i64,
}

impl FromRow for Claimed {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.uuid()?,
            template: row.string()?,
            payload: row.opt_bytes()?,
            attempts: row.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs = |n| backoff(n).num_milliseconds() as f64 / 1000.0;
        assert!((12.0..=18.0).contains(&secs(1)));
        assert!((24.0..=36.0).contains(&secs(2)));
        assert!((2880.0..=4320.0).contains(&secs(9)));
        assert!(secs(40) <= 4320.0);
    }
}
