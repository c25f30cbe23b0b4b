//! A download link is re-authorized on every use: it stops at once when its requester is
//! removed, disabled or demoted below `documents:read` (tenant-wide or in the document's
//! project), when the API key that asked for it is revoked, when the tenant is suspended or
//! deleted, and when the document is deleted. Every refusal is the same 404 problem, with
//! none of the document's bytes.

use serde_json::json;

use super::link;
use crate::{
    admin::platform_admin,
    documents::{Upload, documents, upload},
    helpers::TestApp,
};

crate::backend_tests!(
    links_stop_when_the_requester_loses_access,
    links_stop_when_the_tenant_is_suspended_or_deleted,
    links_of_api_keys_stop_when_the_key_does,
);

const CONTENT: &str = "the confidential content";

/// The link serves the content.
async fn works(app: &TestApp, url: &str) {
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.text().await.unwrap(), CONTENT);
}

/// The link answers 404 `not_found` as problem+json, without the content.
pub async fn refused(app: &TestApp, url: &str, why: &str) {
    let r = app.client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let text = r.text().await.unwrap();
    assert_eq!(status, 404, "{why}: {text}");
    assert_eq!(content_type, "application/problem+json", "{why}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "not_found", "{why}");
    assert!(!text.contains(CONTENT), "{why}: {text}");
}

async fn doc(app: &TestApp, tenant: &str, token: &str, project: Option<&str>) -> String {
    let mut up = Upload::text(CONTENT, "c.txt");
    up.project_id = project;
    let r = upload(app, tenant, token, up).await;
    r.assert(201);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn links_stop_when_the_requester_loses_access(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let root = platform_admin(&app, "root@example.com").await;
    let project = app.create_project(t, &w.owner, "P").await;
    let outside = doc(&app, t, &w.owner.token, None).await;
    let inside = doc(&app, t, &w.owner.token, Some(&project)).await;

    // Demoted below documents:read tenant-wide.
    let blind = "blind";
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": blind, "permissions": ["projects:read"]}),
    )
    .await
    .assert(201);
    let url = link(&app, t, &outside, &w.member.token).await;
    works(&app, &url).await;
    app.patch(
        &format!("/api/v1/tenants/{t}/members/{}", w.member.id),
        Some(&w.owner.token),
        json!({"role": blind}),
    )
    .await
    .assert(200);
    refused(&app, &url, "requester demoted below documents:read").await;
    // Promoted again: the same link serves again (it is not revoked, it is re-checked).
    app.patch(
        &format!("/api/v1/tenants/{t}/members/{}", w.member.id),
        Some(&w.owner.token),
        json!({"role": "member"}),
    )
    .await
    .assert(200);
    works(&app, &url).await;

    // Hidden from the document's project by a project role.
    let url = link(&app, t, &inside, &w.member.token).await;
    works(&app, &url).await;
    app.put(
        &format!(
            "/api/v1/tenants/{t}/projects/{project}/members/{}",
            w.member.id
        ),
        Some(&w.owner.token),
        json!({"role": blind}),
    )
    .await
    .assert(200);
    refused(&app, &url, "project role without documents:read").await;

    // Removed from the tenant.
    let url = link(&app, t, &outside, &w.viewer.token).await;
    works(&app, &url).await;
    app.delete(
        &format!("/api/v1/tenants/{t}/members/{}", w.viewer.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    refused(&app, &url, "requester removed").await;

    // Disabled by a platform administrator.
    let url = link(&app, t, &outside, &w.admin.token).await;
    works(&app, &url).await;
    app.post(
        &format!("/api/v1/admin/users/{}/disable", w.admin.id),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    refused(&app, &url, "requester disabled").await;

    // The document deleted.
    let url = link(&app, t, &outside, &w.owner.token).await;
    works(&app, &url).await;
    app.delete(&format!("{}/{outside}", documents(t)), Some(&w.owner.token))
        .await
        .assert(204);
    refused(&app, &url, "document deleted").await;
}

async fn links_stop_when_the_tenant_is_suspended_or_deleted(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let root = platform_admin(&app, "root@example.com").await;
    let id = doc(&app, t, &w.member.token, None).await;
    let url = link(&app, t, &id, &w.viewer.token).await;
    works(&app, &url).await;
    let admin = |action: &'static str| {
        let (app, root) = (&app, &root);
        async move {
            app.post(
                &format!("/api/v1/admin/tenants/{t}/{action}"),
                Some(&root.token),
                json!({"reason": "test"}),
            )
            .await
            .assert(200);
        }
    };
    admin("suspend").await;
    refused(&app, &url, "tenant suspended").await;
    admin("reactivate").await;
    works(&app, &url).await;
    app.delete(&format!("/api/v1/tenants/{t}"), Some(&w.owner.token))
        .await
        .assert(204);
    refused(&app, &url, "tenant deleted").await;
}

async fn links_of_api_keys_stop_when_the_key_does(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let project = app.create_project(t, &w.owner, "P").await;
    let other = app.create_project(t, &w.owner, "Q").await;
    let inside = doc(&app, t, &w.member.token, Some(&project)).await;
    let elsewhere = doc(&app, t, &w.member.token, Some(&other)).await;
    let keys = format!("/api/v1/tenants/{t}/api-keys");
    let key = app
        .post(
            &keys,
            Some(&w.owner.token),
            json!({"name": "k", "role": "viewer"}),
        )
        .await;
    key.assert(201);
    let (key_id, secret) = (
        key.body["id"].as_str().unwrap().to_owned(),
        key.body["key"].as_str().unwrap().to_owned(),
    );
    let url = link(&app, t, &inside, &secret).await;
    assert!(url.contains(&format!("key={key_id}")), "{url}");
    works(&app, &url).await;
    // The key's requester field cannot be dropped to fall back to its creator's grant.
    let stripped = url.replace(&format!("&key={key_id}"), "");
    let r = app.client.get(&stripped).send().await.unwrap();
    assert_eq!(r.status(), 403, "a link without its key is a tampered link");
    app.delete(&format!("{keys}/{key_id}"), Some(&w.owner.token))
        .await
        .assert(204);
    refused(&app, &url, "key revoked").await;

    // A project-bound key's link reads only its project, like the key.
    let bound = app
        .post(
            &keys,
            Some(&w.admin.token),
            json!({"name": "p", "role": "viewer", "project_id": project}),
        )
        .await;
    bound.assert(201);
    let secret = bound.body["key"].as_str().unwrap();
    works(&app, &link(&app, t, &inside, secret).await).await;
    app.get(
        &format!("{}/{elsewhere}/download", documents(t)),
        Some(secret),
    )
    .await
    .assert_problem(404, "not_found");
    // The creator demoted below documents:read: the key's links stop with them.
    let url = link(&app, t, &inside, secret).await;
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "blind", "permissions": []}),
    )
    .await
    .assert(201);
    app.patch(
        &format!("/api/v1/tenants/{t}/members/{}", w.admin.id),
        Some(&w.owner.token),
        json!({"role": "blind"}),
    )
    .await
    .assert(200);
    refused(&app, &url, "key creator demoted").await;
}
