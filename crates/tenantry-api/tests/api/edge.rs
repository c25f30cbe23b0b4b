//! The HTTP edge, driven over raw TCP where a client library would hide what is tested:
//! slow request heads, the per-address connection cap, bodies declared too large, stalled
//! uploads, and problem+json for every error the server produces itself.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::TestApp;

crate::backend_tests!(
    slow_request_heads_are_cut_off,
    connections_per_address_are_capped,
    bodies_declared_too_large_are_refused_at_once,
    stalled_uploads_answer_408,
    every_error_is_a_problem,
);

/// A raw answer: status, lower-cased head, body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn parse(bytes: &[u8]) -> Raw {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Raw {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    #[track_caller]
    fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.head.contains("content-type: application/problem+json"),
            "{self:?}"
        );
        let body: Value = serde_json::from_str(&self.body).expect("a JSON body");
        assert_eq!(body["code"], code, "{self:?}");
        assert_eq!(body["status"], status, "{self:?}");
    }
}

/// Sends `request`, then reads until the server closes (or `within` passes).
async fn exchange(app: &TestApp, request: &[u8], within: Duration) -> Raw {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    Raw::parse(&read_to_close(&mut stream, within).await)
}

async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Whether the server closes the connection within `within` (reads end, with or without
/// bytes).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Trickles one header every 300 ms on `stream` until the server closes it (true) or
/// `within` passes (false).
async fn trickle_until_closed(stream: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    if stream.write_all(b"X-Slow: yes\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
    .is_ok()
}

/// Sends a prompt `GET /health` on `stream` and reads its answer's status.
async fn health_on(stream: &mut TcpStream) -> Option<u16> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(Raw::parse(&buf[..n]).status)
}

async fn slow_request_heads_are_cut_off(app: TestApp) {
    let app = app.sibling(|c| c.http.header_read_timeout_secs = 1).await;
    // A head trickled one header every 300 ms never completes: closed after the timeout, not
    // kept as long as the trickle lasts.
    let started = Instant::now();
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    trickle
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        trickle_until_closed(&mut trickle, Duration::from_secs(5)).await,
        "a trickled head kept its connection"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // A connection that sends nothing at all, or only the start of what could be the
    // HTTP/2 preface, is closed too.
    for opening in [&b""[..], b"PRI * HT"] {
        let mut silent = TcpStream::connect(app.addr).await.unwrap();
        silent.write_all(opening).await.unwrap();
        assert!(
            closed_within(&mut silent, Duration::from_secs(3)).await,
            "{opening:?} kept its connection"
        );
    }
    // A prompt client is served.
    let ok = exchange(
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");

    // On a keep-alive connection the deadline runs from the end of each answer: prompt
    // requests are served however long the connection lives...
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..3 {
        assert_eq!(health_on(&mut kept).await, Some(200));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // ...a trickled next head is cut off...
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        trickle_until_closed(&mut kept, Duration::from_secs(5)).await,
        "a trickled second head kept its connection"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // ...and so is a connection left idle after an answer.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(health_on(&mut idle).await, Some(200));
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)).await,
        "an idle keep-alive connection was kept"
    );
    // A body is not a head: one sent slower than the head deadline is read to the end.
    let body = br#"{"email":"slow@example.com","password":"not the password"}"#;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    slow.write_all(&body[10..]).await.unwrap();
    Raw::parse(&read_to_close(&mut slow, Duration::from_secs(10)).await)
        .assert_problem(401, "invalid_credentials");
}

/// Opens a keep-alive connection and completes one request on it, so the server has
/// accepted and counted it.
async fn served_connection(app: &TestApp) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(app.addr).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&buf[..n])
        .starts_with("HTTP/1.1 200")
        .then_some(stream)
}

async fn connections_per_address_are_capped(app: TestApp) {
    let app = app.sibling(|c| c.http.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for i in 0..3 {
        open.push(
            served_connection(&app)
                .await
                .unwrap_or_else(|| panic!("connection {i} refused")),
        );
    }
    // The fourth from the same address is closed without an answer.
    assert!(
        served_connection(&app).await.is_none(),
        "a fourth connection was served"
    );
    // Once one closes, a new one is welcome again (the server notices the close first).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(stream) = served_connection(&app).await {
            open.push(stream);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served_connection(&app).await.is_none());
}

async fn bodies_declared_too_large_are_refused_at_once(app: TestApp) {
    let w = app.world().await;
    for (path, length) in [
        // JSON routes: over `http.body_limit_bytes` (1 MiB).
        ("/api/v1/auth/register".to_owned(), 99_999_999_999u64),
        ("/api/v1/auth/register".to_owned(), 1024 * 1024 + 1),
        // The upload: over `files.max_upload_bytes` (100 MiB) and the form's room.
        (
            format!("/api/v1/tenants/{}/documents", w.tenant),
            200 * 1024 * 1024,
        ),
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\
             Expect: 100-continue\r\n\r\n",
            w.owner.token
        );
        let started = Instant::now();
        let raw = exchange(&app, request.as_bytes(), Duration::from_secs(10)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: answered after {:?}",
            started.elapsed()
        );
        assert!(
            !raw.head.contains("100 continue"),
            "{path}: asked for the body: {raw:?}"
        );
        raw.assert_problem(413, "payload_too_large");
    }
}

async fn stalled_uploads_answer_408(app: TestApp) {
    let w = app.world().await;
    let app = app.sibling(|c| c.files.upload_idle_timeout_secs = 1).await;
    let head = format!(
        "POST /api/v1/tenants/{}/documents HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: 100000\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nhello",
        w.tenant, w.member.token
    );
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // Nothing more is sent: the server gives up after the pause limit, not the hour.
    let raw = Raw::parse(&read_to_close(&mut stream, Duration::from_secs(10)).await);
    assert!(started.elapsed() < Duration::from_secs(5), "{raw:?}");
    raw.assert_problem(408, "request_timeout");
    // Nothing was stored.
    let list = app
        .get(
            &format!("/api/v1/tenants/{}/documents", w.tenant),
            Some(&w.member.token),
        )
        .await;
    assert_eq!(list.body["items"], serde_json::json!([]), "{}", list.body);
}

async fn every_error_is_a_problem(app: TestApp) {
    let w = app.world().await;
    let documents = app.url(&format!("/api/v1/tenants/{}/documents", w.tenant));
    let send = |request: reqwest::RequestBuilder| async move {
        let resp = request.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        crate::helpers::Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    };
    // Uploads that are no form.
    send(
        app.client
            .post(&documents)
            .bearer_auth(&w.member.token)
            .header("content-type", "multipart/form-data")
            .body("x"),
    )
    .await
    .assert_problem(400, "malformed_request");
    send(
        app.client
            .post(&documents)
            .bearer_auth(&w.member.token)
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
    // A path segment that is not UTF-8 (an axum path rejection).
    send(app.client.get(app.url("/api/v1/invitations/%FF%FE")))
        .await
        .assert_problem(400, "malformed_request");
    // Made-up methods, unknown routes.
    send(app.client.request(
        reqwest::Method::from_bytes(b"BREW").unwrap(),
        app.url("/health"),
    ))
    .await
    .assert_problem(405, "method_not_allowed");
    send(app.client.get(app.url("/docs/no-such-asset.js")))
        .await
        .assert_problem(404, "not_found");

    // What hyper refuses before the application sees a request.
    let mut many = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    exchange(&app, many.as_bytes(), Duration::from_secs(5))
        .await
        .assert_problem(431, "header_fields_too_large");
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    exchange(&app, long.as_bytes(), Duration::from_secs(5))
        .await
        .assert_problem(414, "uri_too_long");
    exchange(
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .assert_problem(400, "malformed_request");
}

/// The accept loop drains on shutdown as `axum::serve` did: a request in flight when the
/// signal comes is answered, and no new connection is accepted.
#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let config = tenantry_api::config::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let app = tenantry_api::Application::build(config).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let body = br#"{"email":"drain@example.com","password":"not the password"}"#;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[10..]).await.unwrap();
    let raw = Raw::parse(&read_to_close(&mut stream, Duration::from_secs(10)).await);
    raw.assert_problem(401, "invalid_credentials");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once the request is answered")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
