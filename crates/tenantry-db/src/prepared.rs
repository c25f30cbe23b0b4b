//! Statements of a fixed shape whose SQL is rendered once.
//!
//! Building a sea-query statement and rendering it costs tens of thousands of instructions;
//! for the statements every request runs (session check, authorization, point reads) that was
//! a third of a project read. A [`Prepared`] statement keeps sea-query as the one source of
//! its SQL — the shape function is the same builder the code would otherwise call — but
//! renders it once per backend, on first use, and afterwards only collects the values.
//!
//! The values come from a small hand-written function, in the order of the placeholders.
//! That order is checked: debug builds (every test run) render the whole statement on every
//! call and assert that the SQL and the values are the ones the shape renders, and release
//! builds compare them at the first render and, should they ever differ, log it and render
//! the statement on every call instead of trusting the cache.

use std::{borrow::Cow, sync::OnceLock};

use sea_query::{QueryStatementWriter, SelectStatement, Value, Values};

use crate::{Backend, render};

/// Something the database layer can run: a sea-query statement (rendered on every call) or a
/// [`Prepared`] statement bound to its parameters (rendered once).
pub trait Statement {
    /// The SQL text for `backend` and the values of its placeholders, in order.
    fn to_sql(&self, backend: Backend) -> (Cow<'_, str>, Values);
}

impl<S: QueryStatementWriter> Statement for S {
    fn to_sql(&self, backend: Backend) -> (Cow<'_, str>, Values) {
        let (sql, values) = render(backend, self);
        (Cow::Owned(sql), values)
    }
}

/// A select statement of fixed shape over parameters `P` (typically a tuple of ids). Declare
/// it as a `static` and run `PREPARED.bind(params)` wherever a statement is accepted.
pub struct Prepared<P> {
    name: &'static str,
    shape: fn(&P) -> SelectStatement,
    values: fn(&P) -> Vec<Value>,
    /// Per backend: the rendered SQL, or `None` when the values function was found not to
    /// match the shape (then every call renders).
    sql: [OnceLock<Option<String>>; 2],
}

impl<P> std::fmt::Debug for Prepared<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("name", &self.name)
            .finish()
    }
}

impl<P> Prepared<P> {
    /// `shape` builds the statement for some parameters; `values` lists the same parameters
    /// as values in the order in which the rendered statement's placeholders use them.
    /// `name` identifies the statement in logs.
    pub const fn new(
        name: &'static str,
        shape: fn(&P) -> SelectStatement,
        values: fn(&P) -> Vec<Value>,
    ) -> Self {
        Self {
            name,
            shape,
            values,
            sql: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The statement with its parameters, ready to run.
    pub fn bind(&self, params: P) -> Bound<'_, P> {
        Bound {
            prepared: self,
            params,
        }
    }

    fn slot(&self, backend: Backend) -> &OnceLock<Option<String>> {
        match backend {
            Backend::Sqlite => &self.sql[0],
            Backend::Postgres => &self.sql[1],
        }
    }
}

/// A [`Prepared`] statement with its parameters.
pub struct Bound<'a, P> {
    prepared: &'a Prepared<P>,
    params: P,
}

impl<P> std::fmt::Debug for Bound<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("name", &self.prepared.name)
            .finish()
    }
}

impl<P> Statement for Bound<'_, P> {
    fn to_sql(&self, backend: Backend) -> (Cow<'_, str>, Values) {
        let prepared = self.prepared;
        let values = Values((prepared.values)(&self.params));
        let cached = prepared.slot(backend).get_or_init(|| {
            let (sql, rendered) = render(backend, &(prepared.shape)(&self.params));
            if rendered == values {
                Some(sql)
            } else {
                tracing::error!(
                    statement = prepared.name,
                    "prepared statement values do not match its shape; rendering every call"
                );
                None
            }
        });
        if cfg!(debug_assertions) {
            let (sql, rendered) = render(backend, &(prepared.shape)(&self.params));
            assert_eq!(
                rendered, values,
                "values of prepared statement {} (order of the placeholders)",
                prepared.name
            );
            assert_eq!(
                Some(&sql),
                cached.as_ref(),
                "SQL of prepared statement {} (its shape must not depend on the values)",
                prepared.name
            );
        }
        match cached {
            Some(sql) => (Cow::Borrowed(sql.as_str()), values),
            None => {
                let (sql, values) = render(backend, &(prepared.shape)(&self.params));
                (Cow::Owned(sql), values)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_query::{Expr, ExprTrait, Query};

    use super::*;

    fn shape(&(a, b): &(i64, i64)) -> SelectStatement {
        let mut q = Query::select();
        q.column("id")
            .from("t")
            .and_where(Expr::col("a").eq(a))
            .and_where(Expr::col("b").eq(b));
        q
    }

    static RIGHT: Prepared<(i64, i64)> =
        Prepared::new("right", shape, |&(a, b)| vec![a.into(), b.into()]);
    static SWAPPED: Prepared<(i64, i64)> =
        Prepared::new("swapped", shape, |&(a, b)| vec![b.into(), a.into()]);

    #[test]
    fn renders_once_and_binds_the_values_of_each_call() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (one, two) = (RIGHT.bind((1, 2)), RIGHT.bind((3, 4)));
            let (first, _) = one.to_sql(backend);
            let (second, values) = two.to_sql(backend);
            assert!(matches!(second, Cow::Borrowed(_)));
            assert_eq!(first, second);
            assert_eq!(second, render(backend, &shape(&(3, 4))).0);
            assert_eq!(values, Values(vec![3i64.into(), 4i64.into()]));
        }
    }

    #[test]
    #[should_panic(expected = "values of prepared statement swapped")]
    fn values_out_of_placeholder_order_are_caught() {
        let _ = SWAPPED.bind((1, 2)).to_sql(Backend::Sqlite);
    }
}
