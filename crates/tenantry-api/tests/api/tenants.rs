use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    tenants_are_created_with_derived_unique_slugs,
    tenant_creation_is_validated,
    tenant_is_readable_by_every_role_and_nobody_else,
    tenant_updates_need_tenant_update,
    tenant_deletion_is_owner_only_and_soft,
    roles_and_permission_catalog,
    guests_cannot_create_tenants,
);

/// A guest owning a tenant could invite and add people with nothing to answer for.
async fn guests_cannot_create_tenants(app: TestApp) {
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    guest.assert(201);
    let token = guest.body["access_token"].as_str().unwrap();
    app.post("/api/v1/tenants", Some(token), json!({"name": "Guest Co"}))
        .await
        .assert_problem(403, "guest_not_allowed");
    let mine = app.get("/api/v1/tenants", Some(token)).await;
    mine.assert(200);
    assert!(mine.body["items"].as_array().unwrap().is_empty());
    let count: Vec<uuid::Uuid> = app
        .db()
        .await
        .read_all(sea_query::Query::select().column("id").from("tenants"))
        .await
        .unwrap();
    assert!(count.is_empty(), "no tenant row was written");
}

async fn tenants_are_created_with_derived_unique_slugs(app: TestApp) {
    let user = app.register("t@example.com").await;
    let a = app
        .post(
            "/api/v1/tenants",
            Some(&user.token),
            json!({"name": "Acme Corp."}),
        )
        .await;
    a.assert(201);
    assert_eq!(a.body["slug"], "acme-corp");
    assert_eq!(a.body["status"], "active");
    let b = app
        .post(
            "/api/v1/tenants",
            Some(&user.token),
            json!({"name": "Acme Corp"}),
        )
        .await;
    b.assert(201);
    assert_eq!(b.body["slug"], "acme-corp-2");
    let c = app
        .post(
            "/api/v1/tenants",
            Some(&user.token),
            json!({"name": "Other", "slug": "acme-corp"}),
        )
        .await;
    c.assert_problem(409, "already_exists");
    assert_eq!(c.body["errors"][0]["field"], "slug");
    let list = app.get("/api/v1/tenants", Some(&user.token)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "owner")
    );
}

async fn tenant_creation_is_validated(app: TestApp) {
    let user = app.register("v@example.com").await;
    let r = app
        .post(
            "/api/v1/tenants",
            Some(&user.token),
            json!({"name": "", "slug": "Bad Slug"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
    app.post("/api/v1/tenants", None, json!({"name": "x"}))
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(
        app.get("/api/v1/tenants", Some(&user.token)).await.body["items"],
        json!([])
    );
}

async fn tenant_is_readable_by_every_role_and_nobody_else(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}", w.tenant);
    for user in [&w.owner, &w.admin, &w.member, &w.viewer] {
        let r = app.get(&path, Some(&user.token)).await;
        r.assert(200);
        assert_eq!(r.body["name"], "Acme");
    }
    let foreign = app.get(&path, Some(&w.outsider.token)).await;
    foreign.assert_problem(404, "not_found");
    let missing = app
        .get(
            "/api/v1/tenants/01a20000-0000-7000-8000-000000000000",
            Some(&w.outsider.token),
        )
        .await;
    assert_eq!(
        foreign.body, missing.body,
        "a foreign tenant must look exactly like a missing one"
    );
    app.get("/api/v1/tenants/not-a-uuid", Some(&w.owner.token))
        .await
        .assert(404);
    app.get(&path, None).await.assert(401);
}

async fn tenant_updates_need_tenant_update(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}", w.tenant);
    let r = app
        .patch(
            &path,
            Some(&w.admin.token),
            json!({"name": "Acme Ltd", "settings": {"event_retention_days": 30}}),
        )
        .await;
    r.assert(200);
    assert_eq!(r.body["name"], "Acme Ltd");
    assert_eq!(r.body["settings"]["event_retention_days"], 30);
    for user in [&w.member, &w.viewer] {
        app.patch(&path, Some(&user.token), json!({"name": "Hacked"}))
            .await
            .assert_problem(403, "forbidden");
    }
    app.patch(&path, Some(&w.outsider.token), json!({"name": "Hacked"}))
        .await
        .assert(404);
    app.patch(&path, Some(&w.owner.token), json!({"settings": "nope"}))
        .await
        .assert(422);
    app.patch(&path, Some(&w.owner.token), json!({"name": "   "}))
        .await
        .assert(422);
    assert_eq!(
        app.get(&path, Some(&w.owner.token)).await.body["name"],
        "Acme Ltd"
    );
}

async fn tenant_deletion_is_owner_only_and_soft(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}", w.tenant);
    app.delete(&path, Some(&w.admin.token))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&path, Some(&w.outsider.token)).await.assert(404);
    app.delete(&path, Some(&w.owner.token)).await.assert(204);
    for user in [&w.owner, &w.admin, &w.member] {
        app.get(&path, Some(&user.token)).await.assert(404);
        let mine = app.get("/api/v1/users/me/tenants", Some(&user.token)).await;
        assert_eq!(mine.body["items"], json!([]));
    }
    app.delete(&path, Some(&w.owner.token)).await.assert(404);
}

async fn roles_and_permission_catalog(app: TestApp) {
    let w = app.world().await;
    let roles = app
        .get(
            &format!("/api/v1/tenants/{}/roles", w.tenant),
            Some(&w.viewer.token),
        )
        .await;
    roles.assert(200);
    let names: Vec<&str> = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["owner", "admin", "member", "viewer"]);
    let admin = &roles.body["items"][1];
    assert!(
        !admin["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("tenant:delete"))
    );
    assert_eq!(admin["system"], true);
    app.get(
        &format!("/api/v1/tenants/{}/roles", w.tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(404);
    let catalog = app.get("/api/v1/permissions", None).await;
    catalog.assert(200);
    let items = catalog.body["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|p| p["name"] == "members:manage" && p["description"].is_string())
    );
}
