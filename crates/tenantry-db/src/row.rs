//! Reading result rows the same way on both backends.

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sqlx::{Row as _, postgres::PgRow};
use uuid::Uuid;

use crate::DbError;

/// Types built from a result row. Columns are read in the order the query selected them;
/// each implementor keeps its column list (`COLUMNS`) beside its `from_row` so they agree.
pub trait FromRow: Sized {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError>;
}

/// A cursor over one result row's columns.
pub struct Row<'r> {
    inner: Inner<'r>,
    next: usize,
}

enum Inner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Pg(&'r PgRow),
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("next", &self.next).finish()
    }
}

fn decode(column: usize, e: impl std::fmt::Display) -> DbError {
    DbError::Other(anyhow!("decoding column {column}: {e}"))
}

/// A SQLite TEXT column borrowed from the row (no copy); `None` for NULL.
fn sqlite_text<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> Result<Option<&'a [u8]>, DbError> {
    match r.get_ref(i).map_err(|e| decode(i, e))? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(text) => Ok(Some(text)),
        other => Err(decode(
            i,
            format!("expected TEXT, found {}", other.data_type()),
        )),
    }
}

fn sqlite_time(i: usize, text: &[u8]) -> Result<DateTime<Utc>, DbError> {
    if let Some(t) = tenantry_core::time::parse_storage_text(text) {
        return Ok(t);
    }
    let text = std::str::from_utf8(text).map_err(|e| decode(i, e))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| decode(i, e))
}

impl<'r> Row<'r> {
    pub(crate) fn sqlite(row: &'r rusqlite::Row<'r>) -> Self {
        Self {
            inner: Inner::Sqlite(row),
            next: 0,
        }
    }

    pub(crate) fn pg(row: &'r PgRow) -> Self {
        Self {
            inner: Inner::Pg(row),
            next: 0,
        }
    }

    fn advance(&mut self) -> usize {
        let i = self.next;
        self.next += 1;
        i
    }

    pub fn opt_uuid(&mut self) -> Result<Option<Uuid>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => sqlite_text(r, i)?
                .map(|t| Uuid::try_parse_ascii(t).map_err(|e| decode(i, e)))
                .transpose(),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn uuid(&mut self) -> Result<Uuid, DbError> {
        let i = self.next;
        self.opt_uuid()?.ok_or_else(|| decode(i, "unexpected NULL"))
    }

    /// A typed id (`UserId`, `TenantId`, …).
    pub fn id<T: From<Uuid>>(&mut self) -> Result<T, DbError> {
        self.uuid().map(T::from)
    }

    pub fn opt_id<T: From<Uuid>>(&mut self) -> Result<Option<T>, DbError> {
        Ok(self.opt_uuid()?.map(T::from))
    }

    pub fn opt_string(&mut self) -> Result<Option<String>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => r.get(i).map_err(|e| decode(i, e)),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn string(&mut self) -> Result<String, DbError> {
        let i = self.next;
        self.opt_string()?
            .ok_or_else(|| decode(i, "unexpected NULL"))
    }

    pub fn opt_i64(&mut self) -> Result<Option<i64>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => r.get(i).map_err(|e| decode(i, e)),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn i64(&mut self) -> Result<i64, DbError> {
        let i = self.next;
        self.opt_i64()?.ok_or_else(|| decode(i, "unexpected NULL"))
    }

    pub fn bool(&mut self) -> Result<bool, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => r.get::<_, i64>(i).map(|n| n != 0).map_err(|e| decode(i, e)),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn opt_time(&mut self) -> Result<Option<DateTime<Utc>>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => sqlite_text(r, i)?.map(|t| sqlite_time(i, t)).transpose(),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn time(&mut self) -> Result<DateTime<Utc>, DbError> {
        let i = self.next;
        self.opt_time()?.ok_or_else(|| decode(i, "unexpected NULL"))
    }

    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => r.get(i).map_err(|e| decode(i, e)),
            Inner::Pg(r) => r.try_get(i).map_err(|e| decode(i, e)),
        }
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>, DbError> {
        let i = self.next;
        self.opt_bytes()?
            .ok_or_else(|| decode(i, "unexpected NULL"))
    }

    /// A JSON column decoded into `T`.
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, DbError> {
        let i = self.advance();
        let value: serde_json::Value = match &self.inner {
            Inner::Sqlite(r) => {
                let text = sqlite_text(r, i)?.ok_or_else(|| decode(i, "unexpected NULL"))?;
                // Straight into `T`, without an intermediate `Value`.
                return serde_json::from_slice(text).map_err(|e| decode(i, e));
            }
            Inner::Pg(r) => {
                r.try_get::<sqlx::types::Json<serde_json::Value>, _>(i)
                    .map_err(|e| decode(i, e))?
                    .0
            }
        };
        serde_json::from_value(value)
            .context("decoding JSON column")
            .map_err(DbError::Other)
    }

    /// A nullable JSON column decoded into `T`.
    pub fn opt_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DbError> {
        let i = self.advance();
        let value: Option<serde_json::Value> = match &self.inner {
            Inner::Sqlite(r) => match sqlite_text(r, i)? {
                None => return Ok(None),
                Some(text) => return serde_json::from_slice(text).map_err(|e| decode(i, e)),
            },
            Inner::Pg(r) => r
                .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(i)
                .map_err(|e| decode(i, e))?
                .map(|j| j.0),
        };
        value
            .map(serde_json::from_value)
            .transpose()
            .context("decoding JSON column")
            .map_err(DbError::Other)
    }

    /// A JSON column as JSON text, for passing through to a response without building a
    /// `serde_json::Value`. SQLite returns the stored text (written by serde_json, so
    /// already compact with sorted keys); PostgreSQL's `jsonb` text has its own spacing, so
    /// it is decoded and written compactly — the same bytes a `Value` would serialise to.
    pub fn raw_json(&mut self) -> Result<Box<RawValue>, DbError> {
        let i = self.advance();
        match &self.inner {
            Inner::Sqlite(r) => {
                let text = sqlite_text(r, i)?.ok_or_else(|| decode(i, "unexpected NULL"))?;
                serde_json::from_slice(text).map_err(|e| decode(i, e))
            }
            Inner::Pg(r) => {
                let value = r
                    .try_get::<sqlx::types::Json<serde_json::Value>, _>(i)
                    .map_err(|e| decode(i, e))?
                    .0;
                serde_json::value::to_raw_value(&value).map_err(|e| decode(i, e))
            }
        }
    }
}

impl FromRow for i64 {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        row.i64()
    }
}

impl FromRow for Uuid {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        row.uuid()
    }
}

impl FromRow for String {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        row.string()
    }
}

impl<A: FromRow, B: FromRow> FromRow for (A, B) {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok((A::from_row(row)?, B::from_row(row)?))
    }
}
