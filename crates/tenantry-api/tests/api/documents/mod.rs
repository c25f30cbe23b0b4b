//! Documents and files over HTTP: uploads (hashing, deduplication per tenant, limits, quota,
//! MIME checks), listing and metadata, deletion and collection, usage, events; downloads and
//! project scope are in their own files, S3 in `s3`.

pub mod downloads;
mod lifecycle;
mod s3;
mod scope;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Resp, TestApp};

crate::backend_tests!(
    identical_content_is_stored_once_per_tenant_and_never_across,
    uploads_are_validated,
    limits_answer_413_and_the_quota_402,
    documents_are_listed_with_filters_and_pages,
    slow_uploads_outlast_the_request_timeout,
);

/// What an upload sends.
pub struct Upload<'a> {
    pub content: Vec<u8>,
    pub filename: Option<&'a str>,
    pub mime_type: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

impl<'a> Upload<'a> {
    pub fn text(content: &str, filename: &'a str) -> Self {
        Self {
            content: content.as_bytes().to_vec(),
            filename: Some(filename),
            mime_type: Some("text/plain"),
            project_id: None,
        }
    }

    pub fn in_project(mut self, project: &'a str) -> Self {
        self.project_id = Some(project);
        self
    }
}

pub fn documents(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/documents")
}

/// `POST …/documents` as multipart, the file part first.
pub async fn upload(app: &TestApp, tenant: &str, token: &str, upload: Upload<'_>) -> Resp {
    let mut form = Form::new().part(
        "file",
        Part::bytes(upload.content).file_name("part-name.bin"),
    );
    if let Some(name) = upload.filename {
        form = form.text("filename", name.to_owned());
    }
    if let Some(mime) = upload.mime_type {
        form = form.text("mime_type", mime.to_owned());
    }
    if let Some(project) = upload.project_id {
        form = form.text("project_id", project.to_owned());
    }
    send_form(app, &documents(tenant), token, form).await
}

pub async fn send_form(app: &TestApp, path: &str, token: &str, form: Form) -> Resp {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    Resp {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

pub async fn usage(app: &TestApp, tenant: &str, token: &str) -> Value {
    let resp = app
        .get(&format!("/api/v1/tenants/{tenant}/usage"), Some(token))
        .await;
    resp.assert(200);
    resp.body["storage"].clone()
}

/// Every stored object under the local blob directory (relative paths), temporary files
/// included.
pub fn stored_objects(app: &TestApp) -> Vec<String> {
    let root = app.data_dir().join("blobs");
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}

async fn identical_content_is_stored_once_per_tenant_and_never_across(app: TestApp) {
    let w = app.world().await;
    let (a, b) = (&w.tenant, &w.other_tenant);
    let content = "the same bytes, twice";
    let first = upload(&app, a, &w.member.token, Upload::text(content, "one.txt")).await;
    first.assert(201);
    assert_eq!(first.body["filename"], "one.txt");
    assert_eq!(first.body["mime_type"], "text/plain");
    assert_eq!(first.body["size"], content.len());
    assert_eq!(first.body["sha256"], sha256_hex(content.as_bytes()));
    assert_eq!(first.body["md5"], "d9bc4dec068267ad7f73de9341754aae");
    assert_eq!(first.body["user_id"], w.member.id.as_str());
    let second = upload(&app, a, &w.owner.token, Upload::text(content, "two.txt")).await;
    second.assert(201);
    assert_eq!(
        second.body["file_id"], first.body["file_id"],
        "deduplicated"
    );
    assert_ne!(second.body["id"], first.body["id"]);
    let other = upload(
        &app,
        a,
        &w.owner.token,
        Upload::text("other bytes", "3.txt"),
    )
    .await;
    other.assert(201);
    assert_ne!(other.body["file_id"], first.body["file_id"]);
    // The same bytes in another tenant: a file of its own.
    let foreign = upload(&app, b, &w.outsider.token, Upload::text(content, "b.txt")).await;
    foreign.assert(201);
    assert_ne!(foreign.body["file_id"], first.body["file_id"]);

    let used = usage(&app, a, &w.viewer.token).await;
    assert_eq!(
        used,
        json!({"bytes": content.len() + "other bytes".len(), "files": 2, "documents": 3,
               "quota_bytes": null})
    );
    let used_b = usage(&app, b, &w.outsider.token).await;
    assert_eq!(used_b["bytes"], content.len());
    assert_eq!(used_b["files"], 1);
    // Three objects in all, under ids and hashes only: no user file name reaches storage.
    let objects = stored_objects(&app);
    assert_eq!(objects.len(), 3, "{objects:?}");
    for object in &objects {
        assert!(object.starts_with("tenants/"), "{object}");
        assert!(object.contains("/files/"), "{object}");
        assert!(!object.contains(".txt"), "{object}");
    }
    let hash = sha256_hex(content.as_bytes());
    assert_eq!(objects.iter().filter(|o| o.ends_with(&hash)).count(), 2);

    // The file lists both documents.
    let file = app
        .get(
            &format!(
                "/api/v1/tenants/{a}/files/{}",
                first.body["file_id"].as_str().unwrap()
            ),
            Some(&w.owner.token),
        )
        .await;
    file.assert(200);
    assert_eq!(file.body["document_count"], 2);
    assert_eq!(file.body["documents"].as_array().unwrap().len(), 2);
    assert_eq!(file.body["sha256"], hash);
}

async fn uploads_are_validated(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let token = &w.member.token;
    let expect = |resp: Resp, field: &str| {
        resp.assert_problem(422, "validation_failed");
        assert_eq!(resp.body["errors"][0]["field"], field, "{}", resp.body);
    };
    expect(
        send_form(
            &app,
            &documents(t),
            token,
            Form::new().text("filename", "x"),
        )
        .await,
        "file",
    );
    expect(
        send_form(
            &app,
            &documents(t),
            token,
            Form::new()
                .text("colour", "red")
                .part("file", Part::bytes(b"x".to_vec())),
        )
        .await,
        "colour",
    );
    let mut many = Form::new();
    for _ in 0..9 {
        many = many.text("filename", "again.txt");
    }
    expect(send_form(&app, &documents(t), token, many).await, "file");
    let two = Form::new()
        .part("file", Part::bytes(b"a".to_vec()))
        .part("file", Part::bytes(b"b".to_vec()));
    expect(send_form(&app, &documents(t), token, two).await, "file");
    let mut pdf = Upload::text("plain text, not a PDF", "fake.pdf");
    pdf.mime_type = Some("application/pdf");
    expect(upload(&app, t, token, pdf).await, "mime_type");
    let mut exe = Upload::text("", "x");
    exe.content = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    expect(upload(&app, t, token, exe).await, "mime_type");
    let mut bad_type = Upload::text("x", "x");
    bad_type.mime_type = Some("not a type");
    expect(upload(&app, t, token, bad_type).await, "mime_type");
    expect(
        upload(&app, t, token, Upload::text("x", "x").in_project("nope")).await,
        "project_id",
    );
    let foreign_project = app
        .create_project(&w.other_tenant, &w.outsider, "Theirs")
        .await;
    expect(
        upload(
            &app,
            t,
            token,
            Upload::text("x", "x").in_project(&foreign_project),
        )
        .await,
        "project_id",
    );
    let mut control = Upload::text("x", "x");
    control.filename = Some("bad\u{7}name");
    expect(upload(&app, t, token, control).await, "filename");
    // Not multipart at all.
    let json_body = app
        .post(&documents(t), Some(token), json!({"file": "x"}))
        .await;
    assert!(
        [400, 415].contains(&json_body.status.as_u16()),
        "{} {}",
        json_body.status,
        json_body.body
    );
    // Directory parts of a name are dropped; the part's own name and type are the defaults.
    let mut nested = Upload::text("x", "../../etc/passwd");
    nested.mime_type = None;
    let stored = upload(&app, t, token, nested).await;
    stored.assert(201);
    assert_eq!(stored.body["filename"], "passwd");
    assert_eq!(stored.body["mime_type"], "application/octet-stream");
    let unnamed = Upload {
        content: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(),
        filename: None,
        mime_type: Some("application/pdf"),
        project_id: None,
    };
    let pdf = upload(&app, t, token, unnamed).await;
    pdf.assert(201);
    assert_eq!(pdf.body["filename"], "part-name.bin");
    assert_eq!(pdf.body["mime_type"], "application/pdf");
    // Viewers read, they do not upload; outsiders see nothing.
    upload(&app, t, &w.viewer.token, Upload::text("x", "x"))
        .await
        .assert_problem(403, "forbidden");
    upload(&app, t, &w.outsider.token, Upload::text("x", "x"))
        .await
        .assert_problem(404, "not_found");
    // Nothing refused left an object behind.
    assert_eq!(stored_objects(&app).len(), 2, "{:?}", stored_objects(&app));
}

async fn limits_answer_413_and_the_quota_402(app: TestApp) {
    let app = app
        .sibling(|c| {
            c.files.max_upload_bytes = 64 * 1024;
            c.files.quota_bytes = 100 * 1024;
        })
        .await;
    let w = app.world().await;
    let t = &w.tenant;
    let big = Upload {
        content: vec![b'a'; 64 * 1024 + 1],
        filename: Some("big.txt"),
        mime_type: Some("text/plain"),
        project_id: None,
    };
    upload(&app, t, &w.owner.token, big)
        .await
        .assert_problem(413, "payload_too_large");
    let fits = |byte: u8| Upload {
        content: vec![byte; 60 * 1024],
        filename: Some("fits.txt"),
        mime_type: Some("text/plain"),
        project_id: None,
    };
    upload(&app, t, &w.owner.token, fits(b'b'))
        .await
        .assert(201);
    // 60 KiB stored of 100: another 60 KiB does not fit the quota, refused as soon as the
    // 40 KiB of room are crossed (before its hash is known, so even identical content).
    upload(&app, t, &w.owner.token, fits(b'c'))
        .await
        .assert_problem(402, "quota_exceeded");
    upload(&app, t, &w.owner.token, fits(b'b'))
        .await
        .assert_problem(402, "quota_exceeded");
    // Within the room: a new 30 KiB file, then the same bytes again at no cost.
    let small = |byte: u8| Upload {
        content: vec![byte; 8 * 1024],
        filename: Some("small.txt"),
        mime_type: Some("text/plain"),
        project_id: None,
    };
    upload(&app, t, &w.owner.token, small(b'd'))
        .await
        .assert(201);
    upload(&app, t, &w.owner.token, small(b'd'))
        .await
        .assert(201);
    let used = usage(&app, t, &w.owner.token).await;
    assert_eq!(used["bytes"], 68 * 1024);
    assert_eq!(used["files"], 2);
    assert_eq!(used["documents"], 3);
    assert_eq!(used["quota_bytes"], 100 * 1024);
    // Refused uploads left nothing: two objects.
    assert_eq!(stored_objects(&app).len(), 2, "{:?}", stored_objects(&app));
}

async fn documents_are_listed_with_filters_and_pages(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let project = app.create_project(t, &w.owner, "Scans").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let by = if i % 2 == 0 { &w.owner } else { &w.member };
        let mut up = Upload::text(&format!("content {i}"), "");
        let name = format!("Report-{i}.txt");
        up.filename = Some(&name);
        if i >= 3 {
            up.project_id = Some(&project);
        }
        let r = upload(&app, t, &by.token, up).await;
        r.assert(201);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let list = |query: String| {
        let app = &app;
        let token = w.viewer.token.clone();
        async move {
            let r = app
                .get(&format!("{}{query}", documents(t)), Some(&token))
                .await;
            r.assert(200);
            r.body
        }
    };
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["filename"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list(String::new()).await;
    assert_eq!(
        names(&all),
        [
            "Report-4.txt",
            "Report-3.txt",
            "Report-2.txt",
            "Report-1.txt",
            "Report-0.txt"
        ]
    );
    assert_eq!(
        names(&list("?filename=port-3".into()).await),
        ["Report-3.txt"]
    );
    assert_eq!(
        names(&list("?filename=REPORT-1".into()).await),
        ["Report-1.txt"]
    );
    assert_eq!(
        names(&list("?filename=%25".into()).await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&list(format!("?project_id={project}")).await),
        ["Report-4.txt", "Report-3.txt"]
    );
    assert_eq!(
        names(&list(format!("?user_id={}", w.member.id)).await),
        ["Report-3.txt", "Report-1.txt"]
    );
    let third = all["items"][2]["created_at"].as_str().unwrap().to_owned();
    let from = list(format!("?from={}", third.replace('+', "%2B"))).await;
    assert_eq!(
        names(&from),
        ["Report-4.txt", "Report-3.txt", "Report-2.txt"]
    );
    let to = list(format!("?to={}", third.replace('+', "%2B"))).await;
    assert_eq!(names(&to), ["Report-1.txt", "Report-0.txt"]);
    let first_page = list("?limit=2".into()).await;
    assert_eq!(names(&first_page), ["Report-4.txt", "Report-3.txt"]);
    let cursor = first_page["next_cursor"].as_str().unwrap();
    let second_page = list(format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&second_page), ["Report-2.txt", "Report-1.txt"]);
    for bad in ["?project_id=x", "?user_id=x", "?limit=0", "?from=yesterday"] {
        let r = app
            .get(&format!("{}{bad}", documents(t)), Some(&w.viewer.token))
            .await;
        assert!(
            [400, 422].contains(&r.status.as_u16()),
            "{bad}: {} {}",
            r.status,
            r.body
        );
    }
    let one = app
        .get(
            &format!("{}/{}", documents(t), ids[0]),
            Some(&w.viewer.token),
        )
        .await;
    one.assert(200);
    assert_eq!(one.body["filename"], "Report-0.txt");
    // Another tenant's member and a missing id: the same 404.
    app.get(
        &format!("{}/{}", documents(t), ids[0]),
        Some(&w.outsider.token),
    )
    .await
    .assert_problem(404, "not_found");
    app.get(
        &format!("{}/01a20000-0000-7000-8000-000000000000", documents(t)),
        Some(&w.viewer.token),
    )
    .await
    .assert_problem(404, "not_found");
}

async fn slow_uploads_outlast_the_request_timeout(app: TestApp) {
    let w = app.world().await;
    let app = app.sibling(|c| c.http.request_timeout_secs = 2).await;
    // Ten chunks, 300 ms apart: the body alone takes longer than the 2 s request timeout.
    let chunks = futures::stream::unfold(0u8, |i| async move {
        if i == 10 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Some((Ok::<_, std::io::Error>(vec![b'a' + i; 1000]), i + 1))
    });
    let part = Part::stream(reqwest::Body::wrap_stream(chunks))
        .file_name("slow.txt")
        .mime_str("text/plain")
        .unwrap();
    let resp = send_form(
        &app,
        &documents(&w.tenant),
        &w.member.token,
        Form::new().part("file", part),
    )
    .await;
    resp.assert(201);
    assert_eq!(resp.body["size"], 10_000);
    assert_eq!(resp.body["mime_type"], "text/plain");
}
