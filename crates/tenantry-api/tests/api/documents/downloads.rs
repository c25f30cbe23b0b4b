//! Server-signed downloads (local storage): the link serves the bytes as an attachment with
//! the stored type, ranges work, tampered, expired or foreign links are refused, and a link
//! stops at once when its requester's access ends (`revocation`).

pub mod revocation;

use reqwest::header;

use super::{Upload, documents, upload};
use crate::helpers::TestApp;

crate::backend_tests!(
    signed_links_serve_attachments_with_ranges,
    tampered_and_expired_links_are_refused,
);

pub async fn link(app: &TestApp, tenant: &str, id: &str, token: &str) -> String {
    let r = app
        .get(&format!("{}/{id}/download", documents(tenant)), Some(token))
        .await;
    r.assert(200);
    assert!(r.body["expires_at"].is_string());
    r.body["url"].as_str().unwrap().to_owned()
}

async fn signed_links_serve_attachments_with_ranges(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let content = "0123456789abcdefghij";
    let mut up = Upload::text(content, "Résumé \"final\".txt");
    up.mime_type = Some("text/plain");
    let doc = upload(&app, t, &w.member.token, up).await;
    doc.assert(201);
    let id = doc.body["id"].as_str().unwrap();
    let url = link(&app, t, id, &w.viewer.token).await;
    assert!(
        url.starts_with(&format!("http://{}/api/v1/downloads/{t}/{id}?", app.addr)),
        "{url}"
    );

    let full = app.client.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let h = full.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "text/plain");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        h[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; sandbox"
    );
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    let disposition = h[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''R%C3%A9sum%C3%A9"),
        "{disposition}"
    );
    assert_eq!(full.text().await.unwrap(), content);

    for (range, status, body, content_range) in [
        ("bytes=2-5", 206, "2345", Some("bytes 2-5/20")),
        ("bytes=15-", 206, "fghij", Some("bytes 15-19/20")),
        ("bytes=-3", 206, "hij", Some("bytes 17-19/20")),
        ("bytes=18-99", 206, "ij", Some("bytes 18-19/20")),
        ("bytes=0-1,4-5", 200, content, None),
        ("items=1-2", 200, content, None),
    ] {
        let r = app
            .client
            .get(&url)
            .header(header::RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{range}");
        assert_eq!(
            r.headers()
                .get(header::CONTENT_RANGE)
                .map(|v| v.to_str().unwrap().to_owned())
                .as_deref(),
            content_range,
            "{range}"
        );
        assert_eq!(r.text().await.unwrap(), body, "{range}");
    }
    let unsatisfiable = app
        .client
        .get(&url)
        .header(header::RANGE, "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), 416);

    // ?redirect=true answers 302 to a fresh link.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects
        .get(app.url(&format!("{}/{id}/download?redirect=true", documents(t))))
        .bearer_auth(&w.viewer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.contains("/api/v1/downloads/"), "{location}");

    // Deleting the document ends its links.
    app.delete(&format!("{}/{id}", documents(t)), Some(&w.owner.token))
        .await
        .assert(204);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
}

async fn tampered_and_expired_links_are_refused(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let doc = upload(&app, t, &w.member.token, Upload::text("secret", "s.txt")).await;
    let id = doc.body["id"].as_str().unwrap().to_owned();
    let theirs = upload(
        &app,
        &w.other_tenant,
        &w.outsider.token,
        Upload::text("b", "b"),
    )
    .await;
    let their_id = theirs.body["id"].as_str().unwrap().to_owned();
    let url = link(&app, t, &id, &w.member.token).await;
    let refused = |url: String| {
        let app = &app;
        async move {
            let r = app.client.get(&url).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            assert_eq!(status, 403, "{url}: {body}");
            assert_eq!(body["code"], "signature_invalid", "{url}");
        }
    };
    // Another document, another tenant, another requester, a later expiry, a changed
    // signature, or no signature at all: refused.
    refused(url.replace(&id, &their_id)).await;
    refused(url.replacen(t.as_str(), &w.other_tenant, 1)).await;
    refused(url.replace(&w.member.id, &w.owner.id)).await;
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .parse()
        .unwrap();
    refused(url.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    ))
    .await;
    let flipped = {
        let (head, sig) = url.rsplit_once("signature=").unwrap();
        let mut sig = sig.to_owned();
        let last = if sig.ends_with('0') { '1' } else { '0' };
        sig.pop();
        sig.push(last);
        format!("{head}signature={sig}")
    };
    refused(flipped).await;
    refused(url.split('&').next().unwrap().to_owned()).await;
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);

    // Links expire.
    let short = app.sibling(|c| c.files.download_url_ttl_secs = 1).await;
    let url = link(&short, t, &id, &w.member.token).await;
    assert_eq!(short.client.get(&url).send().await.unwrap().status(), 200);
    app.clock.advance(std::time::Duration::from_millis(2100));
    refused(url.replace(&short.addr.to_string(), &app.addr.to_string())).await;
}
