//! PostgreSQL through sqlx.

use std::time::Duration;

use anyhow::anyhow;
use sea_query::Values;
use sqlx::{
    Executor, PgPool,
    postgres::{PgArguments, PgConnectOptions, PgPoolOptions},
};
use tenantry_core::{TenantId, UserId};

use crate::{
    APP_ROLE, DbError, FromRow, Row, bind, config::DatabaseConfig, error::unique_from_index_name,
    tx::Tx,
};

pub(crate) async fn connect(url: &str, config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs.max(1)))
        .connect_with(options.application_name("tenantry"))
        .await?;
    Ok(pool)
}

pub(crate) async fn ping(pool: &PgPool) -> Result<(), DbError> {
    pool.execute("SELECT 1")
        .await
        .map(|_| ())
        .map_err(map_error)
}

/// What a transaction may see.
pub(crate) enum Context {
    /// Platform tables only; tenant tables show no rows (no tenant is set).
    Platform,
    Tenant(TenantId),
    User(UserId),
    /// Every tenant's rows (platform administration, purges).
    Admin,
    /// The rows whose secret hashes to this hex string, to learn their tenant.
    Secret(String),
}

pub(crate) async fn begin(pool: &PgPool, context: Context) -> Result<Tx, DbError> {
    // One round trip: BEGIN, the role switch and the transaction-local setting travel as a
    // single simple query. Ids are typed UUIDs, so formatting them into SQL is injection-free.
    let statement = match context {
        Context::Platform => None,
        Context::Tenant(id) => Some(format!(
            "BEGIN; SET LOCAL ROLE {APP_ROLE}; SELECT set_config('app.tenant_id', '{}', true)",
            id.as_uuid()
        )),
        Context::User(id) => Some(format!(
            "BEGIN; SET LOCAL ROLE {APP_ROLE}; SELECT set_config('app.user_id', '{}', true)",
            id.as_uuid()
        )),
        Context::Admin => Some(format!(
            "BEGIN; SET LOCAL ROLE {APP_ROLE}; SELECT set_config('app.platform_admin', 'on', true)"
        )),
        // The hash is hex we computed (checked by the caller), so it cannot inject.
        Context::Secret(hash) => Some(format!(
            "BEGIN; SET LOCAL ROLE {APP_ROLE}; SELECT set_config('app.secret_hash', '{hash}', true)"
        )),
    };
    // sqlx 0.9.0's `begin` is not cancel-safe on PostgreSQL (transact-rs/sqlx#4393): dropped
    // between sending BEGIN and reading its answer, it returns the connection to the pool
    // inside an open transaction — here one running as the request role with another
    // caller's tenant set. Running it to completion in its own task closes that window: if the
    // caller has gone, the finished transaction is dropped there and rolled back normally.
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match statement {
            None => pool.begin().await,
            Some(statement) => pool.begin_with(sqlx::AssertSqlSafe(statement)).await,
        }
    })
    .await
    .map_err(|e| DbError::Other(anyhow!("transaction start task failed: {e}")))?;
    begun.map(Tx::pg).map_err(map_error)
}

pub(crate) async fn execute_script(pool: &PgPool, sql: &str) -> Result<(), DbError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(map_error)
}

pub(crate) fn arguments(values: Values) -> Result<PgArguments, DbError> {
    let mut args = PgArguments::default();
    for value in values.0 {
        bind::add_pg(&mut args, value)?;
    }
    Ok(args)
}

pub(crate) async fn fetch<T: FromRow>(
    conn: &mut sqlx::PgConnection,
    sql: String,
    values: Values,
) -> Result<Vec<T>, DbError> {
    let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments(values)?)
        .fetch_all(conn)
        .await
        .map_err(map_error)?;
    rows.iter().map(|r| T::from_row(&mut Row::pg(r))).collect()
}

pub(crate) async fn fetch_optional<T: FromRow>(
    conn: &mut sqlx::PgConnection,
    sql: String,
    values: Values,
) -> Result<Option<T>, DbError> {
    let row = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments(values)?)
        .fetch_optional(conn)
        .await
        .map_err(map_error)?;
    row.as_ref()
        .map(|r| T::from_row(&mut Row::pg(r)))
        .transpose()
}

pub(crate) async fn execute(
    conn: &mut sqlx::PgConnection,
    sql: String,
    values: Values,
) -> Result<u64, DbError> {
    sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments(values)?)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(map_error)
}

pub(crate) fn map_error(error: sqlx::Error) -> DbError {
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => {
                if let Some((table, column)) = db.constraint().and_then(unique_from_index_name) {
                    return DbError::UniqueViolation { table, column };
                }
                if let Some(constraint) = db.constraint() {
                    return DbError::UniqueViolation {
                        table: db.table().unwrap_or_default().to_owned(),
                        column: constraint.to_owned(),
                    };
                }
            }
            Some("23503") => return DbError::ForeignKeyViolation,
            // character_not_in_repertoire (NUL in text or jsonb), untranslatable_character.
            Some("22021" | "22P05") => return DbError::UnstorableText(db.message().to_owned()),
            // Class 08 (connection exception), 57P0x (operator intervention: shutdown,
            // cannot connect now), 53 (insufficient resources, e.g. too many connections),
            // 3D000 (the database is gone) and 55000 as raised at connect time ("database
            // is not currently accepting connections"): the database is unavailable.
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("57P0")
                    || code.starts_with("53")
                    || code == "3D000"
                    || (code == "55000"
                        && db.message().contains("not currently accepting connections")) =>
            {
                return DbError::Unavailable(db.message().to_owned());
            }
            _ => {}
        },
        sqlx::Error::PoolTimedOut => {
            return DbError::Unavailable("timed out waiting for a connection".into());
        }
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            return DbError::Unavailable(error.to_string());
        }
        sqlx::Error::RowNotFound => return DbError::RowNotFound,
        _ => {}
    }
    DbError::Other(anyhow!(error).context("PostgreSQL statement failed"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use crate::{Backend, Db, DbError, config::DatabaseConfig};
    use sea_query::{Expr, ExprTrait, Query};

    /// An empty database (no migrations) of its own on the test PostgreSQL server, or `None` where
    /// there is none (the testkit says so, and fails under `TENANTRY_TEST_STRICT=1`).
    async fn fresh_db(name: &str) -> Option<Db> {
        let url = tenantry_testkit::fresh_postgres_database(name).await?;
        Some(Db::connect(&url, &DatabaseConfig::default()).await.unwrap())
    }

    /// Text PostgreSQL refuses (a NUL in `text` or `jsonb`) is a client error, not a 500.
    #[tokio::test]
    async fn text_the_database_cannot_store_is_classified() {
        let Some(db) = fresh_db("unstorable_text").await else {
            return;
        };
        db.execute_script("CREATE TABLE notes (body text, extra jsonb)")
            .await
            .unwrap();
        for (column, value) in [
            ("body", sea_query::Value::from("a\0b")),
            ("extra", serde_json::json!({ "k": "a\u{0}b" }).into()),
        ] {
            let mut tx = db.begin_write().await.unwrap();
            let error = tx
                .execute(
                    &Query::insert()
                        .into_table("notes")
                        .columns([column])
                        .values_panic([value.into()])
                        .to_owned(),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(error, DbError::UnstorableText(_)),
                "{column}: {error:?}"
            );
            let problem = tenantry_core::Problem::from(error);
            assert_eq!(problem.status.as_u16(), 422, "{column}");
        }
    }

    /// The named lock helpers lock on PostgreSQL until the transaction ends: another
    /// transaction cannot take the same advisory lock or row lock meanwhile.
    #[tokio::test]
    async fn locks_hold_until_the_transaction_ends() {
        let Some(db) = fresh_db("named_locks").await else {
            return;
        };
        db.execute_script(
            "CREATE TABLE counters (id integer PRIMARY KEY); INSERT INTO counters VALUES (1)",
        )
        .await
        .unwrap();
        let row = Query::select()
            .expr(Expr::cust("id::text"))
            .from("counters")
            .and_where(Expr::col("id").eq(1))
            .to_owned();

        let mut holder = db.begin_write().await.unwrap();
        holder.advisory_lock(42).await.unwrap();
        holder.lock_rows(row.clone()).await.unwrap();
        let mut marked = row.clone();
        holder.for_update(&mut marked);
        assert!(
            marked
                .to_string(sea_query::PostgresQueryBuilder)
                .ends_with("FOR UPDATE"),
            "for_update marks the read on PostgreSQL"
        );

        let free: Option<String> = db
            .read_optional(
                &Query::select()
                    .expr(Expr::cust("pg_try_advisory_xact_lock(42)::text"))
                    .to_owned(),
            )
            .await
            .unwrap();
        assert_eq!(free.as_deref(), Some("false"), "the advisory lock is held");
        let mut other = db.begin_write().await.unwrap();
        let mut nowait = row.clone();
        nowait.lock_with_behavior(sea_query::LockType::Update, sea_query::LockBehavior::Nowait);
        assert!(
            other.fetch_all::<String, _>(&nowait).await.is_err(),
            "the row lock is held"
        );
        drop(other);

        holder.commit().await.unwrap();
        let free: Option<String> = db
            .read_optional(
                &Query::select()
                    .expr(Expr::cust("pg_try_advisory_xact_lock(42)::text"))
                    .to_owned(),
            )
            .await
            .unwrap();
        assert_eq!(free.as_deref(), Some("true"), "released at commit");
        assert_eq!(db.backend(), Backend::Postgres);
    }
}
