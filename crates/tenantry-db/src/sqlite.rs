//! SQLite through rusqlite: one writer connection (SQLite admits one writer at a time, so
//! queueing writers on an async mutex is cheaper than letting them spin on `SQLITE_BUSY`)
//! and a pool of read connections that WAL lets run beside the writer.
//!
//! Statements run inline on the calling task: SQLite calls are in-process and take
//! microseconds, far less than a hop to a blocking thread would cost.

use std::{
    ops::{Deref, DerefMut},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, ToSql, ffi, types::ToSqlOutput};
use sea_query::{Value, Values};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::{
    DbError, FromRow, PoolStats, Row, bind, config::DatabaseConfig, error::unique_from_index_name,
    tx::Tx,
};

#[derive(Debug)]
pub(crate) struct SqlitePool {
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Arc<Readers>,
    acquire_timeout: Duration,
    reader_count: u32,
}

#[derive(Debug)]
struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// A connection held for the duration of a transaction.
pub(crate) enum SqliteConn {
    Writer(OwnedMutexGuard<Connection>),
    Reader(ReaderGuard),
}

pub(crate) struct ReaderGuard {
    conn: Option<Connection>,
    readers: Arc<Readers>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.idle.lock().push(conn);
        }
    }
}

impl Deref for SqliteConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Self::Writer(guard) => guard,
            // The guard holds its connection until dropped.
            Self::Reader(guard) => guard.conn.as_ref().unwrap_or_else(|| unreachable_conn()),
        }
    }
}

impl DerefMut for SqliteConn {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Self::Writer(guard) => &mut *guard,
            Self::Reader(guard) => guard.conn.as_mut().unwrap_or_else(|| unreachable_conn()),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_conn() -> ! {
    panic!("reader guard used after its connection was returned")
}

fn open_connection(path: &Path, reader: bool, mmap_mib: u32) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )?;
    // An integer we format ourselves: no injection.
    conn.execute_batch(&format!(
        "PRAGMA mmap_size = {};",
        u64::from(mmap_mib) * 1024 * 1024
    ))?;
    if reader {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

impl SqlitePool {
    pub(crate) fn open(path: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let path = Path::new(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating directory {}", dir.display()))?;
        }
        // The writer opens first so the file and its WAL mode exist before readers attach.
        let writer = open_connection(path, false, config.sqlite_mmap_mib)?;
        let reader_count = config.sqlite_readers.max(1);
        let idle = (0..reader_count)
            .map(|_| open_connection(path, true, config.sqlite_mmap_mib))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(Readers {
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(reader_count as usize)),
            }),
            acquire_timeout: Duration::from_secs(config.acquire_timeout_secs.max(1)),
            reader_count,
        })
    }

    async fn reader(&self) -> Result<SqliteConn, DbError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.readers.permits).acquire_owned(),
        )
        .await
        .map_err(|_| DbError::Unavailable("timed out waiting for a read connection".into()))?
        .map_err(|_| DbError::Unavailable("pool closed".into()))?;
        let conn = self
            .readers
            .idle
            .lock()
            .pop()
            .ok_or_else(|| DbError::Other(anyhow::anyhow!("reader pool out of sync")))?;
        Ok(SqliteConn::Reader(ReaderGuard {
            conn: Some(conn),
            readers: Arc::clone(&self.readers),
            _permit: permit,
        }))
    }

    async fn writer(&self) -> Result<SqliteConn, DbError> {
        let guard =
            tokio::time::timeout(self.acquire_timeout, Arc::clone(&self.writer).lock_owned())
                .await
                .map_err(|_| {
                    DbError::Unavailable("timed out waiting for the write connection".into())
                })?;
        Ok(SqliteConn::Writer(guard))
    }

    pub(crate) async fn begin_read(&self) -> Result<Tx, DbError> {
        let conn = self.reader().await?;
        run_cached(&conn, "BEGIN DEFERRED")?;
        Ok(Tx::sqlite(conn))
    }

    pub(crate) async fn begin_write(&self) -> Result<Tx, DbError> {
        let conn = self.writer().await?;
        run_cached(&conn, "BEGIN IMMEDIATE")?;
        Ok(Tx::sqlite(conn))
    }

    pub(crate) async fn read<T: FromRow>(
        &self,
        sql: &str,
        values: &Values,
        max_rows: Option<usize>,
    ) -> Result<Vec<T>, DbError> {
        let conn = self.reader().await?;
        fetch(&conn, sql, values, max_rows)
    }

    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        let conn = self.reader().await?;
        conn.query_row("SELECT 1", [], |_| Ok(()))
            .map_err(map_error)
    }

    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        let conn = self.writer().await?;
        conn.execute_batch(sql).map_err(map_error)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            size: self.reader_count + 1,
            idle: u32::try_from(self.readers.permits.available_permits()).unwrap_or(0)
                + u32::from(self.writer.try_lock().is_ok()),
        }
    }
}

/// Runs a parameterless statement through the statement cache (transaction control runs on
/// every request; re-parsing it each time shows up in profiles).
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> Result<(), DbError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(map_error)
}

/// A bound parameter; conversion happens lazily as rusqlite binds.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        bind::to_sqlite(self.0).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

pub(crate) fn fetch<T: FromRow>(
    conn: &Connection,
    sql: &str,
    values: &Values,
    max_rows: Option<usize>,
) -> Result<Vec<T>, DbError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(values.0.iter().map(Param)))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        out.push(T::from_row(&mut Row::sqlite(row))?);
        if max_rows.is_some_and(|max| out.len() >= max) {
            break;
        }
    }
    Ok(out)
}

pub(crate) fn execute(conn: &Connection, sql: &str, values: &Values) -> Result<u64, DbError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let n = stmt
        .execute(rusqlite::params_from_iter(values.0.iter().map(Param)))
        .map_err(map_error)?;
    Ok(n as u64)
}

pub(crate) fn map_error(error: rusqlite::Error) -> DbError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                // "UNIQUE constraint failed: projects.tenant_id, projects.name"
                let target = message
                    .as_deref()
                    .and_then(|m| m.rsplit(": ").next())
                    .and_then(|cols| cols.rsplit(", ").next())
                    .and_then(|col| col.split_once('.'));
                if let Some((table, column)) = target {
                    return DbError::UniqueViolation {
                        table: table.to_owned(),
                        column: column.to_owned(),
                    };
                }
                if let Some((table, column)) = message
                    .as_deref()
                    .and_then(|m| m.rsplit(' ').next())
                    .and_then(unique_from_index_name)
                {
                    return DbError::UniqueViolation { table, column };
                }
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return DbError::ForeignKeyViolation,
            _ => {}
        }
        if matches!(
            failure.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return DbError::Unavailable("database is busy".into());
        }
    }
    DbError::Other(anyhow::Error::new(error).context("SQLite statement failed"))
}
