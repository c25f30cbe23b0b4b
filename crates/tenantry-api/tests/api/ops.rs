use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    health_ready_and_index,
    request_id_and_security_headers,
    metrics_count_requests_by_route,
    openapi_and_docs_are_served,
    jwks_publishes_the_signing_key,
    unknown_routes_and_methods_are_problems,
    oversized_bodies_are_refused,
);

async fn health_ready_and_index(app: TestApp) {
    let r = app.get("/health", None).await;
    r.assert(200);
    assert_eq!(r.body, json!({"status": "ok"}));
    app.get("/ready", None).await.assert(200);
    let r = app.get("/", None).await;
    r.assert(200);
    assert_eq!(r.body["name"], "tenantry");
    assert_eq!(r.body["links"]["openapi"], "/openapi.json");
}

async fn request_id_and_security_headers(app: TestApp) {
    let r = app.get("/health", None).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID request id: {id}");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["referrer-policy"], "no-referrer");
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-id");
    // Problems carry the id too.
    let r = app.get("/api/v1/users/me", None).await;
    assert!(r.headers.contains_key("x-request-id"));
}

async fn metrics_count_requests_by_route(app: TestApp) {
    app.get("/api/v1/users/me", None).await.assert(401);
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"route="/api/v1/users/me""#)
            && l.contains(r#"status="401""#)),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "histogram missing"
    );
    assert!(text.contains("db_pool_connections"), "pool gauge missing");
}

async fn openapi_and_docs_are_served(app: TestApp) {
    let r = app.get("/openapi.json", None).await;
    r.assert(200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/tenants/{tenant_id}/members/{user_id}",
        "/api/v1/tenants/{tenant_id}/projects/{project_id}",
        "/api/v1/permissions",
    ] {
        assert!(
            r.body["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "docs page: {html}");
    assert!(
        !html.contains("https://"),
        "docs must not load assets from a CDN"
    );
}

async fn jwks_publishes_the_signing_key(app: TestApp) {
    let r = app.get("/.well-known/jwks.json", None).await;
    r.assert(200);
    let key = &r.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["alg"], "EdDSA");
    assert!(
        key.get("d").is_none(),
        "private part must never be published"
    );
    // Tokens name this key.
    let user = app.register("kid@example.com").await;
    let header = user.token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&base64_url_decode(header)).unwrap();
    assert_eq!(header["kid"], key["kid"]);
    assert_eq!(header["alg"], "EdDSA");
}

pub fn base64_url_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

async fn unknown_routes_and_methods_are_problems(app: TestApp) {
    app.get("/api/v1/nope", None)
        .await
        .assert_problem(404, "not_found");
    app.request(reqwest::Method::DELETE, "/api/v1/auth/login", None, None)
        .await
        .assert_problem(405, "method_not_allowed");
}

async fn oversized_bodies_are_refused(app: TestApp) {
    let big = "x".repeat(2 * 1024 * 1024);
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "a@example.com", "password": big, "first_name": "a", "last_name": "b"}),
    )
    .await
    .assert_problem(413, "payload_too_large");
}

/// The database becomes unreachable → /ready answers 503 and API calls 503 cleanly; when it
/// returns, the same process recovers without a restart.
#[tokio::test]
async fn readiness_follows_the_database() {
    use sqlx::{Connection, Executor};
    let Some(app) =
        crate::helpers::spawn_app(crate::helpers::Backend::Postgres, "ready_follows_db").await
    else {
        return;
    };
    let url = app.database_url.clone().unwrap();
    let (server, db_name) = url.rsplit_once('/').unwrap();
    let db_name = db_name.split('?').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    app.get("/ready", None).await.assert(200);

    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS false"
        ))))
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db_name)
        .execute(&mut admin)
        .await
        .unwrap();
    let r = app.get("/ready", None).await;
    r.assert_problem(503, "not_ready");
    assert!(r.headers.contains_key("retry-after"));
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@example.com", "password": "whatever pass"}),
        )
        .await;
    assert_eq!(
        login.status, 503,
        "an unreachable database is a 503, not a 500: {}",
        login.body
    );

    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS true"
        ))))
        .await
        .unwrap();
    app.get("/ready", None).await.assert(200);
    app.register("back@example.com").await;
}
