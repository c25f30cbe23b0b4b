//! A member of tenant A walks every tenant-B path: everything answers 404, exactly as for an
//! id that does not exist, and nothing in B changes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::backend_tests!(
    foreign_tenant_paths_answer_404_and_write_nothing,
    foreign_ids_inside_own_tenant_are_missing
);

async fn snapshot(app: &TestApp, tenant: &str, owner: &str) -> (Value, Value, Value) {
    let t = app
        .get(&format!("/api/v1/tenants/{tenant}"), Some(owner))
        .await
        .body;
    let m = app
        .get(&format!("/api/v1/tenants/{tenant}/members"), Some(owner))
        .await
        .body;
    let p = app
        .get(&format!("/api/v1/tenants/{tenant}/projects"), Some(owner))
        .await
        .body;
    (t, m, p)
}

async fn foreign_tenant_paths_answer_404_and_write_nothing(app: TestApp) {
    let w = app.world().await;
    let b = &w.other_tenant;
    let b_project = app.create_project(b, &w.outsider, "B secret").await;
    let before = snapshot(&app, b, &w.outsider.token).await;
    let missing = "01a20000-0000-7000-8000-000000000000";
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{b}"), None),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{b}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/api/v1/tenants/{b}"), None),
        (Method::GET, format!("/api/v1/tenants/{b}/roles"), None),
        (Method::GET, format!("/api/v1/tenants/{b}/members"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/members"),
            Some(json!({"user_id": w.owner.id, "role": "owner"})),
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/members/{}", w.outsider.id),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{b}/members/{}", w.outsider.id),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{b}/members/{}", w.outsider.id),
            None,
        ),
        (Method::GET, format!("/api/v1/tenants/{b}/projects"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/projects"),
            Some(json!({"name": "planted"})),
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/projects/{b_project}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{b}/projects/{b_project}"),
            Some(json!({"name": "pwned"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{b}/projects/{b_project}"),
            Some(json!({"name": "pwned"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{b}/projects/{b_project}"),
            None,
        ),
    ];
    for attacker in [&w.owner, &w.admin, &w.member, &w.viewer] {
        for (method, path, body) in &calls {
            let foreign = app
                .request(method.clone(), path, Some(&attacker.token), body.clone())
                .await;
            let nonexistent = app
                .request(
                    method.clone(),
                    &path.replace(b.as_str(), missing),
                    Some(&attacker.token),
                    body.clone(),
                )
                .await;
            foreign.assert_problem(404, "not_found");
            assert_eq!(
                foreign.body, nonexistent.body,
                "{method} {path} differs from a missing tenant"
            );
        }
    }
    assert_eq!(
        snapshot(&app, b, &w.outsider.token).await,
        before,
        "tenant B changed"
    );
}

async fn foreign_ids_inside_own_tenant_are_missing(app: TestApp) {
    let w = app.world().await;
    let b_project = app
        .create_project(&w.other_tenant, &w.outsider, "B secret")
        .await;
    let a = &w.tenant;
    let path = format!("/api/v1/tenants/{a}/projects/{b_project}");
    app.get(&path, Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
    app.patch(&path, Some(&w.owner.token), json!({"name": "x"}))
        .await
        .assert(404);
    app.put(&path, Some(&w.owner.token), json!({"name": "x"}))
        .await
        .assert(404);
    app.delete(&path, Some(&w.owner.token)).await.assert(404);
    let b_path = format!("/api/v1/tenants/{}/projects/{b_project}", w.other_tenant);
    assert_eq!(
        app.get(&b_path, Some(&w.outsider.token)).await.body["name"],
        "B secret"
    );
    // B's member cannot be managed through A.
    app.patch(
        &format!("/api/v1/tenants/{a}/members/{}", w.outsider.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(404);
    app.delete(
        &format!("/api/v1/tenants/{a}/members/{}", w.outsider.id),
        Some(&w.owner.token),
    )
    .await
    .assert(404);
}
