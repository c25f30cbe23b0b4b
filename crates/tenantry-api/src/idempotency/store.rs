//! The `idempotency_keys` rows: reserve, take over, mark applied, complete, release, prune.
//!
//! A row moves `in_progress` → `applied` (in the same transaction as the request's first
//! write, through [`tenantry_db::EffectMark`]) → `completed` (response stored). Every change
//! is conditional on the `lease` of the request that holds the row, so a request whose
//! reservation was taken over can neither mark nor complete it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use tenantry_core::crypto::MasterKey;
use tenantry_db::{AdminScope, Db, DbError, EffectMark, FromRow, InsertRow, Row, TenantScope, Tx};
use uuid::Uuid;

const TABLE: &str = "idempotency_keys";
/// How long a first response is kept and replayed (API.md: 24 h).
pub const KEEP: TimeDelta = TimeDelta::hours(24);

const IN_PROGRESS: &str = "in_progress";
const APPLIED: &str = "applied";
const COMPLETED: &str = "completed";

/// Whose key it is: the tenant the request is confined to (none outside tenants) and the
/// caller acting (`user:<id>` or `api_key:<id>`).
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant: Option<TenantScope>,
    pub caller: String,
}

/// A row this request holds: its effects may commit and its response may be stored.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: Uuid,
    lease: Uuid,
    owner: Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InProgress,
    Applied,
    Completed,
}

/// An existing row.
#[derive(Debug)]
pub struct KeyRow {
    pub id: Uuid,
    pub fingerprint: Vec<u8>,
    pub state: State,
    lease: Uuid,
    pub locked_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    status: Option<i64>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl KeyRow {
    const COLUMNS: [&'static str; 9] = [
        "id",
        "fingerprint",
        "state",
        "lease",
        "locked_until",
        "expires_at",
        "response_status",
        "response_content_type",
        "response_body",
    ];
}

impl FromRow for KeyRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        let id = row.uuid()?;
        let fingerprint = row.bytes()?;
        let state = match row.string()?.as_str() {
            IN_PROGRESS => State::InProgress,
            APPLIED => State::Applied,
            COMPLETED => State::Completed,
            other => {
                return Err(DbError::Other(anyhow::anyhow!(
                    "unknown idempotency key state {other:?}"
                )));
            }
        };
        Ok(Self {
            id,
            fingerprint,
            state,
            lease: row.uuid()?,
            locked_until: row.time()?,
            expires_at: row.time()?,
            status: row.opt_i64()?,
            content_type: row.opt_string()?,
            body: row.opt_bytes()?,
        })
    }
}

/// A stored first response, opened. Its body may hold a secret shown once: `Debug` omits it.
pub struct Stored {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

fn seal_context(id: Uuid) -> String {
    format!("idempotency:{id}")
}

/// The rows of one owner's key.
fn owned(owner: &Owner, key: &str) -> sea_query::Condition {
    let tenant = match &owner.tenant {
        Some(scope) => Expr::col("tenant_id").eq(scope.tenant_id()),
        None => Expr::col("tenant_id").is_null(),
    };
    sea_query::Condition::all()
        .add(Expr::col("caller").eq(owner.caller.as_str()))
        .add(Expr::col("client_key").eq(key))
        .add(tenant)
}

/// Database access for idempotency keys, with the key that seals stored responses.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    key: MasterKey,
    lease: Duration,
}

impl Store {
    /// `lease`: how long a reservation stays with its request before another may take it
    /// over (longer than any request may run).
    pub fn new(db: Db, key: MasterKey, lease: Duration) -> Self {
        Self { db, key, lease }
    }

    async fn write(&self, owner: &Owner) -> Result<Tx, DbError> {
        match &owner.tenant {
            Some(scope) => self.db.begin_tenant(scope).await,
            None => self.db.begin_write().await,
        }
    }

    async fn read(
        &self,
        owner: &Owner,
        query: &SelectStatement,
    ) -> Result<Option<KeyRow>, DbError> {
        match &owner.tenant {
            Some(scope) => self.db.read_tenant_optional(scope, query).await,
            None => self.db.read_optional(query).await,
        }
    }

    fn locked_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + TimeDelta::from_std(self.lease).unwrap_or(TimeDelta::minutes(1))
    }

    /// The current time by the deployment's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.db.now()
    }

    /// Inserts an `in_progress` row; `None` when the owner already has one for `key`.
    pub async fn try_reserve(
        &self,
        owner: &Owner,
        key: &str,
        fingerprint: &[u8],
    ) -> Result<Option<Reservation>, DbError> {
        let (id, lease, now) = (Uuid::now_v7(), Uuid::now_v7(), self.db.now());
        let mut tx = self.write(owner).await?;
        let inserted = tx
            .execute(
                Query::insert()
                    .into_table(TABLE)
                    .row([
                        ("id", id.into()),
                        (
                            "tenant_id",
                            owner
                                .tenant
                                .as_ref()
                                .map(|s| s.tenant_id().as_uuid())
                                .into(),
                        ),
                        ("caller", owner.caller.as_str().into()),
                        ("client_key", key.into()),
                        ("fingerprint", fingerprint.to_vec().into()),
                        ("state", IN_PROGRESS.into()),
                        ("lease", lease.into()),
                        ("locked_until", self.locked_until(now).into()),
                        ("created_at", now.into()),
                        ("expires_at", (now + KEEP).into()),
                    ])
                    .on_conflict(OnConflict::new().do_nothing().to_owned()),
            )
            .await?;
        tx.commit().await?;
        Ok((inserted == 1).then(|| Reservation {
            id,
            lease,
            owner: owner.clone(),
        }))
    }

    pub async fn find(&self, owner: &Owner, key: &str) -> Result<Option<KeyRow>, DbError> {
        self.read(
            owner,
            Query::select()
                .columns(KeyRow::COLUMNS)
                .from(TABLE)
                .cond_where(owned(owner, key)),
        )
        .await
    }

    /// Takes over an `in_progress` row whose holder is gone (its lease ran out). Safe: no
    /// effect of the old holder committed (it would have marked the row `applied`), and none
    /// can commit any more (its mark names the old lease).
    pub async fn take_over(
        &self,
        owner: &Owner,
        row: &KeyRow,
    ) -> Result<Option<Reservation>, DbError> {
        let lease = Uuid::now_v7();
        let mut tx = self.write(owner).await?;
        let taken = tx
            .execute(
                Query::update()
                    .table(TABLE)
                    .value("lease", lease)
                    .value("locked_until", self.locked_until(tx.now()))
                    .and_where(Expr::col("id").eq(row.id))
                    .and_where(Expr::col("lease").eq(row.lease))
                    .and_where(Expr::col("state").eq(IN_PROGRESS)),
            )
            .await?;
        tx.commit().await?;
        Ok((taken == 1).then(|| Reservation {
            id: row.id,
            lease,
            owner: owner.clone(),
        }))
    }

    /// Deletes a row past its 24 hours that housekeeping has not pruned yet.
    pub async fn delete_expired(&self, owner: &Owner, id: Uuid) -> Result<(), DbError> {
        let mut tx = self.write(owner).await?;
        tx.execute(
            Query::delete()
                .from_table(TABLE)
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("expires_at").lte(tx.now())),
        )
        .await?;
        tx.commit().await
    }

    /// The statement that marks `reservation` applied in each write transaction of its request.
    pub fn mark(&self, reservation: &Reservation) -> EffectMark {
        EffectMark::new(
            Query::update()
                .table(TABLE)
                .value("state", APPLIED)
                .and_where(Expr::col("id").eq(reservation.id))
                .and_where(Expr::col("lease").eq(reservation.lease))
                .and_where(Expr::col("state").is_in([IN_PROGRESS, APPLIED]))
                .to_owned(),
            // A typed UUID: nothing to inject.
            Some(format!(
                "SELECT set_config('app.idempotency_id', '{}', true)",
                reservation.id
            )),
        )
    }

    /// Stores the response (sealed); `false` when the reservation was lost.
    pub async fn complete(
        &self,
        reservation: &Reservation,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<bool, DbError> {
        let sealed = self.key.seal(body, &seal_context(reservation.id));
        let mut tx = self.write(&reservation.owner).await?;
        let done = tx
            .execute(
                Query::update()
                    .table(TABLE)
                    .value("state", COMPLETED)
                    .value("response_status", i64::from(status))
                    .value("response_content_type", content_type)
                    .value("response_body", sealed)
                    .and_where(Expr::col("id").eq(reservation.id))
                    .and_where(Expr::col("lease").eq(reservation.lease))
                    .and_where(Expr::col("state").is_in([IN_PROGRESS, APPLIED])),
            )
            .await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Deletes the row if no effect of the request committed (so the client may retry);
    /// `false` when it did (or the reservation was lost).
    pub async fn release(&self, reservation: &Reservation) -> Result<bool, DbError> {
        let mut tx = self.write(&reservation.owner).await?;
        let released = tx
            .execute(
                Query::delete()
                    .from_table(TABLE)
                    .and_where(Expr::col("id").eq(reservation.id))
                    .and_where(Expr::col("lease").eq(reservation.lease))
                    .and_where(Expr::col("state").eq(IN_PROGRESS)),
            )
            .await?;
        tx.commit().await?;
        Ok(released == 1)
    }

    /// The stored response of a completed row.
    pub fn open(&self, row: KeyRow) -> Result<Stored, DbError> {
        let (Some(status), Some(sealed)) = (row.status, row.body) else {
            return Err(DbError::Other(anyhow::anyhow!(
                "completed idempotency key {} has no response",
                row.id
            )));
        };
        let body = self
            .key
            .open(&sealed, &seal_context(row.id))
            .map_err(|e| DbError::Other(e.context("opening a stored idempotent response")))?;
        Ok(Stored {
            status: u16::try_from(status).unwrap_or(500),
            content_type: row.content_type,
            body,
        })
    }
}

/// Deletes rows older than 24 hours, of every tenant. Safe to run on every node at once.
pub async fn prune(db: &Db, scope: &AdminScope) -> Result<u64, DbError> {
    let mut tx = db.begin_admin(scope).await?;
    let pruned = tx
        .execute(
            Query::delete()
                .from_table(TABLE)
                .and_where(Expr::col("expires_at").lt(tx.now())),
        )
        .await?;
    tx.commit().await?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_insert_or_do_nothing_on_both_backends() {
        let mut insert = Query::insert();
        insert
            .into_table(TABLE)
            .row([("id", Uuid::nil().into())])
            .on_conflict(OnConflict::new().do_nothing().to_owned());
        for backend in [tenantry_db::Backend::Sqlite, tenantry_db::Backend::Postgres] {
            let sql = match backend {
                tenantry_db::Backend::Sqlite => insert.to_string(sea_query::SqliteQueryBuilder),
                tenantry_db::Backend::Postgres => insert.to_string(sea_query::PostgresQueryBuilder),
            };
            let words = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(words.ends_with("ON CONFLICT DO NOTHING"), "{sql}");
        }
    }
}
