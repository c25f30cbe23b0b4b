//! Custom roles over the permission catalog, and the catalog enforced permission by
//! permission.

use serde_json::json;

use crate::{
    documents::{Upload, upload},
    helpers::{TestApp, TestUser},
};

crate::backend_tests!(
    custom_roles_are_created_listed_and_validated,
    custom_roles_grant_exactly_their_permissions_and_follow_changes,
    system_roles_are_immutable_and_assigned_roles_cannot_be_deleted,
    nobody_creates_a_role_beyond_their_own_permissions,
    every_permission_in_the_catalog_is_enforced,
);

async fn create_role(
    app: &TestApp,
    tenant: &str,
    by: &TestUser,
    name: &str,
    perms: &[&str],
) -> String {
    let r = app
        .post(
            &format!("/api/v1/tenants/{tenant}/roles"),
            Some(&by.token),
            json!({"name": name, "description": "test role", "permissions": perms}),
        )
        .await;
    r.assert(201);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn custom_roles_are_created_listed_and_validated(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/roles", w.tenant);
    let id = create_role(
        &app,
        &w.tenant,
        &w.admin,
        "auditor",
        &["tenant:read", "audit:read"],
    )
    .await;
    let list = app.get(&path, Some(&w.viewer.token)).await;
    list.assert(200);
    let names: Vec<_> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["owner", "admin", "member", "viewer", "auditor"]);
    let one = app
        .get(&format!("{path}/{id}"), Some(&w.viewer.token))
        .await;
    one.assert(200);
    assert_eq!(
        one.body["permissions"],
        json!(["tenant:read", "audit:read"])
    );
    assert_eq!(one.body["system"], false);
    // Validation: bad names, system names, unknown permissions, duplicates.
    for (body, field) in [
        (json!({"name": "Bad Name", "permissions": []}), "name"),
        (json!({"name": "owner", "permissions": []}), "name"),
        (
            json!({"name": "x", "permissions": ["nope:nope"]}),
            "permissions",
        ),
    ] {
        let r = app.post(&path, Some(&w.owner.token), body).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
    }
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"name": "auditor", "permissions": []}),
    )
    .await
    .assert_problem(409, "already_exists");
    // Members and viewers cannot manage roles; outsiders see nothing.
    for user in [&w.member, &w.viewer] {
        app.post(
            &path,
            Some(&user.token),
            json!({"name": "y", "permissions": []}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    app.get(&path, Some(&w.outsider.token)).await.assert(404);
    app.get(
        &format!("/api/v1/tenants/{}/roles/{id}", w.other_tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(404);
    app.get(&path, None).await.assert(401);
}

async fn custom_roles_grant_exactly_their_permissions_and_follow_changes(app: TestApp) {
    let w = app.world().await;
    let role = create_role(&app, &w.tenant, &w.owner, "reader", &["projects:read"]).await;
    let user = app.register("reader@example.com").await;
    app.add_member(&w.tenant, &w.owner, &user, "reader").await;
    let projects = format!("/api/v1/tenants/{}/projects", w.tenant);
    app.get(&projects, Some(&user.token)).await.assert(200);
    app.post(&projects, Some(&user.token), json!({"name": "P"}))
        .await
        .assert_problem(403, "forbidden");
    app.get(
        &format!("/api/v1/tenants/{}/members", w.tenant),
        Some(&user.token),
    )
    .await
    .assert_problem(403, "forbidden");
    // Changing the role changes what its holders may do, at once; a rename carries them.
    let r = app
        .patch(
            &format!("/api/v1/tenants/{}/roles/{role}", w.tenant),
            Some(&w.owner.token),
            json!({"name": "writer", "permissions": ["projects:read", "projects:write"]}),
        )
        .await;
    r.assert(200);
    assert_eq!(r.body["name"], "writer");
    app.post(&projects, Some(&user.token), json!({"name": "P"}))
        .await
        .assert(201);
    let me = app
        .get(
            &format!("/api/v1/tenants/{}/members/{}", w.tenant, user.id),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(me.body["role"], "writer");
}

async fn system_roles_are_immutable_and_assigned_roles_cannot_be_deleted(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/roles", w.tenant);
    for name in ["owner", "viewer"] {
        app.patch(
            &format!("{path}/{name}"),
            Some(&w.owner.token),
            json!({"permissions": []}),
        )
        .await
        .assert_problem(403, "forbidden");
        app.delete(&format!("{path}/{name}"), Some(&w.owner.token))
            .await
            .assert_problem(403, "forbidden");
    }
    let role = create_role(&app, &w.tenant, &w.owner, "temp", &["tenant:read"]).await;
    let user = app.register("temp@example.com").await;
    app.add_member(&w.tenant, &w.owner, &user, "temp").await;
    app.delete(&format!("{path}/{role}"), Some(&w.owner.token))
        .await
        .assert_problem(409, "role_in_use");
    app.patch(
        &format!("/api/v1/tenants/{}/members/{}", w.tenant, user.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    app.delete(&format!("{path}/{role}"), Some(&w.owner.token))
        .await
        .assert(204);
    app.get(&format!("{path}/{role}"), Some(&w.owner.token))
        .await
        .assert(404);
    // The name is free again, and a removed role cannot be assigned.
    app.post(
        &format!("/api/v1/tenants/{}/members", w.tenant),
        Some(&w.owner.token),
        json!({"email": app.register("late@example.com").await.email, "role": "temp"}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn nobody_creates_a_role_beyond_their_own_permissions(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/roles", w.tenant);
    // Admins lack tenant:delete.
    app.post(
        &path,
        Some(&w.admin.token),
        json!({"name": "deleter", "permissions": ["tenant:delete"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    let role = create_role(&app, &w.tenant, &w.owner, "deleter", &["tenant:delete"]).await;
    app.patch(
        &format!("{path}/{role}"),
        Some(&w.admin.token),
        json!({"permissions": []}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.delete(&format!("{path}/{role}"), Some(&w.admin.token))
        .await
        .assert_problem(403, "forbidden");
}

/// For each permission: a member whose only role grants exactly it passes the endpoint
/// that enforces it, and a member with an empty role gets 403 there.
async fn every_permission_in_the_catalog_is_enforced(app: TestApp) {
    let w = app.world().await;
    let t = w.tenant.clone();
    let project = app.create_project(&t, &w.owner, "Enforced").await;
    let catalog = app.get("/api/v1/permissions", None).await;
    let mut names: Vec<String> = catalog.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    // Deleting the tenant ends the walk.
    names.sort_by_key(|n| n == "tenant:delete");
    create_role(&app, &t, &w.owner, "nothing", &[]).await;
    let empty = app.register("empty@example.com").await;
    app.add_member(&t, &w.owner, &empty, "nothing").await;
    for (i, name) in names.iter().enumerate() {
        let role = format!("only-{}", name.replace([':', '_'], "-"));
        create_role(&app, &t, &w.owner, &role, &[name.as_str()]).await;
        let user = app.register(&format!("perm{i}@example.com")).await;
        app.add_member(&t, &w.owner, &user, &role).await;
        let other = app.register(&format!("target{i}@example.com")).await;
        let (method, path, body) = match name.as_str() {
            "tenant:read" => ("GET", format!("/api/v1/tenants/{t}"), None),
            "tenant:update" => (
                "PATCH",
                format!("/api/v1/tenants/{t}"),
                Some(json!({"name": "Acme 2"})),
            ),
            "tenant:delete" => ("DELETE", format!("/api/v1/tenants/{t}"), None),
            "members:read" => ("GET", format!("/api/v1/tenants/{t}/members"), None),
            "members:manage" => (
                "POST",
                format!("/api/v1/tenants/{t}/members"),
                Some(json!({"email": other.email, "role": "nothing"})),
            ),
            "roles:read" => ("GET", format!("/api/v1/tenants/{t}/roles"), None),
            "roles:manage" => (
                "POST",
                format!("/api/v1/tenants/{t}/roles"),
                Some(json!({"name": format!("made-{i}"), "permissions": []})),
            ),
            "projects:read" => (
                "GET",
                format!("/api/v1/tenants/{t}/projects/{project}"),
                None,
            ),
            "projects:write" => (
                "POST",
                format!("/api/v1/tenants/{t}/projects"),
                Some(json!({"name": format!("New {i}")})),
            ),
            "projects:delete" => (
                "DELETE",
                format!(
                    "/api/v1/tenants/{t}/projects/{}",
                    app.create_project(&t, &w.owner, &format!("Doomed {i}"))
                        .await
                ),
                None,
            ),
            "api_keys:read" => ("GET", format!("/api/v1/tenants/{t}/api-keys"), None),
            "api_keys:manage" => (
                "POST",
                format!("/api/v1/tenants/{t}/api-keys"),
                Some(json!({"name": "k", "permissions": []})),
            ),
            "audit:read" => ("GET", format!("/api/v1/tenants/{t}/audit-logs"), None),
            "invitations:read" => ("GET", format!("/api/v1/tenants/{t}/invitations"), None),
            "documents:read" => ("GET", format!("/api/v1/tenants/{t}/documents"), None),
            "documents:write" => {
                // A multipart upload: checked here, outside the JSON request below.
                let mut up = Upload::text("refused", "refused.txt");
                up.mime_type = Some("text/plain");
                upload(&app, &t, &empty.token, up)
                    .await
                    .assert_problem(403, "forbidden");
                upload(
                    &app,
                    &t,
                    &user.token,
                    Upload::text(&format!("w{i}"), "w.txt"),
                )
                .await
                .assert(201);
                continue;
            }
            "documents:delete" => (
                "DELETE",
                format!(
                    "/api/v1/tenants/{t}/documents/{}",
                    owner_document(&app, &t, &w.owner, i).await.0
                ),
                None,
            ),
            "files:read" => ("GET", format!("/api/v1/tenants/{t}/files"), None),
            "files:delete" => {
                let (document, file) = owner_document(&app, &t, &w.owner, i).await;
                app.delete(
                    &format!("/api/v1/tenants/{t}/documents/{document}"),
                    Some(&w.owner.token),
                )
                .await
                .assert(204);
                ("DELETE", format!("/api/v1/tenants/{t}/files/{file}"), None)
            }
            other => panic!("permission {other} has no enforcement test: add one here"),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let denied = app
            .request(method.clone(), &path, Some(&empty.token), body.clone())
            .await;
        denied.assert_problem(403, "forbidden");
        let allowed = app.request(method, &path, Some(&user.token), body).await;
        assert!(
            allowed.status.is_success(),
            "{name}: {} {}",
            allowed.status,
            allowed.body
        );
    }
}

/// A document the owner uploads (distinct content per `i`): its id and file id.
async fn owner_document(app: &TestApp, t: &str, owner: &TestUser, i: usize) -> (String, String) {
    let r = upload(
        app,
        t,
        &owner.token,
        Upload::text(&format!("owned {i}"), "o.txt"),
    )
    .await;
    r.assert(201);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["file_id"].as_str().unwrap().to_owned(),
    )
}
