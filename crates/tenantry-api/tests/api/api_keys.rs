//! Tenant API keys: shown once, stored hashed, accepted as bearer on tenant paths, revoked
//! at once, never beyond their creator.

use serde_json::json;

use crate::helpers::{TestApp, TestUser};

crate::backend_tests!(
    keys_are_shown_once_stored_hashed_and_work_as_bearer,
    keys_carry_a_role_or_a_subset_and_never_exceed_their_creator,
    revoked_expired_foreign_and_malformed_keys_are_refused,
    project_bound_keys_see_only_their_project,
    project_bound_keys_hold_no_tenant_permission,
);

async fn create_key(
    app: &TestApp,
    tenant: &str,
    by: &TestUser,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = app
        .post(
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            Some(&by.token),
            body,
        )
        .await;
    r.assert(201);
    r.body.clone()
}

async fn keys_are_shown_once_stored_hashed_and_work_as_bearer(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let created = create_key(&app, t, &w.admin, json!({"name": "CI", "role": "member"})).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tnt_") && key.len() == 47, "{key}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["role"], "member");
    assert_eq!(created["created_by"], w.admin.id.as_str());
    // Listed without the secret.
    let list = app
        .get(
            &format!("/api/v1/tenants/{t}/api-keys"),
            Some(&w.owner.token),
        )
        .await;
    list.assert(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.body.to_string().contains(&key));
    assert!(list.body["items"][0]["last_used_at"].is_null());
    // Works as a bearer on tenant paths, with the role's permissions.
    app.get(&format!("/api/v1/tenants/{t}/projects"), Some(&key))
        .await
        .assert(200);
    app.post(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(&key),
        json!({"name": "By key"}),
    )
    .await
    .assert(201);
    app.get(&format!("/api/v1/tenants/{t}/api-keys"), Some(&key))
        .await
        .assert_problem(403, "forbidden");
    // Not on account paths.
    app.get("/api/v1/users/me", Some(&key))
        .await
        .assert_problem(401, "invalid_token");
    // Use is recorded (off the request path).
    let mut used = serde_json::Value::Null;
    for _ in 0..50 {
        let r = app
            .get(
                &format!(
                    "/api/v1/tenants/{t}/api-keys/{}",
                    created["id"].as_str().unwrap()
                ),
                Some(&w.owner.token),
            )
            .await;
        used = r.body["last_used_at"].clone();
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!used.is_null(), "last_used_at was not recorded");
    // The stored row has a hash, never the key.
    let dump = dump_api_keys(&app).await;
    assert!(
        !dump.contains(&key[4..]),
        "the secret is stored in plain text"
    );
    // No credentials; an outsider sees no such tenant.
    app.get(&format!("/api/v1/tenants/{t}/api-keys"), None)
        .await
        .assert(401);
    app.get(
        &format!("/api/v1/tenants/{t}/api-keys"),
        Some(&w.outsider.token),
    )
    .await
    .assert(404);
    // Members and viewers cannot create keys.
    for user in [&w.member, &w.viewer] {
        app.post(
            &format!("/api/v1/tenants/{t}/api-keys"),
            Some(&user.token),
            json!({"name": "x", "role": "viewer"}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
}

async fn dump_api_keys(app: &TestApp) -> String {
    match &app.database_url {
        Some(url) => {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let rows =
                sqlx::query("SELECT encode(key_hash, 'hex') || prefix || name FROM api_keys")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        None => {
            let rows: Vec<String> = app
                .db()
                .await
                .read_all(
                    sea_query::Query::select()
                        .expr(sea_query::Expr::cust("hex(key_hash) || prefix || name"))
                        .from("api_keys"),
                )
                .await
                .unwrap();
            rows.concat()
        }
    }
}

async fn keys_carry_a_role_or_a_subset_and_never_exceed_their_creator(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let path = format!("/api/v1/tenants/{t}/api-keys");
    // Exactly one of role / permissions, valid names.
    for body in [
        json!({"name": "x"}),
        json!({"name": "x", "role": "viewer", "permissions": []}),
        json!({"name": "x", "permissions": ["nope:nope"]}),
        json!({"name": "x", "role": "viewer", "expires_at": "yesterday"}),
        json!({"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "role": "viewer", "project_id": "00000000-0000-0000-0000-000000000000"}),
    ] {
        app.post(&path, Some(&w.owner.token), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"name": "x", "role": "nobody"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // An admin cannot mint an owner key or one with tenant:delete.
    app.post(
        &path,
        Some(&w.admin.token),
        json!({"name": "x", "role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &path,
        Some(&w.admin.token),
        json!({"name": "x", "permissions": ["tenant:delete"]}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A subset key does exactly its subset.
    let reader = create_key(
        &app,
        t,
        &w.admin,
        json!({"name": "reader", "permissions": ["projects:read"]}),
    )
    .await;
    let reader = reader["key"].as_str().unwrap();
    app.get(&format!("/api/v1/tenants/{t}/projects"), Some(reader))
        .await
        .assert(200);
    app.get(&format!("/api/v1/tenants/{t}/members"), Some(reader))
        .await
        .assert_problem(403, "forbidden");
    // Demoting the creator narrows their keys at once; removing them kills the keys.
    let admin_key = create_key(&app, t, &w.admin, json!({"name": "admin", "role": "admin"})).await;
    let admin_key = admin_key["key"].as_str().unwrap();
    app.get(&format!("/api/v1/tenants/{t}/members"), Some(admin_key))
        .await
        .assert(200);
    app.patch(
        &format!("/api/v1/tenants/{t}/members/{}", w.admin.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    app.post(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(admin_key),
        json!({"name": "No"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.get(&format!("/api/v1/tenants/{t}/projects"), Some(admin_key))
        .await
        .assert(200);
    app.delete(
        &format!("/api/v1/tenants/{t}/members/{}", w.admin.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    app.get(&format!("/api/v1/tenants/{t}/projects"), Some(admin_key))
        .await
        .assert_problem(401, "invalid_token");
    // A key cannot make the member it acts for leave.
    let owner_key = create_key(&app, t, &w.owner, json!({"name": "o", "role": "viewer"})).await;
    app.delete(
        &format!("/api/v1/tenants/{t}/members/{}", w.owner.id),
        Some(owner_key["key"].as_str().unwrap()),
    )
    .await
    .assert_problem(403, "forbidden");
}

async fn revoked_expired_foreign_and_malformed_keys_are_refused(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let created = create_key(&app, t, &w.owner, json!({"name": "k", "role": "viewer"})).await;
    let key = created["key"].as_str().unwrap();
    let projects = format!("/api/v1/tenants/{t}/projects");
    app.get(&projects, Some(key)).await.assert(200);
    // Another tenant's path: as if the tenant did not exist.
    app.get(
        &format!("/api/v1/tenants/{}/projects", w.other_tenant),
        Some(key),
    )
    .await
    .assert_problem(404, "not_found");
    // Foreign tenant's key on our path.
    let foreign = create_key(
        &app,
        &w.other_tenant,
        &w.outsider,
        json!({"name": "f", "role": "owner"}),
    )
    .await;
    app.get(&projects, Some(foreign["key"].as_str().unwrap()))
        .await
        .assert_problem(404, "not_found");
    // The last character changed (to one it is not: a fixed 'A' would keep 1 key in 64).
    let last = if key.ends_with('A') { 'B' } else { 'A' };
    for bad in [
        "tnt_",
        "tnt_short",
        &format!("{key}x"),
        &key.replace("tnt_", "tnt-"),
        &format!("{}{last}", &key[..46]),
    ] {
        app.get(&projects, Some(bad)).await.assert(401);
    }
    // Revocation is immediate.
    let id = created["id"].as_str().unwrap();
    app.delete(
        &format!("/api/v1/tenants/{t}/api-keys/{id}"),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    app.get(&projects, Some(key))
        .await
        .assert_problem(401, "invalid_token");
    app.delete(
        &format!("/api/v1/tenants/{t}/api-keys/{id}"),
        Some(&w.owner.token),
    )
    .await
    .assert(404);
    app.delete(
        &format!(
            "/api/v1/tenants/{}/api-keys/{}",
            w.other_tenant,
            foreign["id"].as_str().unwrap()
        ),
        Some(&w.owner.token),
    )
    .await
    .assert(404);
    // Expiry.
    let soon = (app.clock.now() + chrono::Duration::seconds(2)).to_rfc3339();
    let expiring = create_key(
        &app,
        t,
        &w.owner,
        json!({"name": "e", "role": "viewer", "expires_at": soon}),
    )
    .await;
    let expiring = expiring["key"].as_str().unwrap();
    app.get(&projects, Some(expiring)).await.assert(200);
    app.clock.advance(std::time::Duration::from_millis(2100));
    app.get(&projects, Some(expiring))
        .await
        .assert_problem(401, "invalid_token");
}

async fn project_bound_keys_see_only_their_project(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let a = app.create_project(t, &w.owner, "A").await;
    let b = app.create_project(t, &w.owner, "B").await;
    let key = create_key(
        &app,
        t,
        &w.owner,
        json!({"name": "a-only", "role": "member", "project_id": a}),
    )
    .await;
    assert_eq!(key["project_id"], a.as_str());
    let key = key["key"].as_str().unwrap();
    let list = app
        .get(&format!("/api/v1/tenants/{t}/projects"), Some(key))
        .await;
    list.assert(200);
    let ids: Vec<_> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&a));
    app.get(&format!("/api/v1/tenants/{t}/projects/{a}"), Some(key))
        .await
        .assert(200);
    app.get(&format!("/api/v1/tenants/{t}/projects/{b}"), Some(key))
        .await
        .assert(404);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{a}"),
        Some(key),
        json!({"description": "by key"}),
    )
    .await
    .assert(200);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{b}"),
        Some(key),
        json!({"description": "no"}),
    )
    .await
    .assert(404);
    // Creating projects is tenant-wide: not for a project-bound key.
    app.post(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(key),
        json!({"name": "C"}),
    )
    .await
    .assert_problem(403, "forbidden");
}

/// A project-bound key acts on its project's resources only: even with the admin role, every
/// tenant-level operation answers 403 and changes nothing (the same calls with an unbound
/// admin key succeed, so the refusals are the binding's).
async fn project_bound_keys_hold_no_tenant_permission(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let a = app.create_project(t, &w.owner, "A").await;
    let bound = create_key(
        &app,
        t,
        &w.owner,
        json!({"name": "bound", "role": "admin", "project_id": a}),
    )
    .await;
    let unbound = create_key(&app, t, &w.owner, json!({"name": "free", "role": "admin"})).await;
    let base = format!("/api/v1/tenants/{t}");
    let doc = crate::documents::upload(
        &app,
        t,
        &w.owner.token,
        crate::documents::Upload::text("a", "a.txt").in_project(&a),
    )
    .await;
    doc.assert(201);
    let file = doc.body["file_id"].as_str().unwrap().to_owned();
    let role = app
        .post(
            &format!("{base}/roles"),
            Some(&w.owner.token),
            json!({"name": "spare", "permissions": ["projects:read"]}),
        )
        .await;
    role.assert(201);
    let role = role.body["id"].as_str().unwrap().to_owned();
    let tenant_level: Vec<(reqwest::Method, String, Option<serde_json::Value>)> = {
        use reqwest::Method as M;
        vec![
            (M::GET, base.clone(), None),
            (
                M::PATCH,
                base.clone(),
                Some(json!({"name": "Renamed by key"})),
            ),
            (M::GET, format!("{base}/settings"), None),
            (
                M::PATCH,
                format!("{base}/settings"),
                Some(json!({"default_locale": "en-GB"})),
            ),
            (M::GET, format!("{base}/members"), None),
            (M::GET, format!("{base}/members/{}", w.member.id), None),
            (
                M::PATCH,
                format!("{base}/members/{}", w.viewer.id),
                Some(json!({"role": "member"})),
            ),
            (M::GET, format!("{base}/roles"), None),
            (M::GET, format!("{base}/roles/{role}"), None),
            (
                M::PATCH,
                format!("{base}/roles/{role}"),
                Some(json!({"description": "x"})),
            ),
            (M::GET, format!("{base}/api-keys"), None),
            (
                M::POST,
                format!("{base}/api-keys"),
                Some(json!({"name": "n", "role": "viewer"})),
            ),
            (M::GET, format!("{base}/invitations"), None),
            (M::GET, format!("{base}/files"), None),
            (M::GET, format!("{base}/files/{file}"), None),
            (M::GET, format!("{base}/usage"), None),
            (M::GET, format!("{base}/audit-logs"), None),
            (M::GET, format!("{base}/projects/{a}/members"), None),
            (
                M::PUT,
                format!("{base}/projects/{a}/members/{}", w.member.id),
                Some(json!({"role": "viewer"})),
            ),
        ]
    };
    for (method, path, body) in &tenant_level {
        let r = app
            .request(method.clone(), path, bound["key"].as_str(), body.clone())
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (403, "forbidden"),
            "{method} {path} with a project-bound key: {}",
            r.body
        );
    }
    let tenant = app.get(&base, Some(&w.owner.token)).await;
    assert_eq!(tenant.body["name"], "Acme", "the tenant was not renamed");
    for (method, path, body) in &tenant_level {
        let r = app
            .request(method.clone(), path, unbound["key"].as_str(), body.clone())
            .await;
        assert!(
            r.status.is_success(),
            "{method} {path} with an unbound admin key: {} {}",
            r.status,
            r.body
        );
    }
    // Its own project's resources still work.
    let key = bound["key"].as_str().unwrap();
    app.get(&format!("{base}/projects/{a}"), Some(key))
        .await
        .assert(200);
    app.get(&format!("{base}/documents"), Some(key))
        .await
        .assert(200);
    let doc_id = doc.body["id"].as_str().unwrap();
    app.get(&format!("{base}/documents/{doc_id}/download"), Some(key))
        .await
        .assert(200);
}
