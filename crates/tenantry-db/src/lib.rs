//! Database access for both backends through one query path.
//!
//! Queries are built once with sea-query and rendered for the connected dialect. SQLite is
//! driven by rusqlite (in-process, no thread hop: a point read costs microseconds) with one
//! writer connection and a small pool of readers; PostgreSQL by sqlx. Code above this crate
//! sees only [`Db`], [`Tx`] and [`Row`], never a driver type.
//!
//! Tenant data is reached through [`Db::begin_tenant`] with a [`TenantScope`]; on PostgreSQL
//! that transaction runs as the non-owner role `tenantry_app` with `app.tenant_id` set, so
//! row-level security enforces the same boundary the scope does.

mod bind;
pub mod config;
mod effect;
mod error;
mod insert;
mod like;
pub mod migrate;
pub mod migrations;
pub mod periodic;
mod postgres;
mod prepared;
mod row;
mod scope;
mod sqlite;
mod tx;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sea_query::{PostgresQueryBuilder, QueryStatementWriter, SqliteQueryBuilder, Values};
use secrecy_free::ExposeUrl;
use tenantry_core::{Clock, UserId};

pub use config::DatabaseConfig;
pub use effect::EffectMark;
pub use error::DbError;
pub use insert::InsertRow;
pub use like::contains_pattern;
pub use prepared::{Bound, Prepared, Statement};
pub use row::{FromRow, Row};
pub use scope::{
    Actor, AdminScope, Placement, ProjectAccess, ProjectFilter, TenantScope, UserScope,
};
pub use tx::Tx;

/// Which SQL engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The role tenant transactions run as on PostgreSQL; it owns nothing and cannot bypass RLS.
pub const APP_ROLE: &str = "tenantry_app";

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Pool>,
    /// Where services read the current time ([`Db::now`]); tests advance it.
    clock: Clock,
}

#[derive(Debug)]
enum Pool {
    Sqlite(sqlite::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A database URL kept out of logs (PostgreSQL URLs carry passwords).
mod secrecy_free {
    pub trait ExposeUrl {
        fn redacted(&self) -> String;
    }
    impl ExposeUrl for str {
        fn redacted(&self) -> String {
            match (self.find("://"), self.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}://***{}", &self[..scheme], &self[at..])
                }
                _ => self.to_owned(),
            }
        }
    }
}

impl Db {
    /// Opens a pool for `url` (`sqlite://PATH` or `postgres://…`). SQLite files and their
    /// directory are created when missing.
    pub async fn connect(url: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let pool = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Pool::Sqlite(
                sqlite::SqlitePool::open(path, config)
                    .with_context(|| format!("opening SQLite database {path}"))?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(
                postgres::connect(url, config)
                    .await
                    .with_context(|| format!("connecting to {}", url.redacted()))?,
            )
        } else {
            anyhow::bail!(
                "unsupported database URL {}: expected sqlite://PATH or postgres://…",
                url.redacted()
            );
        };
        Ok(Self {
            inner: Arc::new(pool),
            clock: Clock::system(),
        })
    }

    /// This handle reading the time from `clock` (a test's `ManualClock`), as do its clones
    /// and the transactions they begin.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time by this deployment's clock: what services compare expiries with and
    /// stamp rows with.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn backend(&self) -> Backend {
        match &*self.inner {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Renders a statement for this backend.
    pub fn render<S: QueryStatementWriter>(&self, statement: &S) -> (String, Values) {
        render(self.backend(), statement)
    }

    /// Answers when the database can serve a query, within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), DbError> {
        let check = async {
            match &*self.inner {
                Pool::Sqlite(pool) => pool.ping().await,
                Pool::Postgres(pool) => postgres::ping(pool).await,
            }
        };
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| DbError::Unavailable("ping timed out".into()))?
    }

    /// A read-only view of platform tables (users, sessions). Tenant tables need a scope.
    pub async fn begin_read(&self) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) => pool.begin_read().await,
            Pool::Postgres(pool) => postgres::begin(pool, postgres::Context::Platform).await,
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A read-write transaction on platform tables.
    pub async fn begin_write(&self) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) => pool.begin_write().await,
            Pool::Postgres(pool) => postgres::begin(pool, postgres::Context::Platform).await,
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A read-write transaction confined to one tenant's rows.
    pub async fn begin_tenant(&self, scope: &TenantScope) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) => pool.begin_write().await,
            Pool::Postgres(pool) => {
                postgres::begin(pool, postgres::Context::Tenant(scope.tenant_id())).await
            }
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A read-only transaction confined to one tenant's rows (on SQLite it does not take
    /// the writer, so reads never queue behind writes).
    pub async fn begin_tenant_read(&self, scope: &TenantScope) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) => pool.begin_read().await,
            Pool::Postgres(pool) => {
                postgres::begin(pool, postgres::Context::Tenant(scope.tenant_id())).await
            }
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A transaction that sees the rows one user may see across tenants (their memberships
    /// and the tenants they belong to), used for "my tenants" and for authorization.
    pub async fn begin_user(&self, scope: &UserScope, write: bool) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) if write => pool.begin_write().await,
            Pool::Sqlite(pool) => pool.begin_read().await,
            Pool::Postgres(pool) => {
                postgres::begin(pool, postgres::Context::User(scope.user_id())).await
            }
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A read-write transaction that sees every tenant's rows: platform administration and
    /// purges only (on PostgreSQL it runs as the request role with `app.platform_admin` set,
    /// which the tenant tables' `*_platform_admin` policies admit).
    pub async fn begin_admin(&self, _scope: &AdminScope) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) => pool.begin_write().await,
            Pool::Postgres(pool) => postgres::begin(pool, postgres::Context::Admin).await,
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// A transaction (read-only unless `write`) that sees exactly the tenant rows whose secret (an API key,
    /// an invitation token) hashes to `secret_hash`: how a bearer of such a secret finds its
    /// tenant. On PostgreSQL the tables that hold secrets admit the row whose hash column
    /// equals `app.secret_hash` (see `POSTGRES_SECRET_LOOKUP`); once the tenant is known the
    /// caller confines the transaction to it with [`Tx::enter_tenant`].
    pub async fn begin_secret_lookup(
        &self,
        secret_hash: &[u8; 32],
        write: bool,
    ) -> Result<Tx, DbError> {
        let tx = match &*self.inner {
            Pool::Sqlite(pool) if write => pool.begin_write().await,
            Pool::Sqlite(pool) => pool.begin_read().await,
            Pool::Postgres(pool) => {
                let hex = secret_hash.iter().map(|b| format!("{b:02x}")).collect();
                postgres::begin(pool, postgres::Context::Secret(hex)).await
            }
        }?;
        Ok(tx.with_clock(&self.clock))
    }

    /// One autocommit read of platform tables (no explicit transaction: a single round trip
    /// on PostgreSQL). Tenant tables show no rows here; they need [`Db::begin_tenant_read`].
    pub async fn read_optional<T: FromRow, S: Statement>(
        &self,
        statement: &S,
    ) -> Result<Option<T>, DbError> {
        Ok(self
            .read_scoped(ReadScope::Platform, statement, Some(1))
            .await?
            .pop())
    }

    /// Like [`Db::read_optional`], for many rows.
    pub async fn read_all<T: FromRow, S: Statement>(
        &self,
        statement: &S,
    ) -> Result<Vec<T>, DbError> {
        self.read_scoped(ReadScope::Platform, statement, None).await
    }

    /// One read confined to a tenant. SQLite runs it as a single autocommit statement (no
    /// BEGIN/COMMIT round); PostgreSQL runs it in a tenant transaction, as RLS requires.
    pub async fn read_tenant_all<T: FromRow, S: Statement>(
        &self,
        scope: &TenantScope,
        statement: &S,
    ) -> Result<Vec<T>, DbError> {
        self.read_scoped(ReadScope::Tenant(scope), statement, None)
            .await
    }

    /// Like [`Db::read_tenant_all`], for at most one row.
    pub async fn read_tenant_optional<T: FromRow, S: Statement>(
        &self,
        scope: &TenantScope,
        statement: &S,
    ) -> Result<Option<T>, DbError> {
        Ok(self
            .read_scoped(ReadScope::Tenant(scope), statement, Some(1))
            .await?
            .pop())
    }

    /// One read of what a user may see across tenants (see [`Db::begin_user`]).
    pub async fn read_user_all<T: FromRow, S: Statement>(
        &self,
        scope: &UserScope,
        statement: &S,
    ) -> Result<Vec<T>, DbError> {
        self.read_scoped(ReadScope::User(scope), statement, None)
            .await
    }

    async fn read_scoped<T: FromRow, S: Statement>(
        &self,
        scope: ReadScope<'_>,
        statement: &S,
        max_rows: Option<usize>,
    ) -> Result<Vec<T>, DbError> {
        match &*self.inner {
            Pool::Sqlite(pool) => {
                let (sql, values) = statement.to_sql(Backend::Sqlite);
                pool.read(&sql, &values, max_rows).await
            }
            // Boxed: sqlx's futures are several KiB and would otherwise make every caller's
            // future that large on SQLite too (see `Tx`).
            Pool::Postgres(pool) => {
                Box::pin(self.read_scoped_pg(pool, scope, statement, max_rows)).await
            }
        }
    }

    async fn read_scoped_pg<T: FromRow, S: Statement>(
        &self,
        pool: &sqlx::PgPool,
        scope: ReadScope<'_>,
        statement: &S,
        max_rows: Option<usize>,
    ) -> Result<Vec<T>, DbError> {
        let scoped = match scope {
            ReadScope::Platform => None,
            ReadScope::Tenant(scope) => Some(self.begin_tenant_read(scope).await?),
            ReadScope::User(scope) => Some(self.begin_user(scope, false).await?),
        };
        let mut rows: Vec<T> = match scoped {
            // Autocommit: no tenant or user context is needed, so no transaction.
            None => {
                let (sql, values) = statement.to_sql(Backend::Postgres);
                let mut conn = pool.acquire().await.map_err(postgres::map_error)?;
                postgres::fetch(&mut conn, sql.into_owned(), values).await?
            }
            Some(mut tx) => {
                let rows = tx.fetch_all(statement).await?;
                tx.commit().await?;
                rows
            }
        };
        if let Some(max) = max_rows {
            rows.truncate(max);
        }
        Ok(rows)
    }

    /// Connection-pool figures for metrics.
    pub fn pool_stats(&self) -> PoolStats {
        match &*self.inner {
            Pool::Sqlite(pool) => pool.stats(),
            Pool::Postgres(pool) => PoolStats {
                size: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            },
        }
    }

    /// Runs raw SQL (no parameters, several statements allowed) as the owner.
    /// For migrations and test set-up only; never with user input.
    pub async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        match &*self.inner {
            Pool::Sqlite(pool) => pool.execute_script(sql).await,
            Pool::Postgres(pool) => postgres::execute_script(pool, sql).await,
        }
    }
}

/// A user id asserted by the authentication layer, for [`Db::begin_user`].
impl UserScope {
    /// For the authorization layer only (`tenantry_tenancy::authz::authorize_user`).
    #[doc(hidden)]
    pub fn for_authenticated(user_id: UserId) -> Self {
        Self::new(user_id)
    }
}

/// Whose rows a single read may see.
#[derive(Clone, Copy)]
enum ReadScope<'a> {
    /// Platform tables only (no tenant or user set; tenant tables show no rows).
    Platform,
    Tenant(&'a TenantScope),
    User(&'a UserScope),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

pub(crate) fn render<S: QueryStatementWriter>(backend: Backend, statement: &S) -> (String, Values) {
    match backend {
        Backend::Sqlite => inline_sqlite_limit(statement.build(SqliteQueryBuilder)),
        Backend::Postgres => statement.build(PostgresQueryBuilder),
    }
}

/// SQLite (3.47+, built with STAT4) marks a prepared statement as expired whenever a
/// parameter used in `LIMIT ?` is re-bound, so a cached list query would be recompiled on
/// every execution. A trailing `LIMIT ?` bound to an unsigned integer (our page sizes) is
/// therefore written as a literal; integers cannot carry an injection.
fn inline_sqlite_limit((mut sql, mut values): (String, Values)) -> (String, Values) {
    if sql.ends_with(" LIMIT ?")
        && let Some(sea_query::Value::BigUnsigned(Some(limit))) = values.0.last()
    {
        let limit = *limit;
        sql.truncate(sql.len() - 1);
        sql.push_str(&limit.to_string());
        values.0.pop();
    }
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::secrecy_free::ExposeUrl;

    #[test]
    fn sqlite_limits_are_inlined_only_when_trailing_and_numeric() {
        use sea_query::{Expr, ExprTrait, Query};
        let mut q = Query::select();
        q.column("id")
            .from("t")
            .and_where(Expr::col("a").eq("x"))
            .limit(21);
        let (sql, values) = super::render(super::Backend::Sqlite, &q);
        assert!(sql.ends_with(" LIMIT 21"), "{sql}");
        assert_eq!(values.0.len(), 1);
        let (sql, values) = super::render(super::Backend::Postgres, &q);
        assert!(sql.ends_with(" LIMIT $2"), "{sql}");
        assert_eq!(values.0.len(), 2);
        q.offset(5);
        let (sql, _) = super::render(super::Backend::Sqlite, &q);
        assert!(sql.ends_with(" OFFSET ?"), "{sql}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            "postgres://u:secret@host:5432/db".redacted(),
            "postgres://***@host:5432/db"
        );
        assert_eq!("sqlite://./data/x.db".redacted(), "sqlite://./data/x.db");
    }
}
