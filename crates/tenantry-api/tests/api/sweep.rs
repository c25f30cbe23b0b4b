//! Walks every operation of `/openapi.json`: a secured operation without credentials answers
//! 401, a tenant-scoped one called by someone outside the tenant answers 404, an
//! administration one (`/api/v1/admin/…`) called by a non-administrator answers 403, and
//! anything reachable anonymously is on an explicit allow-list. A new route is covered
//! automatically.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::backend_tests!(every_operation_is_guarded);

/// Operations that are public by design.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v1/permissions"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/guest"),
    ("POST", "/api/v1/auth/forgot-password"),
    ("POST", "/api/v1/auth/reset-password"),
    ("POST", "/api/v1/auth/verify-email"),
    ("GET", "/api/v1/invitations/{token}"),
    // The signature in the query is the credential.
    ("GET", "/api/v1/downloads/{tenant_id}/{document_id}"),
];

fn body_for(method: &Method) -> Option<Value> {
    matches!(*method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}))
}

async fn every_operation_is_guarded(app: TestApp) {
    let w = app.world().await;
    let project = app.create_project(&w.tenant, &w.owner, "P").await;
    let spec = app.get("/openapi.json", None).await.body;
    let mut operations = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            operations += 1;
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id),
                "{method} {path}: operationId {id:?} is not unique"
            );
            let concrete = path
                .replace("{tenant_id}", &w.tenant)
                .replace("{project_id}", &project)
                .replace("{user_id}", &w.member.id)
                .replace("{id}", "01a20000-0000-7000-8000-000000000000")
                .replace("{session_id}", "01a20000-0000-7000-8000-000000000000");
            // An empty requirement (`{}`) among the alternatives makes credentials optional
            // (`/metrics` without a configured token): that operation is public.
            let secured = operation.get("security").is_some_and(|s| {
                let alternatives = s.as_array().unwrap();
                !alternatives.is_empty()
                    && alternatives
                        .iter()
                        .all(|a| !a.as_object().unwrap().is_empty())
            });
            let public = PUBLIC
                .iter()
                .any(|(m, p)| *m == method.as_str() && p == path);
            assert!(
                secured != public,
                "{method} {path}: must either declare bearer security or be on the public list"
            );
            if public {
                continue;
            }
            let anonymous = app
                .request(method.clone(), &concrete, None, body_for(&method))
                .await;
            assert_eq!(
                anonymous.status, 401,
                "{method} {path} without credentials: {}",
                anonymous.body
            );
            assert_eq!(anonymous.code(), "unauthenticated", "{method} {path}");
            let garbage = app
                .request(
                    method.clone(),
                    &concrete,
                    Some("not-a-token"),
                    body_for(&method),
                )
                .await;
            assert_eq!(garbage.status, 401, "{method} {path} with a bad token");
            if path.starts_with("/api/v1/admin/") {
                let owner = app
                    .request(
                        method.clone(),
                        &concrete,
                        Some(&w.owner.token),
                        body_for(&method),
                    )
                    .await;
                assert_eq!(owner.status, 403, "{method} {path} by a non-administrator");
                assert_eq!(owner.code(), "platform_admin_required", "{method} {path}");
            }
            if path.contains("{tenant_id}") {
                let outsider = app
                    .request(
                        method.clone(),
                        &concrete,
                        Some(&w.outsider.token),
                        body_for(&method),
                    )
                    .await;
                assert_eq!(
                    outsider.status, 404,
                    "{method} {path} by an outsider: {}",
                    outsider.body
                );
            }
        }
    }
    assert!(
        operations >= 30,
        "only {operations} operations in the OpenAPI document"
    );
}
