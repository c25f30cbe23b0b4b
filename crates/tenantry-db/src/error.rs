use tenantry_core::Problem;

/// A database failure, classified so callers can answer precisely.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique index rejected the write; `column` names the offending field.
    #[error("unique constraint violated on {table}.{column}")]
    UniqueViolation { table: String, column: String },
    #[error("foreign key constraint violated")]
    ForeignKeyViolation,
    /// `fetch_one` found nothing.
    #[error("row not found")]
    RowNotFound,
    /// Text the database cannot store (PostgreSQL refuses NUL and characters its encoding
    /// lacks). Request input is checked for NUL before it gets here; this is the second line,
    /// so that such input is a client error, never a 500.
    #[error("text the database cannot store: {0}")]
    UnstorableText(String),
    /// The database cannot be reached or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl DbError {
    pub fn is_unique_violation_on(&self, column_name: &str) -> bool {
        matches!(self, Self::UniqueViolation { column, .. } if column == column_name)
    }
}

impl From<DbError> for Problem {
    fn from(error: DbError) -> Self {
        match error {
            DbError::UniqueViolation { column, .. } => Problem::already_exists()
                .with_detail(format!("{column} is already taken"))
                .with_field(column, "is already taken"),
            DbError::ForeignKeyViolation => {
                Problem::conflict().with_detail("a referenced resource does not exist")
            }
            DbError::RowNotFound => Problem::not_found(),
            DbError::UnstorableText(_) => Problem::validation_failed()
                .with_detail("the request contains characters that cannot be stored"),
            DbError::Unavailable(reason) => {
                tracing::warn!(reason, "database unavailable");
                Problem::not_ready()
                    .with_detail("the database is unavailable")
                    .with_retry_after(1)
            }
            DbError::Other(error) => Problem::internal_error(&error),
        }
    }
}

/// Parses the column out of our unique index naming convention `ux_<table>__<col>[__<col>]`
/// (PostgreSQL reports the index name; SQLite reports `table.column`).
pub(crate) fn unique_from_index_name(index: &str) -> Option<(String, String)> {
    let rest = index.strip_prefix("ux_")?;
    let (table, columns) = rest.split_once("__")?;
    let last = columns.rsplit("__").next()?;
    Some((table.to_owned(), last.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_parse() {
        assert_eq!(
            unique_from_index_name("ux_users__email"),
            Some(("users".into(), "email".into()))
        );
        assert_eq!(
            unique_from_index_name("ux_projects__tenant_id__name"),
            Some(("projects".into(), "name".into()))
        );
        assert_eq!(unique_from_index_name("users_pkey"), None);
    }
}
