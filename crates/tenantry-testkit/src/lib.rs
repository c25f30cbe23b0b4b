//! Test infrastructure for Tenantry integration tests (use only as a dev-dependency).
//!
//! # PostgreSQL
//!
//! [`fresh_postgres_database`] hands every test its own, empty database:
//!
//! * If `TENANTRY_TEST_DATABASE_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/postgres`,
//!   a superuser on an existing server), a database `t_<uuid v7 hex>` is created there.
//!   These databases are **not** dropped afterwards; use a disposable server
//!   (`scripts/test.sh` starts one for the whole run and deletes it at the end).
//! * Otherwise a throw-away cluster is started once per test process (`initdb` + `pg_ctl`,
//!   found on `PATH` or under `/usr/lib/postgresql/*/bin`; as root they run as the `postgres`
//!   OS user via `runuser`). Starting it takes about 1-3 s; it lives in
//!   `$TMPDIR/tenantry-pg-<pid>-<random>/` and is stopped and deleted by a detached watchdog
//!   within about a second after the test process exits (see the `cluster` module).
//!   Note that `cargo nextest` runs every test in its own process, so each test pays the
//!   start-up cost unless `TENANTRY_TEST_DATABASE_URL` is set.
//!
//! When PostgreSQL cannot be used, the test is skipped (one `SKIPPED <test>: ...` line on
//! stderr, the function returns `None`), unless `TENANTRY_TEST_STRICT=1` (CI), in which case
//! the test panics with the reason.

//!
//! # SMTP and S3
//!
//! [`smtp_sink`] and [`s3_server`] hand out real servers on loopback: the ones `scripts/test.sh`
//! started for the run (`TENANTRY_TEST_SMTP_URL`, `TENANTRY_TEST_S3_URL`), else one started for
//! the test from what the test command installed under `target/test-tools/`, with the same
//! skip-or-panic rule.

// Test-only code: this crate is only ever a dev-dependency of tests, and failing loudly
// (expect/unwrap/panic) is the right reaction when the test environment is unusable.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod cluster;
mod s3;
mod smtp;
mod url;

pub use s3::{REGION as S3_REGION, S3Server, s3_server};
pub use smtp::{Delivered, SmtpSink, SmtpTls, TlsSink, smtp_sink, smtp_sink_tls};

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::{OnceCell, Semaphore};

/// Set to `1` (CI) to turn "component not available" skips into failures.
const STRICT_ENV: &str = "TENANTRY_TEST_STRICT";
/// URL of an existing PostgreSQL server (superuser) to create test databases on.
const DATABASE_URL_ENV: &str = "TENANTRY_TEST_DATABASE_URL";

/// Timeout for establishing one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout for one `CREATE DATABASE` statement.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of `CREATE DATABASE` while the template database is busy.
const CREATE_ATTEMPTS: u32 = 20;
/// At most this many `CREATE DATABASE` statements in flight per test process.
static CREATE_PERMITS: Semaphore = Semaphore::const_new(4);

/// The per-process throw-away cluster (or why it could not be started).
static LOCAL_CLUSTER: OnceCell<Result<cluster::Cluster, String>> = OnceCell::const_new();

/// True when TENANTRY_TEST_STRICT=1 (CI): a missing component must fail instead of skip.
///
/// `true`, `yes` and `on` (any case) are accepted as well.
pub fn strict() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|v| is_truthy(&v))
}

fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A fresh, empty PostgreSQL database for one test, or None when PostgreSQL is not available and not strict
/// (then it prints one line to stderr: `SKIPPED <test_name>: PostgreSQL not available: <reason>`).
/// When strict and unavailable: panics with the reason.
///
/// Returns a `postgres://` URL to the new database; the user is a superuser on that server.
pub async fn fresh_postgres_database(test_name: &str) -> Option<String> {
    match try_fresh_postgres_database().await {
        Ok(url) => Some(url),
        Err(reason) if strict() => {
            panic!("{test_name}: PostgreSQL not available ({STRICT_ENV}=1): {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test_name}: PostgreSQL not available: {reason}");
            None
        }
    }
}

async fn try_fresh_postgres_database() -> Result<String, String> {
    let (server_url, context) = match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => (
            url.trim().to_owned(),
            format!("server from {DATABASE_URL_ENV}"),
        ),
        _ => {
            let cluster = LOCAL_CLUSTER
                .get_or_init(|| async {
                    tokio::task::spawn_blocking(cluster::Cluster::start)
                        .await
                        .unwrap_or_else(|e| Err(format!("cluster start-up task failed: {e}")))
                })
                .await
                .as_ref()
                .map_err(|e| format!("cannot start a throw-away cluster: {e}"))?;
            (
                cluster.admin_url(),
                format!(
                    "throw-away cluster, server log {}",
                    cluster.log_path().display()
                ),
            )
        }
    };
    create_database(&server_url)
        .await
        .map_err(|e| format!("{e} ({context})"))
}

/// Creates `t_<uuid v7 hex>` on the server at `server_url` and returns the URL of the new database.
async fn create_database(server_url: &str) -> Result<String, String> {
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let database_url = url::with_database(server_url, &name)?;
    let _permit = CREATE_PERMITS
        .acquire()
        .await
        .map_err(|e| format!("CREATE DATABASE limiter closed: {e}"))?;
    let mut conn = connect(server_url).await?;
    let sql = format!("CREATE DATABASE \"{name}\"");
    let mut attempt = 1;
    loop {
        let result = tokio::time::timeout(
            CREATE_TIMEOUT,
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(_)) => break,
            Ok(Err(e)) if attempt < CREATE_ATTEMPTS && is_template_busy(&e) => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(10)))).await;
                attempt += 1;
            }
            Ok(Err(e)) => return Err(format!("{sql} failed after {attempt} attempt(s): {e}")),
            Err(_) => return Err(format!("{sql} timed out after {CREATE_TIMEOUT:?}")),
        }
    }
    // Closing politely is best effort; the database exists either way.
    let _ = conn.close().await;
    Ok(database_url)
}

/// `source database "template1" is being accessed by other users` (SQLSTATE 55006).
fn is_template_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("55006")
                || db.message().contains("is being accessed by other users")
        }
        _ => false,
    }
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", url::redact(url))),
        Err(_) => Err(format!(
            "cannot connect to {}: timed out after {CONNECT_TIMEOUT:?}",
            url::redact(url)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{connect, fresh_postgres_database, is_truthy};

    #[test]
    fn strict_values() {
        for v in ["1", "true", "TRUE", " yes ", "on"] {
            assert!(is_truthy(v), "{v:?}");
        }
        for v in ["", "0", "false", "no", "off", "2"] {
            assert!(!is_truthy(v), "{v:?}");
        }
    }

    #[tokio::test]
    async fn two_fresh_databases_are_distinct_and_usable() {
        let Some(first) =
            fresh_postgres_database("two_fresh_databases_are_distinct_and_usable").await
        else {
            return;
        };
        let second = fresh_postgres_database("two_fresh_databases_are_distinct_and_usable")
            .await
            .expect("PostgreSQL was available a moment ago");
        assert_ne!(first, second);
        for url in [&first, &second] {
            let mut conn = connect(url).await.expect("connect to fresh database");
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .expect("SELECT 1");
            assert_eq!(one, 1);
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("count tables");
            assert_eq!(tables, 0, "fresh database must be empty");
            let database: String = sqlx::query_scalar("SELECT current_database()")
                .fetch_one(&mut conn)
                .await
                .expect("current_database()");
            assert!(
                url.ends_with(&format!("/{database}")),
                "{url} vs {database}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creation_succeeds() {
        let tasks: Vec<_> = (0..8)
            .map(|_| tokio::spawn(fresh_postgres_database("concurrent_creation_succeeds")))
            .collect();
        let mut urls = Vec::new();
        for task in tasks {
            match task.await.expect("task panicked") {
                Some(url) => urls.push(url),
                None => return,
            }
        }
        urls.sort();
        urls.dedup();
        assert_eq!(urls.len(), 8);
    }
}
