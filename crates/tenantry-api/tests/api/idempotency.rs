//! `Idempotency-Key` on POST: replays, concurrency, scoping, refusals, pruning and the
//! OpenAPI document. Failures around the effect and row-level security: `idempotency_effects`.

use reqwest::StatusCode;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::{Value, json};
use tenantry_db::AdminScope;

use crate::helpers::{Resp, TestApp};

crate::backend_tests!(
    a_retry_replays_the_first_response_and_takes_no_second_effect,
    fifty_concurrent_identical_requests_take_effect_once,
    the_same_key_with_another_request_is_refused,
    keys_are_scoped_per_tenant_and_caller,
    requests_without_a_key_are_not_deduplicated,
    anonymous_posts_ignore_the_key,
    client_errors_are_stored_and_replayed,
    malformed_keys_are_refused,
    expired_keys_are_forgotten_and_pruned,
    the_header_and_the_429s_are_documented,
);

pub(crate) async fn send(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    key: Option<&str>,
    body: Value,
) -> Resp {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub(crate) async fn post_keyed(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> Resp {
    send(&app.client, app.url(path), Some(token), Some(key), body).await
}

pub(crate) fn replayed(resp: &Resp) -> bool {
    resp.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

pub(crate) fn projects_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/projects")
}

pub(crate) async fn project_names(app: &TestApp, tenant: &str, token: &str) -> Vec<String> {
    let resp = app
        .get(&format!("{}?limit=200", projects_path(tenant)), Some(token))
        .await;
    resp.assert(200);
    resp.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_retry_replays_the_first_response_and_takes_no_second_effect(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    let body = json!({"name": "Once", "description": "created once"});
    let first = post_keyed(&app, &path, &w.owner.token, "key-1", body.clone()).await;
    first.assert(201);
    assert!(!replayed(&first));
    let again = post_keyed(&app, &path, &w.owner.token, "key-1", body.clone()).await;
    again.assert(201);
    assert!(replayed(&again), "{:?}", again.headers);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["content-type"], "application/json");
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await,
        ["Once"]
    );
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("idempotency_requests_total{outcome=\"replayed\"}"),
        "{metrics}"
    );

    // Outside a tenant too (the tenant id of the stored row is NULL).
    let tenant = json!({"name": "Keyed Inc"});
    let created = post_keyed(
        &app,
        "/api/v1/tenants",
        &w.owner.token,
        "t-1",
        tenant.clone(),
    )
    .await;
    created.assert(201);
    let replay = post_keyed(&app, "/api/v1/tenants", &w.owner.token, "t-1", tenant).await;
    replay.assert(201);
    assert!(replayed(&replay));
    assert_eq!(replay.body["id"], created.body["id"]);
    let mine = app.get("/api/v1/tenants", Some(&w.owner.token)).await;
    let count = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tenant"]["name"] == "Keyed Inc")
        .count();
    assert_eq!(count, 1, "{}", mine.body);
}

async fn fifty_concurrent_identical_requests_take_effect_once(app: TestApp) {
    let w = app.world().await;
    let url = app.url(&projects_path(&w.tenant));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, url, token) = (app.client.clone(), url.clone(), w.owner.token.clone());
        tasks.spawn(async move {
            send(
                &client,
                url,
                Some(&token),
                Some("concurrent-key"),
                json!({"name": "Concurrent"}),
            )
            .await
        });
    }
    let mut responses = Vec::new();
    while let Some(resp) = tasks.join_next().await {
        responses.push(resp.unwrap());
    }
    assert_eq!(responses.len(), 50);
    for resp in &responses {
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        assert_eq!(resp.body, responses[0].body);
    }
    assert_eq!(
        responses.iter().filter(|r| !replayed(r)).count(),
        1,
        "exactly one response is the original"
    );
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await,
        ["Concurrent"]
    );
}

async fn the_same_key_with_another_request_is_refused(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    post_keyed(&app, &path, &w.owner.token, "k", json!({"name": "First"}))
        .await
        .assert(201);
    let other_body = post_keyed(&app, &path, &w.owner.token, "k", json!({"name": "Second"})).await;
    other_body.assert_problem(422, "idempotency_key_reused");
    let other_path = post_keyed(
        &app,
        &format!("/api/v1/tenants/{}/members", w.tenant),
        &w.owner.token,
        "k",
        json!({"name": "First"}),
    )
    .await;
    other_path.assert_problem(422, "idempotency_key_reused");
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await,
        ["First"]
    );
}

async fn keys_are_scoped_per_tenant_and_caller(app: TestApp) {
    let w = app.world().await;
    let body = json!({"name": "Shared"});
    let by_owner = post_keyed(
        &app,
        &projects_path(&w.tenant),
        &w.owner.token,
        "same",
        body.clone(),
    )
    .await;
    by_owner.assert(201);
    // Another caller in the same tenant: its own key (here: a name clash, not a replay).
    let by_admin = post_keyed(
        &app,
        &projects_path(&w.tenant),
        &w.admin.token,
        "same",
        body.clone(),
    )
    .await;
    by_admin.assert_problem(409, "already_exists");
    assert!(!replayed(&by_admin));
    let by_admin = post_keyed(
        &app,
        &projects_path(&w.tenant),
        &w.admin.token,
        "same-2",
        json!({"name": "By admin"}),
    )
    .await;
    by_admin.assert(201);
    // Another tenant with the same key and body: independent.
    let elsewhere = post_keyed(
        &app,
        &projects_path(&w.other_tenant),
        &w.outsider.token,
        "same",
        body.clone(),
    )
    .await;
    elsewhere.assert(201);
    assert!(!replayed(&elsewhere));
    assert_ne!(elsewhere.body["id"], by_owner.body["id"]);
    // The same caller and key outside the tenant: independent as well.
    let tenant = post_keyed(
        &app,
        "/api/v1/tenants",
        &w.owner.token,
        "same",
        json!({"name": "Other"}),
    )
    .await;
    tenant.assert(201);
    assert!(!replayed(&tenant));
}

async fn requests_without_a_key_are_not_deduplicated(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    let token = Some(w.owner.token.as_str());
    let first = send(
        &app.client,
        app.url(&path),
        token,
        None,
        json!({"name": "A"}),
    )
    .await;
    first.assert(201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    send(
        &app.client,
        app.url(&path),
        token,
        None,
        json!({"name": "A"}),
    )
    .await
    .assert_problem(409, "already_exists");
    send(
        &app.client,
        app.url(&path),
        token,
        None,
        json!({"name": "B"}),
    )
    .await
    .assert(201);
    assert_eq!(
        project_names(&app, &w.tenant, &w.owner.token).await.len(),
        2
    );
}

async fn anonymous_posts_ignore_the_key(app: TestApp) {
    // Register and login answer credentials: they are never stored or replayed.
    for email in ["anon-1@example.com", "anon-2@example.com"] {
        let body = json!({"email": email, "password": crate::helpers::PASSWORD,
            "first_name": "A", "last_name": "B"});
        let resp = send(
            &app.client,
            app.url("/api/v1/auth/register"),
            None,
            Some("anon"),
            body,
        )
        .await;
        resp.assert(201);
        assert!(!replayed(&resp));
    }
    let login = json!({"email": "anon-1@example.com", "password": crate::helpers::PASSWORD});
    let url = app.url("/api/v1/auth/login");
    let first = send(&app.client, url.clone(), None, Some("anon"), login.clone()).await;
    let second = send(&app.client, url, None, Some("anon"), login).await;
    first.assert(200);
    second.assert(200);
    assert!(!replayed(&second));
    assert_ne!(first.body["refresh_token"], second.body["refresh_token"]);
}

async fn client_errors_are_stored_and_replayed(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    let invalid = json!({"name": ""});
    let first = post_keyed(&app, &path, &w.owner.token, "bad", invalid.clone()).await;
    first.assert_problem(422, "validation_failed");
    let again = post_keyed(&app, &path, &w.owner.token, "bad", invalid).await;
    again.assert_problem(422, "validation_failed");
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    // A viewer's refusal is the response to that key too.
    let refused = post_keyed(&app, &path, &w.viewer.token, "v", json!({"name": "V"})).await;
    refused.assert_problem(403, "forbidden");
    let again = post_keyed(&app, &path, &w.viewer.token, "v", json!({"name": "V"})).await;
    again.assert_problem(403, "forbidden");
    assert!(replayed(&again));
}

async fn malformed_keys_are_refused(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    for key in ["k".repeat(256), "two words".to_owned()] {
        post_keyed(&app, &path, &w.owner.token, &key, json!({"name": "X"}))
            .await
            .assert_problem(400, "malformed_request");
    }
    post_keyed(
        &app,
        &path,
        &w.owner.token,
        &"k".repeat(255),
        json!({"name": "X"}),
    )
    .await
    .assert(201);
    assert_eq!(project_names(&app, &w.tenant, &w.owner.token).await, ["X"]);
}

/// Moves every stored key of `key` past its 24 hours (all tenants).
async fn expire(app: &TestApp, key: &str) {
    let db = app.db().await;
    let mut tx = db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let changed = tx
        .execute(
            Query::update()
                .table("idempotency_keys")
                .value(
                    "expires_at",
                    chrono::Utc::now() - chrono::TimeDelta::hours(1),
                )
                .and_where(Expr::col("client_key").eq(key)),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(changed, 1, "one stored key {key}");
}

async fn expired_keys_are_forgotten_and_pruned(app: TestApp) {
    let w = app.world().await;
    let path = projects_path(&w.tenant);
    post_keyed(&app, &path, &w.owner.token, "old", json!({"name": "Old"}))
        .await
        .assert(201);
    expire(&app, "old").await;
    // Past its 24 hours a key is new again, even before housekeeping removed it.
    let fresh = post_keyed(&app, &path, &w.owner.token, "old", json!({"name": "Fresh"})).await;
    fresh.assert(201);
    assert!(!replayed(&fresh));

    post_keyed(&app, &path, &w.owner.token, "k2", json!({"name": "Two"}))
        .await
        .assert(201);
    expire(&app, "k2").await;
    assert_eq!(
        tenantry_api::prune_idempotency_keys(&app.state, &AdminScope::for_housekeeping())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tenantry_api::prune_idempotency_keys(&app.state, &AdminScope::for_housekeeping())
            .await
            .unwrap(),
        0
    );
    let replay = post_keyed(&app, &path, &w.owner.token, "old", json!({"name": "Fresh"})).await;
    assert!(replayed(&replay), "the fresh key is kept");
}

async fn the_header_and_the_429s_are_documented(app: TestApp) {
    let spec = app.get("/openapi.json", None).await.body;
    let mut keyed = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation
                .get("security")
                .is_some_and(|s| !s.as_array().unwrap().is_empty());
            let has_key = operation["parameters"].as_array().is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
            });
            // Multipart uploads stream to storage and are never buffered: no key.
            let streamed = operation["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.keys().any(|t| t.starts_with("multipart/")));
            assert_eq!(
                has_key,
                method == "post" && secured && !streamed,
                "{method} {path}: Idempotency-Key documented = {has_key}"
            );
            keyed += usize::from(has_key);
            // Tenant routes (not the signed downloads, which name a tenant but are not
            // rate-limited per tenant); the shared 429 is a reference to follow.
            if path.starts_with("/api/v1/tenants/{tenant_id}") {
                let mut limited = &operation["responses"]["429"];
                if let Some(r) = limited["$ref"].as_str() {
                    limited = spec.pointer(r.trim_start_matches('#')).unwrap();
                }
                assert!(limited.is_object(), "{method} {path}: no 429");
                assert!(
                    limited["headers"].get("Retry-After").is_some(),
                    "{method} {path}: 429 without Retry-After"
                );
            }
        }
    }
    assert!(
        keyed >= 5,
        "only {keyed} operations take an Idempotency-Key"
    );
}
