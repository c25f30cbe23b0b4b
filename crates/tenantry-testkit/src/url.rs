//! Minimal, dependency-free helpers for `postgres://` connection URLs.

/// Splits `url` into `(scheme_and_authority, rest)` where `rest` starts at the path (`/...`),
/// the query (`?...`), the fragment (`#...`) or is empty.
fn split_authority(url: &str) -> Option<(&str, &str)> {
    let authority_start = url.find("://")? + 3;
    let authority_len = url[authority_start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - authority_start);
    Some(url.split_at(authority_start + authority_len))
}

/// Returns `url` with its path (the database name) replaced by `database`.
///
/// Scheme, user info, host, port, query and fragment are kept untouched, so
/// `postgres://u:p@h:5432/postgres?sslmode=disable` becomes
/// `postgres://u:p@h:5432/<database>?sslmode=disable`.
///
/// `database` must consist of ASCII letters, digits and `_` only (so it needs no escaping,
/// neither in the URL nor as a quoted SQL identifier).
pub(crate) fn with_database(url: &str, database: &str) -> Result<String, String> {
    if database.is_empty()
        || !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "invalid database name {database:?}: only ASCII letters, digits and '_' are allowed"
        ));
    }
    let (head, rest) = split_authority(url)
        .ok_or_else(|| format!("not a URL (missing `://`): {}", redact(url)))?;
    let scheme = &head[..head.find("://").unwrap_or(0)];
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(format!(
            "unsupported URL scheme {scheme:?} (expected postgres:// or postgresql://): {}",
            redact(url)
        ));
    }
    let suffix = &rest[rest.find(['?', '#']).unwrap_or(rest.len())..];
    Ok(format!("{head}/{database}{suffix}"))
}

/// Returns `url` with the password in its user info (if any) replaced by `***`, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((head, rest)) = split_authority(url) else {
        return url.to_owned();
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let authority = &head[authority_start..];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}{rest}",
        &head[..authority_start],
        &userinfo[..colon],
        &authority[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::{redact, with_database};

    #[test]
    fn replaces_existing_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_abc").as_deref(),
            Ok("postgres://postgres@127.0.0.1:5432/t_abc")
        );
    }

    #[test]
    fn adds_missing_path() {
        assert_eq!(
            with_database("postgres://postgres@localhost:5432", "t_1").as_deref(),
            Ok("postgres://postgres@localhost:5432/t_1")
        );
        assert_eq!(
            with_database("postgresql://localhost/", "t_1").as_deref(),
            Ok("postgresql://localhost/t_1")
        );
    }

    #[test]
    fn keeps_query_and_credentials() {
        assert_eq!(
            with_database(
                "postgres://user:p%40ss@db.example:6543/app?sslmode=disable&application_name=x",
                "t_2"
            )
            .as_deref(),
            Ok("postgres://user:p%40ss@db.example:6543/t_2?sslmode=disable&application_name=x")
        );
        assert_eq!(
            with_database("postgres://h:1?host=/tmp", "t_3").as_deref(),
            Ok("postgres://h:1/t_3?host=/tmp")
        );
        assert_eq!(
            with_database("postgres:///old?host=/var/run/postgresql", "t_4").as_deref(),
            Ok("postgres:///t_4?host=/var/run/postgresql")
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(with_database("localhost:5432/db", "t_1").is_err());
        assert!(with_database("mysql://localhost/db", "t_1").is_err());
        assert!(with_database("postgres://localhost/db", "t-1").is_err());
        assert!(with_database("postgres://localhost/db", "").is_err());
        assert!(with_database("postgres://localhost/db", "a\"b").is_err());
        let err = with_database("https://u:secret@h/db", "t_1").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://user:secret@h:5432/db?x=1"),
            "postgres://user:***@h:5432/db?x=1"
        );
        assert_eq!(redact("postgres://user@h/db"), "postgres://user@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("not a url"), "not a url");
    }
}
