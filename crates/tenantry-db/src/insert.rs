//! Inserts that write each column beside its value.
//!
//! sea-query takes an insert's columns and its values as two lists and compares their
//! lengths when the statement is built (`values_panic` panics on a mismatch); two lists of
//! the same length can still be in different orders. A row given as `(column, value)` pairs
//! cannot be either.

use sea_query::{Expr, InsertStatement};

/// `InsertStatement::row`: one row of `(column, value)` pairs.
pub trait InsertRow {
    /// Sets the statement's columns to the pairs' columns and adds their values as one row.
    /// For several rows, call it once per row with the same columns in the same order.
    fn row<const N: usize>(&mut self, pairs: [(&'static str, Expr); N]) -> &mut Self;

    /// [`row`](InsertRow::row) with a number of columns known only at run time (optional
    /// columns).
    fn row_of(&mut self, pairs: Vec<(&'static str, Expr)>) -> &mut Self;

    /// One row in the order of a column list kept elsewhere (one that `FromRow` also reads
    /// in): the two arrays have the same length or the call does not compile.
    fn row_in<const N: usize>(
        &mut self,
        columns: [&'static str; N],
        values: [Expr; N],
    ) -> &mut Self;
}

impl InsertRow for InsertStatement {
    fn row<const N: usize>(&mut self, pairs: [(&'static str, Expr); N]) -> &mut Self {
        self.row_of(Vec::from(pairs))
    }

    fn row_in<const N: usize>(
        &mut self,
        columns: [&'static str; N],
        values: [Expr; N],
    ) -> &mut Self {
        self.row_of(columns.into_iter().zip(values).collect())
    }

    fn row_of(&mut self, pairs: Vec<(&'static str, Expr)>) -> &mut Self {
        let (columns, values): (Vec<&'static str>, Vec<Expr>) = pairs.into_iter().unzip();
        self.columns(columns);
        // One value per column by construction: sea-query's length check cannot fail.
        let added = self.values(values).is_ok();
        debug_assert!(added, "one value per column");
        self
    }
}

#[cfg(test)]
mod tests {
    use sea_query::{Query, SqliteQueryBuilder};

    use super::*;

    #[test]
    fn pairs_become_columns_and_values_in_order() {
        let sql = Query::insert()
            .into_table("t")
            .row([("a", 1.into()), ("b", "x".into())])
            .row([("a", 2.into()), ("b", "y".into())])
            .to_string(SqliteQueryBuilder);
        assert_eq!(
            sql,
            r#"INSERT INTO "t" ("a", "b") VALUES (1, 'x'), (2, 'y')"#
        );
    }
}
