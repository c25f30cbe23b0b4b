//! Per-tenant rate limits: a tenant over its limit gets 429 with `Retry-After` while other
//! tenants are served; 0 means unlimited.

use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

/// Two tenants, each with its owner's token (created outside any tenant's limit).
async fn two_tenants(app: &TestApp) -> [(String, String); 2] {
    let mut out = Vec::new();
    for name in ["noisy", "quiet"] {
        let user = app.register(&format!("{name}@example.com")).await;
        let tenant = app.create_tenant(&user, name).await;
        out.push((tenant, user.token));
    }
    [out[0].clone(), out[1].clone()]
}

fn projects(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/projects")
}

async fn a_noisy_tenant_is_limited_and_the_others_are_served(backend: Backend, test: &str) {
    let Some(app) = spawn_app_with(backend, test, |c| {
        c.rate_limits.tenant_per_second = 1;
        c.rate_limits.tenant_burst = 5;
    })
    .await
    else {
        return;
    };
    let [(noisy, noisy_token), (quiet, quiet_token)] = two_tenants(&app).await;
    let keyed_post = || {
        app.client
            .post(app.url(&projects(&noisy)))
            .bearer_auth(&noisy_token)
            .header("Idempotency-Key", "limited")
            .json(&json!({"name": "P"}))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let resp = app.get(&projects(&noisy), Some(&noisy_token)).await;
        statuses.push(resp.status.as_u16());
        if resp.status.as_u16() == 429 {
            resp.assert_problem(429, "rate_limited");
            let wait: u64 = resp.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
            break;
        }
    }
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Writes are limited too, and a refused POST stores nothing under its idempotency key.
    let refused = keyed_post().await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The quiet tenant has its own allowance (4 reads and a write of its 5).
    for _ in 0..4 {
        app.get(&projects(&quiet), Some(&quiet_token))
            .await
            .assert(200);
    }
    app.post(&projects(&quiet), Some(&quiet_token), json!({"name": "Q"}))
        .await
        .assert(201);
    // Operations outside tenants are not counted against any tenant.
    app.get("/api/v1/users/me", Some(&noisy_token))
        .await
        .assert(200);
    // Once the tenant's allowance is back, the same key runs (nothing was stored for it).
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 100)).await;
    let resp = keyed_post().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert!(resp.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn sqlite_a_noisy_tenant_is_limited_and_the_others_are_served() {
    a_noisy_tenant_is_limited_and_the_others_are_served(Backend::Sqlite, "noisy_sqlite").await;
}

#[tokio::test]
async fn postgres_a_noisy_tenant_is_limited_and_the_others_are_served() {
    a_noisy_tenant_is_limited_and_the_others_are_served(Backend::Postgres, "noisy_pg").await;
}

#[tokio::test]
async fn a_limit_of_zero_is_unlimited() {
    // The test configuration sets the per-tenant limit to 0.
    let app = spawn_app(Backend::Sqlite, "tenant_limit_zero")
        .await
        .expect("SQLite is always available");
    assert_eq!(app.state.config.rate_limits.tenant_per_second, 0);
    let [(tenant, token), _] = two_tenants(&app).await;
    for _ in 0..300 {
        app.get(&projects(&tenant), Some(&token)).await.assert(200);
    }
}

/// A noisy API key is limited on its own allowance: the member who created it, and another key
/// of the same tenant, are still served.
async fn a_noisy_api_key_is_limited_and_its_tenant_is_served(backend: Backend, test: &str) {
    let Some(app) = spawn_app_with(backend, test, |c| {
        c.rate_limits.api_key_per_second = 1;
        c.rate_limits.api_key_burst = 3;
    })
    .await
    else {
        return;
    };
    let [(tenant, token), _] = two_tenants(&app).await;
    let mut keys = Vec::new();
    for name in ["noisy", "quiet"] {
        let created = app
            .post(
                &format!("/api/v1/tenants/{tenant}/api-keys"),
                Some(&token),
                json!({"name": name, "role": "viewer"}),
            )
            .await;
        created.assert(201);
        keys.push(created.body["key"].as_str().unwrap().to_owned());
    }
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = app.get(&projects(&tenant), Some(&keys[0])).await;
        statuses.push(resp.status.as_u16());
        if resp.status.as_u16() == 429 {
            resp.assert_problem(429, "rate_limited");
            assert!(resp.headers.contains_key("retry-after"));
            break;
        }
    }
    assert!(statuses[..3].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    for _ in 0..3 {
        app.get(&projects(&tenant), Some(&keys[1]))
            .await
            .assert(200);
        app.get(&projects(&tenant), Some(&token)).await.assert(200);
    }
}

#[tokio::test]
async fn sqlite_a_noisy_api_key_is_limited_and_its_tenant_is_served() {
    a_noisy_api_key_is_limited_and_its_tenant_is_served(Backend::Sqlite, "noisy_key_sqlite").await;
}

#[tokio::test]
async fn postgres_a_noisy_api_key_is_limited_and_its_tenant_is_served() {
    a_noisy_api_key_is_limited_and_its_tenant_is_served(Backend::Postgres, "noisy_key_pg").await;
}
