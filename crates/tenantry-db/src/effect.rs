//! Effect marks: a statement that every write transaction of one request commits together
//! with its own changes.
//!
//! Idempotent requests (`Idempotency-Key`) use it so that a request's side effect and the
//! record "this key's request has taken effect" commit atomically: the HTTP layer reserves
//! the key, then runs the handler inside [`EffectMark::scope`]; [`crate::Tx::commit`] of any
//! transaction that wrote something runs the mark first, and rolls the transaction back when
//! the mark no longer finds its row (another request took the reservation over). See
//! `docs/adr/0008-idempotency-keys.md`.

use std::{future::Future, sync::Arc};

use sea_query::UpdateStatement;

use crate::{Backend, DbError, Tx};

tokio::task_local! {
    static MARK: Arc<EffectMark>;
}

/// An `UPDATE` that must change exactly one row, run in every write transaction committed
/// while it is in scope.
#[derive(Debug)]
pub struct EffectMark {
    statement: UpdateStatement,
    postgres_setup: Option<String>,
}

impl EffectMark {
    /// `postgres_setup` is parameterless SQL of ours (never user input) run before the
    /// statement on PostgreSQL, e.g. a transaction-local setting that lets row-level security
    /// reveal the marked row whatever tenant the transaction is confined to.
    pub fn new(statement: UpdateStatement, postgres_setup: Option<String>) -> Self {
        Self {
            statement,
            postgres_setup,
        }
    }

    /// Runs `future` (and every transaction it commits on this task) under this mark.
    /// Tasks it spawns do not inherit the mark.
    pub async fn scope<F: Future>(self: Arc<Self>, future: F) -> F::Output {
        MARK.scope(self, future).await
    }

    /// The mark of the running task, if any.
    pub(crate) fn current() -> Option<Arc<Self>> {
        MARK.try_with(Arc::clone).ok()
    }

    /// Runs the mark in `tx`; an error when it changed no row.
    pub(crate) async fn apply(&self, tx: &mut Tx) -> Result<(), DbError> {
        if tx.backend() == Backend::Postgres
            && let Some(setup) = &self.postgres_setup
        {
            tx.execute_script(setup).await?;
        }
        match tx.execute(&self.statement).await? {
            1 => Ok(()),
            n => Err(DbError::Other(anyhow::anyhow!(
                "the effect mark changed {n} rows instead of 1 (the idempotency reservation is \
                 no longer held by this request); rolling back"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_query::{Expr, ExprTrait, Query};

    use super::*;
    use crate::{Db, InsertRow};

    fn mark(id: &str) -> Arc<EffectMark> {
        Arc::new(EffectMark::new(
            Query::update()
                .table("marks")
                .value("state", "applied")
                .and_where(Expr::col("id").eq(id))
                .to_owned(),
            None,
        ))
    }

    async fn write(db: &Db, n: i64) -> Result<(), DbError> {
        let mut tx = db.begin_write().await?;
        tx.execute(Query::insert().into_table("effects").row([("n", n.into())]))
            .await?;
        tx.commit().await
    }

    #[tokio::test]
    async fn writes_commit_with_their_mark_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, &Default::default()).await.unwrap();
        db.execute_script(
            "CREATE TABLE effects (n INTEGER);
             CREATE TABLE marks (id TEXT, state TEXT);
             INSERT INTO marks VALUES ('held', 'in_progress');",
        )
        .await
        .unwrap();
        // Under a mark that finds its row, the write and the mark commit together.
        mark("held").scope(write(&db, 1)).await.unwrap();
        // A mark that finds no row (the reservation was lost) rolls the write back.
        assert!(mark("lost").scope(write(&db, 2)).await.is_err());
        // A transaction that changed nothing does not run the mark.
        mark("lost")
            .scope(async {
                let mut tx = db.begin_write().await?;
                tx.execute(
                    Query::update()
                        .table("effects")
                        .value("n", 0)
                        .and_where(Expr::col("n").eq(99)),
                )
                .await?;
                tx.commit().await
            })
            .await
            .unwrap();
        // Outside a scope nothing is marked.
        write(&db, 3).await.unwrap();
        let effects: Vec<i64> = db
            .read_all(Query::select().column("n").from("effects"))
            .await
            .unwrap();
        assert_eq!(effects, [1, 3]);
        let states: Vec<String> = db
            .read_all(Query::select().column("state").from("marks"))
            .await
            .unwrap();
        assert_eq!(states, ["applied"]);
    }
}
