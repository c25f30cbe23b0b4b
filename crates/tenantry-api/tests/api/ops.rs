use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    health_ready_and_index,
    request_id_and_security_headers,
    metrics_count_requests_by_route,
    metric_labels_come_from_bounded_sets,
    metrics_token_is_enforced_when_configured,
    unfit_request_ids_are_replaced,
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

async fn scrape(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Every value `label` takes in the `/metrics` text.
fn label_values(text: &str, label: &str) -> std::collections::BTreeSet<String> {
    let needle = format!("{label}=\"");
    let mut values = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for (i, _) in line.match_indices(&needle) {
            let rest = &line[i + needle.len()..];
            values.insert(rest.split('"').next().unwrap_or("").to_owned());
        }
    }
    values
}

async fn metric_labels_come_from_bounded_sets(app: TestApp) {
    // Made-up methods, unknown paths and odd statuses mint no new series.
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url("/health"))
            .send()
            .await
            .unwrap();
        let _ = app
            .client
            .get(app.url(&format!("/no/such/path/{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = scrape(&app).await;
    let methods = label_values(&text, "method");
    let allowed = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "OTHER",
    ];
    assert!(
        methods.iter().all(|m| allowed.contains(&m.as_str())),
        "{methods:?}"
    );
    assert!(methods.contains("OTHER"), "{methods:?}");
    let routes = label_values(&text, "route");
    assert!(
        routes
            .iter()
            .all(|r| r == "unmatched" || r.starts_with('/')),
        "{routes:?}"
    );
    assert!(!routes.iter().any(|r| r.contains("no/such")), "{routes:?}");
    for status in label_values(&text, "status") {
        assert!(
            status.len() == 3 && status.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{status}"
        );
    }
    // The same requests again leave the text the same size (no series per request); the
    // recorder is shared by the tests of this process, so count only this route's lines.
    let lines = |text: &str| {
        text.lines()
            .filter(|l| l.contains(r#"route="/health""#) && l.contains(r#"method="OTHER""#))
            .count()
    };
    let before = lines(&text);
    for i in 40..80 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url("/health"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(lines(&scrape(&app).await), before);
}

async fn metrics_token_is_enforced_when_configured(app: TestApp) {
    let guarded = app
        .sibling(|c| c.http.metrics_token = Some("metrics-s3cret-token".to_owned().into()))
        .await;
    guarded
        .get("/metrics", None)
        .await
        .assert_problem(401, "unauthenticated");
    guarded
        .get("/metrics", Some("metrics-s3cret-tokeN"))
        .await
        .assert_problem(401, "unauthenticated");
    let user = app.register("metrics-reader@example.com").await;
    guarded
        .get("/metrics", Some(&user.token))
        .await
        .assert_problem(401, "unauthenticated");
    let ok = guarded
        .client
        .get(guarded.url("/metrics"))
        .bearer_auth("metrics-s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("http_requests_total"));
}

async fn unfit_request_ids_are_replaced(app: TestApp) {
    let echo = |id: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .get(app.url("/health"))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    let fits = "a".repeat(128);
    assert_eq!(echo(fits.clone()).await, fits);
    for unfit in ["a".repeat(129), "a".repeat(10_000), "has space".to_owned()] {
        let id = echo(unfit.clone()).await;
        assert_ne!(id, unfit);
        assert_eq!(id.len(), 36, "a fresh UUID instead: {id}");
    }
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
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
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
