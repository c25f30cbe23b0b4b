//! The table itself: append-only for the application on both backends, and chains that
//! stay contiguous under concurrent writers.

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use tenantry_db::AdminScope;

use crate::helpers::TestApp;

crate::backend_tests!(
    records_cannot_be_changed_or_deleted,
    concurrent_changes_keep_each_chain_contiguous,
);

fn raw(sql: &str) -> sqlx::RawSql {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
}

/// Records in the table, or in one chain.
async fn count_in(app: &TestApp, chain: Option<&str>) -> i64 {
    use sea_query::{Expr, ExprTrait, Func, Query};
    let mut q = Query::select();
    q.expr(Func::count(Expr::col("seq"))).from("audit_logs");
    if let Some(chain) = chain {
        q.and_where(Expr::col("chain_id").eq(chain.parse::<uuid::Uuid>().unwrap()));
    }
    let n: Option<i64> = app.state.db.read_optional(&q).await.unwrap();
    n.unwrap()
}

async fn count(app: &TestApp) -> i64 {
    count_in(app, None).await
}

async fn records_cannot_be_changed_or_deleted(app: TestApp) {
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "Acme").await;
    let before = count(&app).await;
    assert!(before >= 3, "sign-up, sign-in and the tenant");

    match &app.database_url {
        None => {
            // SQLite: triggers refuse both statements, even to the file's owner.
            let db = app.db().await;
            for sql in [
                "UPDATE audit_logs SET summary = '{}'",
                "UPDATE audit_logs SET outcome = 'failure' WHERE action = 'tenant.created'",
                "DELETE FROM audit_logs",
                "DELETE FROM audit_logs WHERE seq = 1",
            ] {
                let refused = db.execute_script(sql).await;
                let error = format!("{:#}", refused.expect_err(sql));
                assert!(error.contains("append-only"), "{sql}: {error}");
            }
        }
        Some(url) => {
            // PostgreSQL: the request role has no UPDATE grant, and DELETE reaches only
            // records of deleted tenants — in every context the application uses.
            let mut conn = PgConnection::connect(url).await.unwrap();
            let contexts = [
                format!("SELECT set_config('app.tenant_id', '{tenant}', true)"),
                format!("SELECT set_config('app.user_id', '{}', true)", owner.id),
                "SELECT set_config('app.platform_admin', 'on', true)".to_owned(),
                "SELECT 1".to_owned(),
            ];
            for context in &contexts {
                for sql in [
                    "UPDATE audit_logs SET summary = '{}'",
                    "UPDATE audit_logs SET outcome = 'failure' WHERE action = 'tenant.created'",
                ] {
                    conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
                        .await
                        .unwrap();
                    conn.execute(raw(context)).await.unwrap();
                    let refused = conn.execute(sql).await;
                    assert!(refused.is_err(), "{context}: {sql} was allowed");
                    conn.execute("ROLLBACK").await.unwrap();
                }
                conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
                    .await
                    .unwrap();
                conn.execute(raw(context)).await.unwrap();
                let deleted = conn.execute("DELETE FROM audit_logs").await;
                assert!(
                    deleted.is_err() || deleted.unwrap().rows_affected() == 0,
                    "{context}: DELETE removed records"
                );
                conn.execute("COMMIT").await.unwrap();
            }
            // Nor can a tenant transaction plant a record in another chain.
            conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
                .await
                .unwrap();
            conn.execute(raw(&contexts[0])).await.unwrap();
            let planted = conn
                .execute(
                    "INSERT INTO audit_logs (chain_id, seq, tenant_id, id, occurred_at, \
                     actor_type, action, target_type, outcome, summary, prev_hash, hash) \
                     VALUES (gen_random_uuid(), 1, NULL, gen_random_uuid(), now(), 'system', \
                     'x.y', 'x', 'success', '{}', '\\x00', '\\x00')",
                )
                .await;
            assert!(
                planted.is_err(),
                "a tenant transaction wrote a non-tenant record"
            );
            conn.execute("ROLLBACK").await.unwrap();
        }
    }
    assert_eq!(count(&app).await, before);
    let report = tenantry_audit::verify(&app.state.db, &AdminScope::for_housekeeping())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
}

async fn concurrent_changes_keep_each_chain_contiguous(app: TestApp) {
    let users = [
        app.register("a@example.com").await,
        app.register("b@example.com").await,
    ];
    let tenant = app.create_tenant(&users[0], "Acme").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let user = users[i % 2].clone();
        let app = &app;
        tasks.push(async move {
            app.patch(
                "/api/v1/users/me",
                Some(&user.token),
                json!({"first_name": format!("N{i}")}),
            )
            .await
            .assert(200);
        });
    }
    futures_join(tasks).await;
    // And concurrent appends to one tenant chain.
    let db = app.state.db.clone();
    let tenant_id = tenantry_core::TenantId::from_uuid(tenant.parse().unwrap());
    let mut handles = Vec::new();
    for i in 0..8 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let mut tx = db.begin_admin(&AdminScope::for_housekeeping()).await?;
            tenantry_audit::record_in(
                &mut tx,
                tenantry_audit::Chain::Tenant(tenant_id),
                tenantry_audit::AuditActor::System,
                &tenantry_core::Origin::NONE,
                tenantry_audit::Entry::new("widget.created", "widget", i),
            )
            .await?;
            tx.commit().await
        }));
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let report = tenantry_audit::verify(&app.state.db, &AdminScope::for_housekeeping())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
    // Each user: registered, signed in, 6 updates; the tenant: created, 8 appends.
    for user in &users {
        assert_eq!(count_in(&app, Some(&user.id)).await, 8);
    }
    assert!(count_in(&app, Some(&tenant)).await >= 9);
}

/// Runs futures concurrently on this task (requests overlap on the server).
async fn futures_join<F: std::future::Future<Output = ()>>(tasks: Vec<F>) {
    let mut pinned: Vec<_> = tasks.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
