//! Documents in projects follow the caller's project grants: a project role that hides a
//! project hides its documents, a project-bound API key sees only its project's documents.

use serde_json::json;

use super::{Upload, documents, upload};
use crate::helpers::TestApp;

crate::backend_tests!(project_grants_decide_which_documents_are_visible);

async fn project_grants_decide_which_documents_are_visible(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let open = app.create_project(t, &w.owner, "Open").await;
    let secret = app.create_project(t, &w.owner, "Secret").await;
    let loose = upload(&app, t, &w.owner.token, Upload::text("loose", "loose.txt")).await;
    let in_open = upload(
        &app,
        t,
        &w.owner.token,
        Upload::text("o", "open.txt").in_project(&open),
    )
    .await;
    let in_secret = upload(
        &app,
        t,
        &w.owner.token,
        Upload::text("s", "secret.txt").in_project(&secret),
    )
    .await;
    for r in [&loose, &in_open, &in_secret] {
        r.assert(201);
    }
    // A custom role without any project permission hides Secret from the member.
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "outsider", "permissions": []}),
    )
    .await
    .assert(201);
    app.put(
        &format!(
            "/api/v1/tenants/{t}/projects/{secret}/members/{}",
            w.member.id
        ),
        Some(&w.owner.token),
        json!({"role": "outsider"}),
    )
    .await
    .assert(200);
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["filename"].as_str().unwrap().to_owned())
            .collect()
    };
    let member_list = app.get(&documents(t), Some(&w.member.token)).await;
    member_list.assert(200);
    assert_eq!(names(&member_list.body), ["open.txt", "loose.txt"]);
    let hidden = format!(
        "{}/{}",
        documents(t),
        in_secret.body["id"].as_str().unwrap()
    );
    app.get(&hidden, Some(&w.member.token))
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("{hidden}/download"), Some(&w.member.token))
        .await
        .assert_problem(404, "not_found");
    app.delete(&hidden, Some(&w.member.token))
        .await
        .assert_problem(404, "not_found");
    // A hidden project is, to the member, no project at all.
    let refused = upload(
        &app,
        t,
        &w.member.token,
        Upload::text("x", "x").in_project(&secret),
    )
    .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "project_id");
    // A project the member reads but may not write to: 403.
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "reader", "permissions": ["projects:read", "documents:read"]}),
    )
    .await
    .assert(201);
    app.put(
        &format!(
            "/api/v1/tenants/{t}/projects/{open}/members/{}",
            w.member.id
        ),
        Some(&w.owner.token),
        json!({"role": "reader"}),
    )
    .await
    .assert(200);
    upload(
        &app,
        t,
        &w.member.token,
        Upload::text("x", "x").in_project(&open),
    )
    .await
    .assert_problem(403, "forbidden");
    // The viewer's tenant role reads all three.
    let viewer_list = app.get(&documents(t), Some(&w.viewer.token)).await;
    assert_eq!(names(&viewer_list.body).len(), 3);

    // A key bound to Open sees Open's documents only and uploads only there.
    let key = app
        .post(
            &format!("/api/v1/tenants/{t}/api-keys"),
            Some(&w.owner.token),
            json!({"name": "open-only", "role": "member", "project_id": open}),
        )
        .await;
    key.assert(201);
    let key = key.body["key"].as_str().unwrap().to_owned();
    let key_list = app.get(&documents(t), Some(&key)).await;
    key_list.assert(200);
    assert_eq!(names(&key_list.body), ["open.txt"]);
    app.get(
        &format!("{}/{}", documents(t), loose.body["id"].as_str().unwrap()),
        Some(&key),
    )
    .await
    .assert_problem(404, "not_found");
    upload(&app, t, &key, Upload::text("k", "k.txt").in_project(&open))
        .await
        .assert(201);
    upload(&app, t, &key, Upload::text("k2", "k2.txt"))
        .await
        .assert_problem(403, "forbidden");
    // A role with no document permission at all gets 403 on the list.
    let nobody = app.register("nobody@example.com").await;
    app.add_member(t, &w.owner, &nobody, "outsider").await;
    app.get(&documents(t), Some(&nobody.token))
        .await
        .assert_problem(403, "forbidden");
}
