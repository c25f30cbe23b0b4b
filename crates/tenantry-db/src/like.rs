//! Case-insensitive substring search with `LIKE`.

use sea_query::LikeExpr;

/// `%text%`, lower-cased, with LIKE's wildcards in `text` escaped by `\`.
fn pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Matches values containing `text`, for `LOWER(column) LIKE …` (case-insensitive; on
/// SQLite `LOWER` folds ASCII letters only).
pub fn contains_pattern(text: &str) -> LikeExpr {
    LikeExpr::new(pattern(text)).escape('\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(pattern("ACME"), "%acme%");
    }
}
