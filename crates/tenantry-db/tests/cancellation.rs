//! A transaction whose future is dropped at any point must never leave its pooled connection
//! inside a transaction (sqlx 0.9.0's `begin` is not cancel-safe on PostgreSQL: upstream
//! transact-rs/sqlx#4393). A leaked scoped transaction would run the next borrower's queries as
//! the request role with another caller's `app.*` settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sea_query::{Expr, Query};
use tenantry_core::UserId;
use tenantry_db::{DatabaseConfig, Db, UserScope, migrate::Migrator};

#[tokio::test]
async fn cancelled_transactions_never_leak_into_the_pool() {
    let Some(url) = tenantry_testkit::fresh_postgres_database("cancelled_transactions").await
    else {
        return;
    };
    let config = DatabaseConfig {
        max_connections: 1,
        ..DatabaseConfig::default()
    };
    let db = Db::connect(&url, &config).await.unwrap();
    Migrator::new(tenantry_db::migrations::MIGRATIONS.to_vec())
        .unwrap()
        .up(&db)
        .await
        .unwrap();
    let login_role: String = db
        .read_optional(
            &Query::select()
                .expr(Expr::cust("current_user::text"))
                .to_owned(),
        )
        .await
        .unwrap()
        .unwrap();
    let scope = UserScope::for_authenticated(UserId::new());
    for round in 0..300u64 {
        // Cancel the begin at a spread of points: before, during and after its round trip.
        let budget = Duration::from_micros(round % 60 * 10);
        let _ = tokio::time::timeout(budget, db.begin_user(&scope, false)).await;
        let (role, user): (String, String) = db
            .read_optional(
                &Query::select()
                    .expr(Expr::cust("current_user::text"))
                    .expr(Expr::cust(
                        "coalesce(current_setting('app.user_id', true), '')",
                    ))
                    .to_owned(),
            )
            .await
            .unwrap_or_else(|e| panic!("round {round}: the pooled connection is unusable: {e}"))
            .unwrap();
        assert_eq!(
            role, login_role,
            "round {round}: a scoped transaction leaked into the pool"
        );
        assert_eq!(user, "", "round {round}: app.user_id leaked into the pool");
    }
}
