//! `Idempotency-Key` around the effect: a failed effect leaves the key free for a retry, an
//! effect whose response was lost is never repeated, and (PostgreSQL) stored keys obey
//! row-level security.

use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_db::AdminScope;

use crate::{
    helpers::{Backend, TestApp, spawn_app_with},
    idempotency::{post_keyed, project_names, projects_path, replayed},
};

crate::backend_tests!(a_failed_effect_releases_the_key_for_a_retry);

/// On each backend: a trigger that refuses projects named `boom`, or refuses to store a
/// response (`completed`).
async fn install_trigger(app: &TestApp, backend: Backend, on_completed: bool) {
    let (table, when) = if on_completed {
        ("idempotency_keys", "NEW.state = 'completed'")
    } else {
        ("projects", "NEW.name = 'boom'")
    };
    let timing = if on_completed { "UPDATE" } else { "INSERT" };
    let sql = match backend {
        Backend::Sqlite => format!(
            "CREATE TRIGGER test_boom BEFORE {timing} ON {table} WHEN {when}
             BEGIN SELECT RAISE(ABORT, 'boom'); END;"
        ),
        Backend::Postgres => format!(
            "CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF {when} THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER test_boom BEFORE {timing} ON {table}
             FOR EACH ROW EXECUTE FUNCTION test_boom();"
        ),
    };
    app.db().await.execute_script(&sql).await.unwrap();
}

async fn drop_trigger(app: &TestApp, backend: Backend, table: &str) {
    let sql = match backend {
        Backend::Sqlite => "DROP TRIGGER test_boom;".to_owned(),
        Backend::Postgres => {
            format!("DROP TRIGGER test_boom ON {table}; DROP FUNCTION test_boom();")
        }
    };
    app.db().await.execute_script(&sql).await.unwrap();
}

fn backend_of(app: &TestApp) -> Backend {
    if app.database_url.is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

async fn a_failed_effect_releases_the_key_for_a_retry(app: TestApp) {
    let backend = backend_of(&app);
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    install_trigger(&app, backend, false).await;
    let failed = post_keyed(
        &app,
        &path,
        &w.owner.token,
        "retry-me",
        json!({"name": "boom"}),
    )
    .await;
    failed.assert_problem(500, "internal_error");
    drop_trigger(&app, backend, "projects").await;
    // The 500 was not stored and nothing took effect: the retry runs.
    let retried = post_keyed(
        &app,
        &path,
        &w.owner.token,
        "retry-me",
        json!({"name": "boom"}),
    )
    .await;
    retried.assert(201);
    assert!(!replayed(&retried));
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await,
        ["boom"]
    );
}

#[tokio::test]
async fn sqlite_an_effect_whose_response_was_lost_is_never_repeated() {
    an_effect_whose_response_was_lost_is_never_repeated(Backend::Sqlite, "idem_lost_sqlite").await;
}

#[tokio::test]
async fn postgres_an_effect_whose_response_was_lost_is_never_repeated() {
    an_effect_whose_response_was_lost_is_never_repeated(Backend::Postgres, "idem_lost_pg").await;
}

/// The effect committed with its "applied" record, then storing the response failed (as if
/// the server had stopped): retries wait, then answer 409, and never run the request again.
async fn an_effect_whose_response_was_lost_is_never_repeated(backend: Backend, test: &str) {
    let Some(app) = spawn_app_with(backend, test, |c| c.http.idempotency_wait_secs = 1).await
    else {
        return;
    };
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    install_trigger(&app, backend, true).await;
    let first = post_keyed(&app, &path, &w.owner.token, "lost", json!({"name": "Lost"})).await;
    first.assert(201);
    drop_trigger(&app, backend, "idempotency_keys").await;
    let started = std::time::Instant::now();
    let waiting = post_keyed(&app, &path, &w.owner.token, "lost", json!({"name": "Lost"})).await;
    waiting.assert_problem(409, "idempotency_key_in_progress");
    assert!(waiting.headers.contains_key("retry-after"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    // Once the holder's lease has run out, the answer says what happened.
    let db = app.db().await;
    let mut tx = db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let states: Vec<String> = tx
        .fetch_all(
            Query::select()
                .column("state")
                .from("idempotency_keys")
                .and_where(Expr::col("client_key").eq("lost")),
        )
        .await
        .unwrap();
    assert_eq!(states, ["applied"]);
    tx.execute(
        Query::update()
            .table("idempotency_keys")
            .value(
                "locked_until",
                chrono::Utc::now() - chrono::TimeDelta::seconds(1),
            )
            .and_where(Expr::col("client_key").eq("lost")),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let lost = post_keyed(&app, &path, &w.owner.token, "lost", json!({"name": "Lost"})).await;
    lost.assert_problem(409, "idempotency_key_in_progress");
    assert!(
        lost.body["detail"]
            .as_str()
            .unwrap()
            .contains("took effect"),
        "{}",
        lost.body
    );
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await,
        ["Lost"]
    );
}

#[tokio::test]
async fn postgres_keys_of_one_tenant_are_invisible_to_another() {
    use sqlx::{Connection, Executor, Row};
    let Some(app) = crate::helpers::spawn_app(Backend::Postgres, "idempotency_rls").await else {
        return;
    };
    let w = app.world().await;
    for (tenant, token) in [
        (&w.tenant, &w.owner.token),
        (&w.other_tenant, &w.outsider.token),
    ] {
        post_keyed(
            &app,
            &projects_path(tenant),
            token,
            "rls",
            json!({"name": "R"}),
        )
        .await
        .assert(201);
    }
    post_keyed(
        &app,
        "/api/v1/tenants",
        &w.owner.token,
        "rls",
        json!({"name": "No tenant"}),
    )
    .await
    .assert(201);
    let mut conn = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
        .await
        .unwrap();
    for (tenant, expected) in [
        (Some(&w.tenant), vec![Some(w.tenant.clone())]),
        (Some(&w.other_tenant), vec![Some(w.other_tenant.clone())]),
        (None, vec![None]),
    ] {
        conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
            .await
            .unwrap();
        if let Some(tenant) = tenant {
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let seen: Vec<Option<String>> = sqlx::query("SELECT tenant_id FROM idempotency_keys")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<Option<uuid::Uuid>, _>(0).map(|u| u.to_string()))
            .collect();
        assert_eq!(seen, expected, "as tenant {tenant:?}");
        // Nor can a tenant transaction plant a key in another tenant.
        if let Some(tenant) = tenant {
            let other = if *tenant == w.tenant {
                &w.other_tenant
            } else {
                &w.tenant
            };
            let planted = sqlx::query(
                "INSERT INTO idempotency_keys (id, tenant_id, caller, client_key, fingerprint, \
                 state, lease, locked_until, created_at, expires_at) VALUES (gen_random_uuid(), \
                 $1::uuid, 'user:x', 'planted', '\\x00', 'in_progress', gen_random_uuid(), now(), \
                 now(), now())",
            )
            .bind(other)
            .execute(&mut conn)
            .await;
            assert!(planted.is_err(), "planted a key in another tenant");
        }
        conn.execute("ROLLBACK").await.unwrap();
    }
}
