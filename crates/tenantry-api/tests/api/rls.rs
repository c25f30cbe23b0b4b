//! Row-level security, proven without the application: queries run as the request role
//! see only the tenant set for the transaction, even with no WHERE clause.

use sqlx::{Connection, Executor, PgConnection, Row};

use crate::helpers::{Backend, TestApp, spawn_app};

async fn postgres_app(test: &str) -> Option<(TestApp, PgConnection)> {
    let app = spawn_app(Backend::Postgres, test).await?;
    let conn = PgConnection::connect(app.database_url.as_deref().unwrap())
        .await
        .unwrap();
    Some((app, conn))
}

async fn as_tenant(conn: &mut PgConnection, tenant: Option<&str>) {
    conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
        .await
        .unwrap();
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

async fn tenant_ids(conn: &mut PgConnection, sql: &'static str) -> Vec<String> {
    sqlx::query(sql)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<uuid::Uuid, _>(0).to_string())
        .collect()
}

#[tokio::test]
async fn request_role_sees_only_its_tenant_without_a_where_clause() {
    let Some((app, mut conn)) = postgres_app("rls_request_role").await else {
        return;
    };
    let w = app.world().await;
    app.create_project(&w.tenant, &w.owner, "A1").await;
    app.create_project(&w.tenant, &w.owner, "A2").await;
    app.create_project(&w.other_tenant, &w.outsider, "B1").await;

    as_tenant(&mut conn, Some(&w.tenant)).await;
    let projects = tenant_ids(&mut conn, "SELECT tenant_id FROM projects").await;
    assert_eq!(projects.len(), 2);
    assert!(projects.iter().all(|t| *t == w.tenant));
    let members = tenant_ids(&mut conn, "SELECT tenant_id FROM memberships").await;
    assert_eq!(members.len(), 4);
    assert!(members.iter().all(|t| *t == w.tenant));
    assert_eq!(
        tenant_ids(&mut conn, "SELECT id FROM tenants").await,
        std::slice::from_ref(&w.tenant)
    );
    // Writes into another tenant are refused or touch nothing.
    let planted = sqlx::query(
        "INSERT INTO projects (tenant_id, id, name, settings, created_at, updated_at) \
         VALUES ($1::uuid, gen_random_uuid(), 'planted', '{}', now(), now())",
    )
    .bind(&w.other_tenant)
    .execute(&mut conn)
    .await;
    assert!(
        planted.is_err(),
        "insert into a foreign tenant must violate the policy"
    );
    conn.execute("ROLLBACK").await.unwrap();

    as_tenant(&mut conn, Some(&w.tenant)).await;
    let updated = sqlx::query("UPDATE projects SET description = 'pwned'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 2, "only A's rows are reachable");
    conn.execute("ROLLBACK").await.unwrap();

    // No tenant set (including right after a tenant transaction on this connection): nothing.
    as_tenant(&mut conn, Some(&w.tenant)).await;
    conn.execute("COMMIT").await.unwrap();
    as_tenant(&mut conn, None).await;
    for sql in [
        "SELECT tenant_id FROM projects",
        "SELECT tenant_id FROM memberships",
        "SELECT id FROM tenants",
    ] {
        assert!(
            tenant_ids(&mut conn, sql).await.is_empty(),
            "{sql} leaked rows with no tenant set"
        );
    }
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn every_tenant_table_forces_rls_and_the_request_role_cannot_bypass_it() {
    let Some((_app, mut conn)) = postgres_app("rls_catalog").await else {
        return;
    };
    let tenant_tables: Vec<(String, bool, bool)> = sqlx::query(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND (c.relname = 'tenants' OR EXISTS (
                SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert!(tenant_tables.len() >= 3, "{tenant_tables:?}");
    for (table, enabled, forced) in &tenant_tables {
        assert!(
            *enabled && *forced,
            "{table}: RLS enabled={enabled} forced={forced}"
        );
    }
    let role =
        sqlx::query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'tenantry_app'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        !role.get::<bool, _>(0),
        "request role must not be superuser"
    );
    assert!(!role.get::<bool, _>(1), "request role must not bypass RLS");
    let owned: i64 =
        sqlx::query("SELECT count(*) FROM pg_tables WHERE tableowner = 'tenantry_app'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
    assert_eq!(owned, 0, "request role must own no table");
    // Member profiles are readable in tenant transactions; password hashes are not.
    as_tenant(&mut conn, None).await;
    sqlx::query("SELECT id, email, first_name FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    as_tenant(&mut conn, None).await;
    let hashes = sqlx::query("SELECT password_hash FROM users")
        .fetch_all(&mut conn)
        .await;
    assert!(
        hashes.is_err(),
        "the request role must not read password hashes"
    );
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn without_a_tenant_or_the_admin_flag_the_request_role_sees_no_tenant_rows() {
    let Some((app, mut conn)) = postgres_app("rls_no_tenant").await else {
        return;
    };
    let w = app.world().await;
    app.create_project(&w.tenant, &w.owner, "A1").await;
    app.post(
        &format!("/api/v1/tenants/{}/api-keys", w.tenant),
        Some(&w.owner.token),
        serde_json::json!({"name": "k", "role": "viewer"}),
    )
    .await
    .assert(201);
    let tables: Vec<String> = sqlx::query(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    let count =
        |table: &str| format!("SELECT count(*) FROM \"{table}\" WHERE tenant_id IS NOT NULL");
    let mut seen_as_owner = 0;
    for table in tables.iter().map(String::as_str).chain(["tenants"]) {
        let sql = if table == "tenants" {
            "SELECT count(*) FROM tenants".to_owned()
        } else {
            count(table)
        };
        for flag in [None, Some("off")] {
            as_tenant(&mut conn, None).await;
            if let Some(flag) = flag {
                sqlx::query("SELECT set_config('app.platform_admin', $1, true)")
                    .bind(flag)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let visible: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get(0);
            conn.execute("ROLLBACK").await.unwrap();
            assert_eq!(visible, 0, "{table} with app.platform_admin={flag:?}");
        }
        // The same query as the database owner sees the rows, so the zero above is RLS.
        let stored: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        seen_as_owner += stored;
    }
    assert!(tables.len() >= 8, "{tables:?}");
    assert!(seen_as_owner > 10, "the tables hold rows: {seen_as_owner}");
}

#[tokio::test]
async fn the_request_role_cannot_reach_account_events() {
    let Some((app, mut conn)) = postgres_app("rls_platform_events").await else {
        return;
    };
    let w = app.world().await;
    // Registrations wrote account events, which are no tenant's.
    let stored: i64 = sqlx::query("SELECT count(*) FROM platform_events")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert!(stored >= 5, "{stored}");
    for tenant in [Some(w.tenant.as_str()), None] {
        as_tenant(&mut conn, tenant).await;
        let read = sqlx::query("SELECT count(*) FROM platform_events")
            .fetch_one(&mut conn)
            .await;
        assert!(
            read.is_err(),
            "the request role must not read account events"
        );
        conn.execute("ROLLBACK").await.unwrap();
        as_tenant(&mut conn, tenant).await;
        let planted = sqlx::query(
            "INSERT INTO platform_events (id, type, source, subject, time, data) \
             VALUES (gen_random_uuid(), 'user.registered', '/users/x', 'users/x', now(), '{}')",
        )
        .execute(&mut conn)
        .await;
        assert!(
            planted.is_err(),
            "the request role must not write account events"
        );
        conn.execute("ROLLBACK").await.unwrap();
    }
}
