//! The same flows on an S3-compatible server (started by the test command): deduplicated
//! uploads, download links of this server that redirect to short-lived presigned URLs
//! (attachment, stored type, tampering refused) and stop when access ends, deletion and
//! collection.

use serde_json::json;
use tenantry_db::AdminScope;

use super::{Upload, documents, sha256_hex, upload, usage};
use crate::helpers::{Backend, TestApp, spawn_app_with};

async fn s3_app(backend: Backend, test: &str) -> Option<(TestApp, tenantry_testkit::S3Server)> {
    let server = tenantry_testkit::s3_server(test)?;
    let bucket = server.create_bucket().await;
    let (endpoint, key, secret) = (
        server.endpoint.clone(),
        server.access_key_id.clone(),
        server.secret_access_key.clone(),
    );
    let app = spawn_app_with(backend, test, move |c| {
        c.storage_url = Some(format!("s3://{bucket}"));
        c.s3.endpoint = Some(endpoint);
        c.s3.access_key_id = Some(key);
        c.s3.secret_access_key = Some(secret.into());
        c.s3.path_style = true;
    })
    .await?;
    Some((app, server))
}

async fn documents_live_in_s3(backend: Backend, test: &str) {
    let Some((app, _server)) = s3_app(backend, test).await else {
        return;
    };
    let w = app.world().await;
    let t = &w.tenant;
    let content = vec![7u8; 3 * 1024 * 1024 + 17];
    let big = Upload {
        content: content.clone(),
        filename: Some("blob.bin"),
        mime_type: Some("application/octet-stream"),
        project_id: None,
    };
    let first = upload(&app, t, &w.member.token, big).await;
    first.assert(201);
    assert_eq!(first.body["sha256"], sha256_hex(&content));
    let again = Upload {
        content: content.clone(),
        filename: Some("copy.bin"),
        mime_type: None,
        project_id: None,
    };
    let second = upload(&app, t, &w.member.token, again).await;
    second.assert(201);
    assert_eq!(second.body["file_id"], first.body["file_id"]);
    assert_eq!(
        usage(&app, t, &w.member.token).await,
        json!({"bytes": content.len(), "files": 1, "documents": 2, "quota_bytes": null})
    );
    let id = first.body["id"].as_str().unwrap();
    let link = app
        .get(
            &format!("{}/{id}/download", documents(t)),
            Some(&w.viewer.token),
        )
        .await;
    link.assert(200);
    let url = link.body["url"].as_str().unwrap().to_owned();
    // The link is this server's (re-checked on every use), never a presigned URL: those
    // cannot be revoked.
    assert!(
        url.starts_with(&format!("http://{}/api/v1/downloads/", app.addr)),
        "{url}"
    );
    assert!(!url.contains("X-Amz-"), "{url}");
    // Another tenant's member gets no link, no document and no file: as if missing.
    for path in [
        format!("{}/{id}/download", documents(t)),
        format!("{}/{id}", documents(t)),
        format!(
            "/api/v1/tenants/{t}/files/{}",
            first.body["file_id"].as_str().unwrap()
        ),
    ] {
        app.get(&path, Some(&w.outsider.token))
            .await
            .assert_problem(404, "not_found");
    }
    // The same bytes in the other tenant are another object with another key.
    let theirs = upload(
        &app,
        &w.other_tenant,
        &w.outsider.token,
        Upload {
            content: content.clone(),
            filename: Some("theirs.bin"),
            mime_type: None,
            project_id: None,
        },
    )
    .await;
    theirs.assert(201);
    assert_ne!(theirs.body["file_id"], first.body["file_id"]);
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap(), content.as_slice());
    // Each use redirects to a URL presigned for a minute only.
    let link_url = url.clone();
    let url = presigned(&link_url).await;
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Expires=60&"), "{url}");
    // The attachment disposition and the stored type are signed response overrides (the
    // test server, s3s-fs, does not apply them, so their signature is what is checked):
    // changing one, or the signature, is refused.
    assert!(
        url.contains("response-content-disposition=attachment"),
        "{url}"
    );
    let tampered = url.replace(
        "response-content-type=application",
        "response-content-type=text",
    );
    assert_ne!(tampered, url);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let forged = {
        let (head, signature) = url.split_once("X-Amz-Signature=").unwrap();
        let (hex, rest) = signature.split_at(64);
        let flipped: String = hex.chars().rev().collect::<String>();
        format!("{head}X-Amz-Signature={flipped}{rest}")
    };
    assert_ne!(forged, url);
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 403);

    for doc in [&first, &second] {
        app.delete(
            &format!("{}/{}", documents(t), doc.body["id"].as_str().unwrap()),
            Some(&w.owner.token),
        )
        .await
        .assert(204);
    }
    let report = app
        .state
        .files
        .sweep(&AdminScope::for_housekeeping(), std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(usage(&app, t, &w.owner.token).await["bytes"], 0);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
    assert_eq!(reqwest::get(&link_url).await.unwrap().status(), 404);
}

/// Where a download link of this server redirects (302).
async fn presigned(link: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(link).send().await.unwrap();
    assert_eq!(r.status(), 302, "{link}");
    r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn s3_links_stop_when_access_ends(backend: Backend, test: &str) {
    let Some((app, _server)) = s3_app(backend, test).await else {
        return;
    };
    let w = app.world().await;
    let t = &w.tenant;
    let root = crate::admin::platform_admin(&app, "root@example.com").await;
    let doc = upload(&app, t, &w.member.token, Upload::text("s3 secret", "s.txt")).await;
    doc.assert(201);
    let id = doc.body["id"].as_str().unwrap();
    let link = |token: String| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("{}/{id}/download", documents(t)), Some(&token))
                .await;
            r.assert(200);
            r.body["url"].as_str().unwrap().to_owned()
        }
    };
    let by_viewer = link(w.viewer.token.clone()).await;
    let by_admin = link(w.admin.token.clone()).await;
    let by_member = link(w.member.token.clone()).await;
    for url in [&by_viewer, &by_admin, &by_member] {
        let object = reqwest::get(presigned(url).await).await.unwrap();
        assert_eq!(object.text().await.unwrap(), "s3 secret");
    }
    app.delete(
        &format!("/api/v1/tenants/{t}/members/{}", w.viewer.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    super::downloads::revocation::refused(&app, &by_viewer, "requester removed").await;
    app.post(
        &format!("/api/v1/admin/users/{}/disable", w.admin.id),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    super::downloads::revocation::refused(&app, &by_admin, "requester disabled").await;
    app.post(
        &format!("/api/v1/admin/tenants/{t}/suspend"),
        Some(&root.token),
        json!({"reason": "test"}),
    )
    .await
    .assert(200);
    super::downloads::revocation::refused(&app, &by_member, "tenant suspended").await;
}

#[tokio::test]
async fn sqlite_s3_links_stop_when_access_ends() {
    s3_links_stop_when_access_ends(Backend::Sqlite, "documents_s3_links_sqlite").await;
}

#[tokio::test]
async fn postgres_s3_links_stop_when_access_ends() {
    s3_links_stop_when_access_ends(Backend::Postgres, "documents_s3_links_pg").await;
}

#[tokio::test]
async fn sqlite_documents_live_in_s3() {
    documents_live_in_s3(Backend::Sqlite, "documents_s3_sqlite").await;
}

#[tokio::test]
async fn postgres_documents_live_in_s3() {
    documents_live_in_s3(Backend::Postgres, "documents_s3_pg").await;
}

#[tokio::test]
async fn ready_answers_503_while_the_storage_is_unreachable() {
    let app = spawn_app_with(Backend::Sqlite, "storage_unreachable", |c| {
        c.storage_url = Some("s3://unreachable-bucket".into());
        // Nothing listens on port 9 of the loopback (discard): connections are refused.
        c.s3.endpoint = Some("http://127.0.0.1:9".into());
        c.s3.access_key_id = Some("k".into());
        c.s3.secret_access_key = Some("s".to_owned().into());
        c.s3.path_style = true;
    })
    .await
    .expect("SQLite is always available");
    let ready = app.get("/ready", None).await;
    ready.assert_problem(503, "not_ready");
    assert!(ready.headers.contains_key("retry-after"));
    app.get("/health", None).await.assert(200);
}
