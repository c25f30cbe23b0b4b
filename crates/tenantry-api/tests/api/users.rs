use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    profile_can_be_read_and_changed,
    profile_changes_are_validated,
    profile_needs_authentication,
    sessions_are_listed_and_revocable,
    my_tenants_are_paginated,
);

async fn profile_can_be_read_and_changed(app: TestApp) {
    let user = app.register("me@example.com").await;
    let me = app.get("/api/v1/users/me", Some(&user.token)).await;
    me.assert(200);
    assert_eq!(me.body["email"], "me@example.com");
    assert_eq!(me.body["preferences"], json!({}));
    let r = app
        .patch(
            "/api/v1/users/me",
            Some(&user.token),
            json!({"first_name": "Grace", "preferences": {"theme": "dark"}}),
        )
        .await;
    r.assert(200);
    assert_eq!(r.body["first_name"], "Grace");
    assert_eq!(r.body["last_name"], "User");
    assert_eq!(r.body["preferences"], json!({"theme": "dark"}));
    let r = app
        .put(
            "/api/v1/users/me",
            Some(&user.token),
            json!({"first_name": "Ada", "last_name": "King"}),
        )
        .await;
    r.assert(200);
    assert_eq!(r.body["last_name"], "King");
    assert_eq!(r.body["preferences"], json!({}), "PUT replaces preferences");
    // The e-mail address cannot be changed here.
    app.patch(
        "/api/v1/users/me",
        Some(&user.token),
        json!({"email": "x@example.com"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    assert_eq!(
        app.get("/api/v1/users/me", Some(&user.token)).await.body["email"],
        "me@example.com"
    );
}

async fn profile_changes_are_validated(app: TestApp) {
    let user = app.register("v@example.com").await;
    let r = app
        .patch(
            "/api/v1/users/me",
            Some(&user.token),
            json!({"first_name": "", "preferences": [1, 2]}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2);
    app.put(
        "/api/v1/users/me",
        Some(&user.token),
        json!({"first_name": "a"}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn profile_needs_authentication(app: TestApp) {
    app.get("/api/v1/users/me", None)
        .await
        .assert_problem(401, "unauthenticated");
    app.patch("/api/v1/users/me", None, json!({"first_name": "x"}))
        .await
        .assert(401);
    app.get("/api/v1/users/me/sessions", None).await.assert(401);
    app.get("/api/v1/users/me/tenants", None).await.assert(401);
}

async fn sessions_are_listed_and_revocable(app: TestApp) {
    let first = app.register("s@example.com").await;
    let second = app.login("s@example.com").await;
    let other = app.register("other@example.com").await;
    let list = app
        .get("/api/v1/users/me/sessions", Some(&first.token))
        .await;
    list.assert(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let second_id = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another user's session id is "not found", and stays alive.
    let theirs = app
        .get("/api/v1/users/me/sessions", Some(&other.token))
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(
        &format!("/api/v1/users/me/sessions/{theirs}"),
        Some(&first.token),
    )
    .await
    .assert_problem(404, "not_found");
    app.get("/api/v1/users/me", Some(&other.token))
        .await
        .assert(200);
    app.delete("/api/v1/users/me/sessions/not-a-uuid", Some(&first.token))
        .await
        .assert(404);
    app.delete(
        &format!("/api/v1/users/me/sessions/{second_id}"),
        Some(&first.token),
    )
    .await
    .assert(204);
    app.get("/api/v1/users/me", Some(&second.token))
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/users/me", Some(&first.token))
        .await
        .assert(200);
    app.delete(
        &format!("/api/v1/users/me/sessions/{second_id}"),
        Some(&first.token),
    )
    .await
    .assert(404);
}

async fn my_tenants_are_paginated(app: TestApp) {
    let user = app.register("p@example.com").await;
    for i in 0..3 {
        app.create_tenant(&user, &format!("Tenant {i}")).await;
    }
    let page1 = app
        .get("/api/v1/users/me/tenants?limit=2", Some(&user.token))
        .await;
    page1.assert(200);
    assert_eq!(page1.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page1.body["items"][0]["tenant"]["name"], "Tenant 2",
        "newest first"
    );
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(
            &format!("/api/v1/users/me/tenants?limit=2&cursor={cursor}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert!(page2.body["next_cursor"].is_null());
    app.get("/api/v1/users/me/tenants?limit=0", Some(&user.token))
        .await
        .assert_problem(422, "validation_failed");
    app.get("/api/v1/users/me/tenants?limit=201", Some(&user.token))
        .await
        .assert(422);
    app.get("/api/v1/users/me/tenants?cursor=%%%", Some(&user.token))
        .await
        .assert(422);
    app.get("/api/v1/users/me/tenants?limit=abc", Some(&user.token))
        .await
        .assert(422);
}
