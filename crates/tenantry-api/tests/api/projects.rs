use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    projects_crud,
    project_input_is_validated,
    project_permissions_follow_roles,
    projects_are_paginated_and_filtered,
);

async fn projects_crud(app: TestApp) {
    let w = app.world().await;
    let base = format!("/api/v1/tenants/{}/projects", w.tenant);
    let r = app
        .post(
            &base,
            Some(&w.member.token),
            json!({"name": "Store 1", "description": "CBD", "settings": {"tz": "EAT"}}),
        )
        .await;
    r.assert(201);
    assert_eq!(r.body["tenant_id"], w.tenant.as_str());
    assert_eq!(r.body["description"], "CBD");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let one = app
        .get(&format!("{base}/{id}"), Some(&w.viewer.token))
        .await;
    one.assert(200);
    assert_eq!(one.body["settings"], json!({"tz": "EAT"}));
    let patched = app
        .patch(
            &format!("{base}/{id}"),
            Some(&w.member.token),
            json!({"name": "Store One", "description": null}),
        )
        .await;
    patched.assert(200);
    assert_eq!(patched.body["name"], "Store One");
    assert!(patched.body["description"].is_null());
    assert_eq!(
        patched.body["settings"],
        json!({"tz": "EAT"}),
        "PATCH keeps what it does not name"
    );
    let put = app
        .put(
            &format!("{base}/{id}"),
            Some(&w.member.token),
            json!({"name": "Store 1"}),
        )
        .await;
    put.assert(200);
    assert_eq!(put.body["settings"], json!({}), "PUT replaces");
    app.post(&base, Some(&w.member.token), json!({"name": "Store 1"}))
        .await
        .assert_problem(409, "already_exists");
    app.delete(&format!("{base}/{id}"), Some(&w.admin.token))
        .await
        .assert(204);
    app.get(&format!("{base}/{id}"), Some(&w.admin.token))
        .await
        .assert_problem(404, "not_found");
    app.delete(&format!("{base}/{id}"), Some(&w.admin.token))
        .await
        .assert(404);
}

async fn project_input_is_validated(app: TestApp) {
    let w = app.world().await;
    let base = format!("/api/v1/tenants/{}/projects", w.tenant);
    let r = app
        .post(
            &base,
            Some(&w.owner.token),
            json!({"name": "", "description": "x".repeat(2001), "settings": 5}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 3);
    app.post(
        &base,
        Some(&w.owner.token),
        json!({"name": "ok", "colour": "red"}),
    )
    .await
    .assert(422);
    app.get(&format!("{base}/not-a-uuid"), Some(&w.owner.token))
        .await
        .assert(404);
    app.post(&base, None, json!({"name": "x"}))
        .await
        .assert(401);
}

async fn project_permissions_follow_roles(app: TestApp) {
    let w = app.world().await;
    let base = format!("/api/v1/tenants/{}/projects", w.tenant);
    let id = app.create_project(&w.tenant, &w.owner, "P").await;
    app.post(&base, Some(&w.viewer.token), json!({"name": "V"}))
        .await
        .assert_problem(403, "forbidden");
    app.patch(
        &format!("{base}/{id}"),
        Some(&w.viewer.token),
        json!({"name": "V"}),
    )
    .await
    .assert(403);
    app.delete(&format!("{base}/{id}"), Some(&w.member.token))
        .await
        .assert_problem(403, "forbidden");
    app.get(&format!("{base}/{id}"), Some(&w.viewer.token))
        .await
        .assert(200);
    app.get(&base, Some(&w.viewer.token)).await.assert(200);
    assert_eq!(
        app.get(&format!("{base}/{id}"), Some(&w.owner.token))
            .await
            .body["name"],
        "P"
    );
}

async fn projects_are_paginated_and_filtered(app: TestApp) {
    let w = app.world().await;
    let base = format!("/api/v1/tenants/{}/projects", w.tenant);
    for name in ["Alpha store", "Beta store", "Gamma kiosk", "100%_sale"] {
        app.create_project(&w.tenant, &w.owner, name).await;
    }
    let page = app
        .get(&format!("{base}?limit=3"), Some(&w.viewer.token))
        .await;
    page.assert(200);
    let names: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["100%_sale", "Gamma kiosk", "Beta store"]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("{base}?limit=3&cursor={cursor}"),
            Some(&w.viewer.token),
        )
        .await;
    assert_eq!(next.body["items"][0]["name"], "Alpha store");
    assert!(next.body["next_cursor"].is_null());
    let filtered = app
        .get(&format!("{base}?name=STORE"), Some(&w.viewer.token))
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 2);
    // LIKE wildcards in the filter are literal.
    let literal = app
        .get(&format!("{base}?name=%25_"), Some(&w.viewer.token))
        .await;
    assert_eq!(literal.body["items"].as_array().unwrap().len(), 1);
    app.get(&format!("{base}?limit=500"), Some(&w.viewer.token))
        .await
        .assert(422);
}
