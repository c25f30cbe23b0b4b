//! A transaction on either backend. Dropping an uncommitted transaction rolls it back.

use tenantry_core::Clock;

use crate::{
    Backend, DbError, FromRow, Statement, postgres,
    sqlite::{self, SqliteConn},
};

/// PostgreSQL (sqlx) futures are several KiB; they are boxed where they are awaited so that
/// the futures of every caller (request handlers included) stay small on both backends —
/// a large future is copied whole each time it is moved (into a task, a `Box`, a combinator).
pub struct Tx {
    inner: Inner,
    /// Whether a statement changed something: such a transaction commits the task's
    /// [`crate::EffectMark`], if any, with its changes.
    wrote: bool,
    /// The clock of the [`crate::Db`] that began it ([`Tx::now`]).
    clock: Clock,
}

enum Inner {
    Sqlite {
        conn: SqliteConn,
        open: bool,
    },
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    /// After a PostgreSQL commit moved the transaction out (only `Drop` sees this).
    Closed,
}

fn closed() -> DbError {
    DbError::Other(anyhow::anyhow!("transaction already finished"))
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &self.backend())
            .finish()
    }
}

impl Tx {
    pub(crate) fn sqlite(conn: SqliteConn) -> Self {
        Self {
            inner: Inner::Sqlite { conn, open: true },
            wrote: false,
            clock: Clock::system(),
        }
    }

    pub(crate) fn pg(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Self {
        Self {
            inner: Inner::Pg(tx),
            wrote: false,
            clock: Clock::system(),
        }
    }

    /// Gives the transaction the clock of the `Db` that began it.
    pub(crate) fn with_clock(mut self, clock: &Clock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// The current time by the clock of the `Db` that began this transaction.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite { .. } => Backend::Sqlite,
            Inner::Pg(_) | Inner::Closed => Backend::Postgres,
        }
    }

    pub async fn fetch_all<T: FromRow, S: Statement>(
        &mut self,
        statement: &S,
    ) -> Result<Vec<T>, DbError> {
        let (sql, values) = statement.to_sql(self.backend());
        match &mut self.inner {
            Inner::Sqlite { conn, .. } => sqlite::fetch(conn, &sql, &values, None),
            Inner::Pg(tx) => Box::pin(postgres::fetch(tx, sql.into_owned(), values)).await,
            Inner::Closed => Err(closed()),
        }
    }

    pub async fn fetch_optional<T: FromRow, S: Statement>(
        &mut self,
        statement: &S,
    ) -> Result<Option<T>, DbError> {
        let (sql, values) = statement.to_sql(self.backend());
        match &mut self.inner {
            Inner::Sqlite { conn, .. } => Ok(sqlite::fetch(conn, &sql, &values, Some(1))?.pop()),
            Inner::Pg(tx) => Box::pin(postgres::fetch_optional(tx, sql.into_owned(), values)).await,
            Inner::Closed => Err(closed()),
        }
    }

    /// Exactly one row, else [`DbError::RowNotFound`].
    pub async fn fetch_one<T: FromRow, S: Statement>(
        &mut self,
        statement: &S,
    ) -> Result<T, DbError> {
        self.fetch_optional(statement)
            .await?
            .ok_or(DbError::RowNotFound)
    }

    /// Runs an insert, update or delete; returns the number of rows affected.
    pub async fn execute<S: Statement>(&mut self, statement: &S) -> Result<u64, DbError> {
        let (sql, values) = statement.to_sql(self.backend());
        let changed = match &mut self.inner {
            Inner::Sqlite { conn, .. } => sqlite::execute(conn, &sql, &values),
            Inner::Pg(tx) => Box::pin(postgres::execute(tx, sql.into_owned(), values)).await,
            Inner::Closed => Err(closed()),
        }?;
        self.wrote |= changed > 0;
        Ok(changed)
    }

    /// Marks `select` as a read whose rows this transaction will write back: the rows stay
    /// locked until it ends (`FOR UPDATE` on PostgreSQL). SQLite needs nothing: a write
    /// transaction holds the database's one writer lock from `BEGIN IMMEDIATE` on.
    pub fn for_update(&self, select: &mut sea_query::SelectStatement) {
        if self.backend() == Backend::Postgres {
            select.lock(sea_query::LockType::Update);
        }
    }

    /// Locks the rows `select` finds until the transaction ends, reading nothing: a
    /// serialisation point (e.g. one tenant's counters) for PostgreSQL; SQLite's writer lock
    /// already is one.
    pub async fn lock_rows(
        &mut self,
        mut select: sea_query::SelectStatement,
    ) -> Result<(), DbError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        select.lock(sea_query::LockType::Update);
        let (sql, values) = select.to_sql(Backend::Postgres);
        match &mut self.inner {
            Inner::Pg(tx) => Box::pin(postgres::execute(tx, sql.into_owned(), values))
                .await
                .map(drop),
            Inner::Sqlite { .. } => Ok(()),
            Inner::Closed => Err(closed()),
        }
    }

    /// Holds the transaction-scoped advisory lock `key` until the transaction ends
    /// (`pg_advisory_xact_lock` on PostgreSQL; SQLite's writer lock serialises already).
    pub async fn advisory_lock(&mut self, key: i64) -> Result<(), DbError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        // A number formatted into the SQL: nothing a caller could inject.
        self.run_script(&format!("SELECT pg_advisory_xact_lock({key})"))
            .await
    }

    /// Runs parameterless SQL (one or more statements). For migrations; never user input.
    /// Counts as a write (see [`Tx::commit`]).
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), DbError> {
        self.wrote = true;
        self.run_script(sql).await
    }

    async fn run_script(&mut self, sql: &str) -> Result<(), DbError> {
        match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn.execute_batch(sql).map_err(sqlite::map_error),
            Inner::Pg(tx) => {
                use sqlx::Executor;
                Box::pin(tx.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))))
                    .await
                    .map(|_| ())
                    .map_err(postgres::map_error)
            }
            Inner::Closed => Err(closed()),
        }
    }

    /// Confines the rest of this transaction to `scope`'s tenant (PostgreSQL: switches to the
    /// application role and sets `app.tenant_id`). Used when one transaction both writes
    /// platform rows and creates a tenant, e.g. sign-up with a first tenant.
    pub async fn enter_tenant(&mut self, scope: &crate::TenantScope) -> Result<(), DbError> {
        match &mut self.inner {
            Inner::Sqlite { .. } => Ok(()),
            Inner::Pg(_) => {
                let sql = format!(
                    "SET LOCAL ROLE {}; SELECT set_config('app.tenant_id', '{}', true)",
                    crate::APP_ROLE,
                    scope.tenant_id().as_uuid()
                );
                self.run_script(&sql).await
            }
            Inner::Closed => Err(closed()),
        }
    }

    /// Commits. A transaction that changed something first runs the task's
    /// [`crate::EffectMark`] (an idempotent request's "applied" record), so both commit or
    /// neither does.
    pub async fn commit(mut self) -> Result<(), DbError> {
        if self.wrote
            && let Some(mark) = crate::EffectMark::current()
        {
            mark.apply(&mut self).await?;
        }
        match &mut self.inner {
            Inner::Sqlite { conn, open } => {
                sqlite::run_cached(conn, "COMMIT")?;
                *open = false;
                Ok(())
            }
            Inner::Closed => Err(closed()),
            Inner::Pg(_) => {
                let Inner::Pg(tx) = std::mem::replace(&mut self.inner, Inner::Closed) else {
                    return Ok(());
                };
                Box::pin(tx.commit()).await.map_err(postgres::map_error)
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Inner::Sqlite { conn, open: true } = &mut self.inner {
            // A failed ROLLBACK leaves nothing to undo: SQLite has already ended the transaction.
            let _ = sqlite::run_cached(conn, "ROLLBACK");
        }
        // sqlx rolls back a dropped PostgreSQL transaction itself.
    }
}
