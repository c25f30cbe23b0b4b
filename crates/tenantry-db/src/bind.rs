//! Binds sea-query values to each driver, choosing one storage form per type:
//!
//! | Rust            | PostgreSQL    | SQLite                                   |
//! |-----------------|---------------|------------------------------------------|
//! | `Uuid`          | `uuid`        | TEXT, hyphenated lower case              |
//! | `DateTime<Utc>` | `timestamptz` | TEXT `YYYY-MM-DDTHH:MM:SS.ffffffZ` (sorts as time) |
//! | JSON            | `jsonb`       | TEXT                                     |
//! | `bool`          | `boolean`     | INTEGER 0/1                              |

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use sea_query::Value;
use sqlx::{Arguments, postgres::PgArguments};

use crate::DbError;

/// The SQLite storage form of a timestamp (`%Y-%m-%dT%H:%M:%S%.6fZ`, written without
/// chrono's format-string interpreter: every session check binds one).
pub(crate) fn sqlite_time(t: &DateTime<Utc>) -> String {
    tenantry_core::time::storage_text(t)
}

fn unsupported(v: &Value) -> DbError {
    DbError::Other(anyhow!("unsupported SQL parameter type: {v:?}"))
}

/// A value as rusqlite wants it (borrowed where no conversion is needed).
pub(crate) fn to_sqlite(v: &Value) -> Result<ToSqlOutput<'_>, DbError> {
    use ToSqlOutput::{Borrowed, Owned};
    Ok(match v {
        Value::Bool(Some(b)) => Owned(SqliteValue::Integer(i64::from(*b))),
        Value::TinyInt(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::SmallInt(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::Int(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::BigInt(Some(n)) => Owned(SqliteValue::Integer(*n)),
        Value::TinyUnsigned(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::SmallUnsigned(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::Unsigned(Some(n)) => Owned(SqliteValue::Integer(i64::from(*n))),
        Value::BigUnsigned(Some(n)) => Owned(SqliteValue::Integer(
            i64::try_from(*n).map_err(|_| unsupported(v))?,
        )),
        Value::Float(Some(f)) => Owned(SqliteValue::Real(f64::from(*f))),
        Value::Double(Some(f)) => Owned(SqliteValue::Real(*f)),
        Value::String(Some(s)) => Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Char(Some(c)) => Owned(SqliteValue::Text(c.to_string())),
        Value::Bytes(Some(b)) => Borrowed(ValueRef::Blob(b)),
        Value::Json(Some(j)) => Owned(SqliteValue::Text(j.to_string())),
        Value::ChronoDateTimeUtc(Some(t)) => Owned(SqliteValue::Text(sqlite_time(t))),
        Value::Uuid(Some(u)) => Owned(SqliteValue::Text(
            u.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
        )),
        Value::Bool(None)
        | Value::TinyInt(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::TinyUnsigned(None)
        | Value::SmallUnsigned(None)
        | Value::Unsigned(None)
        | Value::BigUnsigned(None)
        | Value::Float(None)
        | Value::Double(None)
        | Value::String(None)
        | Value::Char(None)
        | Value::Bytes(None)
        | Value::Json(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::Uuid(None) => Owned(SqliteValue::Null),
        other => return Err(unsupported(other)),
    })
}

/// Appends a value to PostgreSQL arguments with its natural PostgreSQL type.
pub(crate) fn add_pg(args: &mut PgArguments, v: Value) -> Result<(), DbError> {
    let result = match v {
        Value::Bool(b) => args.add(b),
        Value::TinyInt(n) => args.add(n.map(i16::from)),
        Value::SmallInt(n) => args.add(n),
        Value::Int(n) => args.add(n),
        Value::BigInt(n) => args.add(n),
        Value::TinyUnsigned(n) => args.add(n.map(i16::from)),
        Value::SmallUnsigned(n) => args.add(n.map(i32::from)),
        Value::Unsigned(n) => args.add(n.map(i64::from)),
        Value::BigUnsigned(n) => args.add(
            n.map(i64::try_from)
                .transpose()
                .map_err(|e| DbError::Other(anyhow!("integer out of range: {e}")))?,
        ),
        Value::Float(f) => args.add(f),
        Value::Double(f) => args.add(f),
        Value::String(s) => args.add(s),
        Value::Char(c) => args.add(c.map(|c| c.to_string())),
        Value::Bytes(b) => args.add(b),
        Value::Json(j) => args.add(j.map(|j| sqlx::types::Json(*j))),
        Value::ChronoDateTimeUtc(t) => args.add(t),
        Value::Uuid(u) => args.add(u),
        other => return Err(unsupported(&other)),
    };
    result.map_err(|e| DbError::Other(anyhow!("binding parameter: {e}")))
}
