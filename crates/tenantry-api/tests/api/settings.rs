//! Tenant settings (`GET/PATCH /tenants/{id}/settings`, and `settings` of `PATCH
//! /tenants/{id}`): a typed schema with defaults, merge semantics, field-level validation,
//! permissions and audit.

use reqwest::Method;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::{Value, json};
use tenantry_db::AdminScope;

use crate::{admin::audit_chain, helpers::TestApp};

crate::backend_tests!(
    settings_have_defaults_and_merge,
    settings_are_validated_field_by_field,
    settings_need_read_and_update_permissions,
    tenant_patch_validates_settings_through_the_same_schema,
);

fn defaults() -> Value {
    json!({
        "event_retention_days": 30,
        "default_locale": "en",
        "session_idle_timeout_minutes": null,
        "allowed_email_domains": [],
    })
}

async fn settings_have_defaults_and_merge(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/settings", w.tenant);
    let token = Some(w.owner.token.as_str());
    let got = app.get(&path, token).await;
    got.assert(200);
    assert_eq!(got.body, defaults());

    let changed = app
        .patch(
            &path,
            token,
            json!({"event_retention_days": 90, "default_locale": "EN-gb",
                   "allowed_email_domains": ["Example.com", "@corp.example.org", "example.com"]}),
        )
        .await;
    changed.assert(200);
    assert_eq!(
        changed.body,
        json!({"event_retention_days": 90, "default_locale": "en-GB",
               "session_idle_timeout_minutes": null,
               "allowed_email_domains": ["example.com", "corp.example.org"]})
    );
    // Keys left out keep their value; null resets to the default.
    let merged = app
        .patch(
            &path,
            token,
            json!({"session_idle_timeout_minutes": 480, "default_locale": null}),
        )
        .await;
    merged.assert(200);
    assert_eq!(merged.body["event_retention_days"], 90);
    assert_eq!(merged.body["session_idle_timeout_minutes"], 480);
    assert_eq!(merged.body["default_locale"], "en");
    assert_eq!(app.get(&path, token).await.body, merged.body);
    // The tenant resource shows the same settings.
    let tenant = app
        .get(&format!("/api/v1/tenants/{}", w.tenant), token)
        .await;
    assert_eq!(tenant.body["settings"], merged.body);
    // An empty patch, or one that changes nothing, is fine and leaves no audit record.
    app.patch(&path, token, json!({})).await.assert(200);
    app.patch(&path, token, json!({"event_retention_days": 90}))
        .await
        .assert(200);

    let updates: Vec<Value> = audit_chain(&app, &w.tenant)
        .await
        .into_iter()
        .filter(|r| r.action == "tenant.settings_updated")
        .map(|r| r.summary["changed"].clone())
        .collect();
    assert_eq!(
        updates,
        [
            json!([
                "event_retention_days",
                "default_locale",
                "allowed_email_domains"
            ]),
            json!(["default_locale", "session_idle_timeout_minutes"]),
        ]
    );
    // Resetting everything returns to the defaults.
    let reset = app
        .patch(
            &path,
            token,
            json!({"event_retention_days": null, "session_idle_timeout_minutes": null,
                   "allowed_email_domains": null}),
        )
        .await;
    assert_eq!(reset.body, defaults());
}

fn fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    fields
}

async fn settings_are_validated_field_by_field(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/settings", w.tenant);
    let token = Some(w.owner.token.as_str());
    let bad = app
        .patch(
            &path,
            token,
            json!({"event_retention_days": 0, "default_locale": "english",
                   "session_idle_timeout_minutes": 1, "allowed_email_domains": ["ok.com", "not a domain"],
                   "theme": "dark"}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(
        fields(&bad.body),
        [
            "allowed_email_domains[1]",
            "default_locale",
            "event_retention_days",
            "session_idle_timeout_minutes",
            "theme",
        ]
    );
    for (body, field) in [
        (
            json!({"event_retention_days": 3651}),
            "event_retention_days",
        ),
        (
            json!({"event_retention_days": 30.5}),
            "event_retention_days",
        ),
        (
            json!({"event_retention_days": "30"}),
            "event_retention_days",
        ),
        (
            json!({"allowed_email_domains": "example.com"}),
            "allowed_email_domains",
        ),
        (
            json!({"allowed_email_domains": vec!["a.com"; 51]}),
            "allowed_email_domains",
        ),
        (
            json!({"session_idle_timeout_minutes": 43201}),
            "session_idle_timeout_minutes",
        ),
        (json!([1, 2]), "settings"),
        (json!("x"), "settings"),
    ] {
        let resp = app.patch(&path, token, body.clone()).await;
        resp.assert_problem(422, "validation_failed");
        assert_eq!(fields(&resp.body), [field], "{body}");
    }
    let resp = app.request(Method::PATCH, &path, token, None).await;
    resp.assert_problem(415, "unsupported_media_type");
    // Nothing was written.
    assert_eq!(app.get(&path, token).await.body, defaults());
    assert!(
        audit_chain(&app, &w.tenant)
            .await
            .iter()
            .all(|r| r.action != "tenant.settings_updated")
    );
}

async fn settings_need_read_and_update_permissions(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/settings", w.tenant);
    for user in [&w.owner, &w.admin, &w.member, &w.viewer] {
        app.get(&path, Some(&user.token)).await.assert(200);
    }
    for user in [&w.member, &w.viewer] {
        app.patch(&path, Some(&user.token), json!({"event_retention_days": 5}))
            .await
            .assert_problem(403, "forbidden");
    }
    app.patch(
        &path,
        Some(&w.admin.token),
        json!({"event_retention_days": 5}),
    )
    .await
    .assert(200);
    app.get(&path, None)
        .await
        .assert_problem(401, "unauthenticated");
    app.patch(&path, None, json!({}))
        .await
        .assert_problem(401, "unauthenticated");
    // Another tenant's settings, or a tenant that does not exist: 404, and nothing written.
    let foreign = format!("/api/v1/tenants/{}/settings", w.other_tenant);
    let missing = "/api/v1/tenants/01a20000-0000-7000-8000-000000000000/settings";
    for target in [foreign.as_str(), missing] {
        app.get(target, Some(&w.owner.token))
            .await
            .assert_problem(404, "not_found");
        app.patch(
            target,
            Some(&w.owner.token),
            json!({"event_retention_days": 9}),
        )
        .await
        .assert_problem(404, "not_found");
    }
    let theirs = app.get(&foreign, Some(&w.outsider.token)).await;
    assert_eq!(theirs.body["event_retention_days"], 30);
    // A deleted tenant has no settings any more.
    app.delete(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    app.get(&path, Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
}

async fn tenant_patch_validates_settings_through_the_same_schema(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}", w.tenant);
    let token = Some(w.owner.token.as_str());
    let bad = app
        .patch(
            &path,
            token,
            json!({"name": "", "settings": {"event_retention_days": -1, "colour": "red"}}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    assert_eq!(
        fields(&bad.body),
        ["name", "settings.colour", "settings.event_retention_days"]
    );
    // A merge, as on /settings.
    app.patch(
        &path,
        token,
        json!({"settings": {"default_locale": "pt-br"}}),
    )
    .await
    .assert(200);
    let updated = app
        .patch(
            &path,
            token,
            json!({"name": "Acme Two", "settings": {"event_retention_days": 365}}),
        )
        .await;
    updated.assert(200);
    assert_eq!(updated.body["name"], "Acme Two");
    assert_eq!(updated.body["settings"]["default_locale"], "pt-BR");
    assert_eq!(updated.body["settings"]["event_retention_days"], 365);
    let actions: Vec<String> = audit_chain(&app, &w.tenant)
        .await
        .into_iter()
        .map(|r| r.action)
        .filter(|a| a.starts_with("tenant."))
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.created",
            "tenant.settings_updated",
            "tenant.settings_updated",
            "tenant.updated",
        ]
    );

    // Settings stored before the schema existed: unknown or invalid keys read as defaults
    // and are dropped by the next write.
    let tenant: uuid::Uuid = w.tenant.parse().unwrap();
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    tx.execute(
        Query::update()
            .table("tenants")
            .value(
                "settings",
                json!({"theme": "dark", "event_retention_days": "lots", "default_locale": "de"}),
            )
            .and_where(Expr::col("id").eq(tenant)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let settings = format!("{path}/settings");
    let legacy = app.get(&settings, token).await;
    assert_eq!(legacy.body["event_retention_days"], 30);
    assert_eq!(legacy.body["default_locale"], "de");
    app.patch(&settings, token, json!({"event_retention_days": 14}))
        .await
        .assert(200);
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let stored: String = tx
        .fetch_one(
            Query::select()
                .expr(Expr::col("settings").cast_as("text"))
                .from("tenants")
                .and_where(Expr::col("id").eq(tenant)),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        stored,
        json!({"event_retention_days": 14, "default_locale": "de"})
    );
}
