//! The OpenAPI document is exact: every `$ref` resolves, every error response is
//! `application/problem+json` with the `Problem` schema, every operation lists the statuses
//! the shared layers answer, and what the server really answers is documented.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::backend_tests!(
    document_references_resolve_and_errors_are_problems,
    every_operation_lists_the_shared_statuses,
    real_error_answers_are_documented,
);

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    r.assert(200);
    r.body
}

/// Every operation as (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((path.clone(), (*method).to_owned(), op.clone()));
            }
        }
    }
    assert!(out.len() > 50, "only {} operations", out.len());
    out
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Follows a `$ref` (if any) to the object it names.
fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("dangling {r}")),
        None => value,
    }
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn document_references_resolve_and_errors_are_problems(app: TestApp) {
    let doc = document(&app).await;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    let dangling: Vec<_> = all.iter().filter(|r| resolve(&doc, r).is_none()).collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    assert!(all.iter().any(|r| r == "#/components/schemas/FieldError"));
    assert_eq!(
        doc["components"]["schemas"]["Problem"]["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/FieldError"
    );
    let required = &doc["components"]["schemas"]["Problem"]["required"];
    for field in ["type", "title", "status", "code"] {
        assert!(
            required.as_array().unwrap().contains(&json!(field)),
            "{field}"
        );
    }
    // Absent from problems without field errors, so it must not be required.
    assert!(!required.as_array().unwrap().contains(&json!("errors")));

    for (path, method, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let response = deref(&doc, response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status}: no description"
            );
            let content = response["content"].as_object();
            if status.starts_with('4') || status.starts_with('5') {
                let content =
                    content.unwrap_or_else(|| panic!("{method} {path} {status}: no body"));
                let types: Vec<_> = content.keys().collect();
                assert_eq!(
                    types,
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                if status == "429" || status == "503" {
                    assert!(
                        response["headers"].get("Retry-After").is_some(),
                        "{method} {path} {status}: Retry-After"
                    );
                }
            } else if status == "204" || status == "302" {
                assert!(content.is_none(), "{method} {path} {status} has a body");
            }
        }
    }
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics.get("text/plain").is_some(), "{metrics}");
}

async fn every_operation_lists_the_shared_statuses(app: TestApp) {
    let doc = document(&app).await;
    for (path, method, op) in operations(&doc) {
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|p| p.iter().map(|p| deref(&doc, p)).collect())
            .unwrap_or_default();
        let has_in = |place: &str| params.iter().any(|p| p["in"] == place);
        let idempotent = params.iter().any(|p| p["name"] == "Idempotency-Key");
        let body = op.get("requestBody").is_some();
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let tenant = path.starts_with("/api/v1/tenants/{tenant_id}");
        let admin = path.starts_with("/api/v1/admin/");
        let mut expected = vec!["500", "503"];
        if body || idempotent {
            expected.extend(["400", "413", "422"]);
        }
        if body {
            expected.push("415");
        }
        if idempotent {
            expected.push("409");
        }
        if has_in("query") {
            expected.push("422");
        }
        if has_in("path") {
            expected.push("404");
        }
        if secured {
            expected.push("401");
        }
        if secured && (tenant || admin) {
            expected.push("403");
        }
        if tenant {
            expected.push("429");
        }
        let responses = op["responses"].as_object().unwrap();
        for status in expected {
            assert!(
                responses.contains_key(status),
                "{method} {path} does not list {status}: {:?}",
                responses.keys().collect::<Vec<_>>()
            );
        }
    }
}

/// Sends `request` and asserts that the operation `method path` documents the status and
/// that an error is a problem.
async fn check(
    doc: &Value,
    (method, template): (Method, &str),
    request: reqwest::RequestBuilder,
) -> u16 {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let op = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    assert!(
        op["responses"].get(status.to_string()).is_some(),
        "{method} {template} answered {status}, which the document does not list"
    );
    if status >= 400 {
        assert_eq!(
            content_type, "application/problem+json",
            "{method} {template}"
        );
    }
    status
}

async fn real_error_answers_are_documented(app: TestApp) {
    let doc = document(&app).await;
    let owner = app.register("openapi-owner@example.com").await;
    let tenant = app.create_tenant(&owner, "Documented").await;
    let c = &app.client;
    let projects = format!("/api/v1/tenants/{tenant}/projects");
    let list = (Method::GET, "/api/v1/tenants/{tenant_id}/projects");
    let create = (Method::POST, "/api/v1/tenants/{tenant_id}/projects");
    let url = app.url(&projects);
    let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&owner.token);

    // Malformed JSON → 400.
    let r = bearer(c.post(&url))
        .header("content-type", "application/json")
        .body("{not json");
    assert_eq!(check(&doc, create.clone(), r).await, 400);
    // Not JSON at all → 415.
    let r = bearer(c.post(&url))
        .header("content-type", "text/plain")
        .body("x");
    assert_eq!(check(&doc, create.clone(), r).await, 415);
    // The wrong shape → 422.
    let r = bearer(c.post(&url)).json(&json!({"name": 5}));
    assert_eq!(check(&doc, create.clone(), r).await, 422);
    // A malformed Idempotency-Key → 400.
    let r = bearer(c.post(&url))
        .header("idempotency-key", "")
        .json(&json!({"name": "p"}));
    assert_eq!(check(&doc, create.clone(), r).await, 400);
    // A read with an invalid query → 422.
    let r = bearer(c.get(format!("{url}?limit=many")));
    assert_eq!(check(&doc, list.clone(), r).await, 422);
    // No credential → 401; a tenant of nobody → 404.
    assert_eq!(check(&doc, list.clone(), c.get(&url)).await, 401);
    let nobody = app.url("/api/v1/tenants/00000000-0000-7000-8000-000000000000/projects");
    assert_eq!(check(&doc, list.clone(), bearer(c.get(nobody))).await, 404);
    // NUL in a string: PostgreSQL cannot store it (it was a 500 there), so 422 on both.
    let member = (
        Method::PATCH,
        "/api/v1/tenants/{tenant_id}/members/{user_id}",
    );
    let r = bearer(c.patch(app.url(&format!("/api/v1/tenants/{tenant}/members/{}", owner.id))))
        .header("content-type", "application/json")
        .body(r#"{"role": "own\u0000er"}"#);
    assert_eq!(check(&doc, member, r).await, 422);
    let r = bearer(c.get(format!("{url}?name=a%00b")));
    assert_eq!(check(&doc, list.clone(), r).await, 422);
    let r = bearer(c.post(&url)).json(&json!({"name": "p\u{0}q"}));
    assert_eq!(check(&doc, create.clone(), r).await, 422);
    // Reads outside tenants: a bad query, a bad token.
    let r = bearer(c.get(app.url("/api/v1/users/me/security-events?limit=0")));
    let events = (Method::GET, "/api/v1/users/me/security-events");
    assert_eq!(check(&doc, events, r).await, 422);
    let r = c.get(app.url("/api/v1/users/me")).bearer_auth("nonsense");
    assert_eq!(check(&doc, (Method::GET, "/api/v1/users/me"), r).await, 401);
    // Sign-up without a body, and with a body too large.
    let register = (Method::POST, "/api/v1/auth/register");
    let r = c.post(app.url("/api/v1/auth/register"));
    assert_eq!(check(&doc, register.clone(), r).await, 415);
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(2 << 20));
    let r = c
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(big);
    assert_eq!(check(&doc, register, r).await, 413);
}

/// The document is committed (`docs/openapi.json`, keys sorted): a change to the public
/// contract shows in review as a change to that file. Refresh it with
/// `TENANTRY_WRITE_DOCS=1 cargo nextest run --workspace -E 'test(openapi_document_is_committed)'`.
#[test]
fn openapi_document_is_committed() {
    let document: Value = serde_json::to_value(tenantry_api::openapi()).expect("document");
    let rendered = format!(
        "{}\n",
        serde_json::to_string_pretty(&document).expect("rendered")
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("TENANTRY_WRITE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("writing docs/openapi.json");
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    assert!(
        committed == document,
        "docs/openapi.json is not the generated document: review the difference, then run \
         this test with TENANTRY_WRITE_DOCS=1"
    );
}
