//! Project-scoped roles: a member's role for one project narrows or extends their tenant
//! role there, and project lists show only what the caller may see.

use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    project_roles_narrow_and_extend_the_tenant_role,
    project_assignments_are_validated_and_permissioned,
);

async fn ids(app: &TestApp, tenant: &str, token: &str) -> Vec<String> {
    let r = app
        .get(&format!("/api/v1/tenants/{tenant}/projects"), Some(token))
        .await;
    r.assert(200);
    let mut ids: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn project_roles_narrow_and_extend_the_tenant_role(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let a = app.create_project(t, &w.owner, "A").await;
    let b = app.create_project(t, &w.owner, "B").await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "hidden", "permissions": []}),
    )
    .await
    .assert(201);
    // Narrow: the member loses project B entirely (it no longer exists for them).
    let put = app
        .put(
            &format!("/api/v1/tenants/{t}/projects/{b}/members/{}", w.member.id),
            Some(&w.admin.token),
            json!({"role": "hidden"}),
        )
        .await;
    put.assert(200);
    assert_eq!(put.body["role"], "hidden");
    assert_eq!(put.body["tenant_role"], "member");
    assert_eq!(
        ids(&app, t, &w.member.token).await,
        std::slice::from_ref(&a)
    );
    app.get(
        &format!("/api/v1/tenants/{t}/projects/{b}"),
        Some(&w.member.token),
    )
    .await
    .assert(404);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{b}"),
        Some(&w.member.token),
        json!({"description": "x"}),
    )
    .await
    .assert(404);
    // Narrow to read-only: visible, not writable.
    app.put(
        &format!("/api/v1/tenants/{t}/projects/{b}/members/{}", w.member.id),
        Some(&w.admin.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    assert_eq!(ids(&app, t, &w.member.token).await, both);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{b}"),
        Some(&w.member.token),
        json!({"description": "x"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{a}"),
        Some(&w.member.token),
        json!({"description": "x"}),
    )
    .await
    .assert(200);
    // Extend: the viewer may write in project A, nowhere else.
    app.put(
        &format!("/api/v1/tenants/{t}/projects/{a}/members/{}", w.viewer.id),
        Some(&w.admin.token),
        json!({"role": "member"}),
    )
    .await
    .assert(200);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{a}"),
        Some(&w.viewer.token),
        json!({"description": "viewer"}),
    )
    .await
    .assert(200);
    app.patch(
        &format!("/api/v1/tenants/{t}/projects/{b}"),
        Some(&w.viewer.token),
        json!({"description": "no"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(&w.viewer.token),
        json!({"name": "C"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A custom role with no project access at all, extended into one project, sees only it.
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "outside", "permissions": ["tenant:read"]}),
    )
    .await
    .assert(201);
    let contractor = app.register("contractor@example.com").await;
    app.add_member(t, &w.owner, &contractor, "outside").await;
    app.get(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(&contractor.token),
    )
    .await
    .assert_problem(403, "forbidden");
    app.put(
        &format!("/api/v1/tenants/{t}/projects/{b}/members/{}", contractor.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    assert_eq!(
        ids(&app, t, &contractor.token).await,
        std::slice::from_ref(&b)
    );
    app.get(
        &format!("/api/v1/tenants/{t}/projects/{a}"),
        Some(&contractor.token),
    )
    .await
    .assert(404);
    // Listing and removing assignments; removal restores the tenant role.
    let list = app
        .get(
            &format!("/api/v1/tenants/{t}/projects/{b}/members"),
            Some(&w.admin.token),
        )
        .await;
    list.assert(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    app.delete(
        &format!("/api/v1/tenants/{t}/projects/{b}/members/{}", contractor.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    app.get(
        &format!("/api/v1/tenants/{t}/projects"),
        Some(&contractor.token),
    )
    .await
    .assert_problem(403, "forbidden");
    app.delete(
        &format!("/api/v1/tenants/{t}/projects/{b}/members/{}", contractor.id),
        Some(&w.owner.token),
    )
    .await
    .assert(404);
}

async fn project_assignments_are_validated_and_permissioned(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let a = app.create_project(t, &w.owner, "A").await;
    let path = format!("/api/v1/tenants/{t}/projects/{a}/members/{}", w.member.id);
    app.put(&path, Some(&w.member.token), json!({"role": "viewer"}))
        .await
        .assert_problem(403, "forbidden");
    app.put(&path, None, json!({"role": "viewer"}))
        .await
        .assert(401);
    app.put(&path, Some(&w.owner.token), json!({"role": "nobody"}))
        .await
        .assert_problem(422, "validation_failed");
    app.put(&path, Some(&w.owner.token), json!({}))
        .await
        .assert(422);
    // Admins cannot hand out owner powers, nor touch an owner's assignment.
    app.put(&path, Some(&w.admin.token), json!({"role": "owner"}))
        .await
        .assert_problem(403, "forbidden");
    app.put(
        &format!("/api/v1/tenants/{t}/projects/{a}/members/{}", w.owner.id),
        Some(&w.admin.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // Non-members, unknown projects and foreign tenants: not found.
    app.put(
        &format!("/api/v1/tenants/{t}/projects/{a}/members/{}", w.outsider.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(404);
    let foreign = app
        .create_project(&w.other_tenant, &w.outsider, "Theirs")
        .await;
    app.put(
        &format!(
            "/api/v1/tenants/{t}/projects/{foreign}/members/{}",
            w.member.id
        ),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(404);
    app.put(
        &format!(
            "/api/v1/tenants/{}/projects/{foreign}/members/{}",
            w.other_tenant, w.outsider.id
        ),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(404);
    app.get(
        &format!("/api/v1/tenants/{t}/projects/{foreign}/members"),
        Some(&w.owner.token),
    )
    .await
    .assert(404);
}
