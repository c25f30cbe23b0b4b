//! Issue 5, item 6: `kill -9` during concurrent uploads, restart, sweep, and nothing is lost
//! or dangling: every document's file row and object exist with the right size and content,
//! every upload answered 201 before the kill survives, no object or temporary file is left
//! without a row, and the storage usage equals what the rows add up to.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde_json::Value;

use crate::{Api, Env, content, inspect::Snapshot, sha256_hex};

const MIB: usize = 1024 * 1024;
/// Slow uploads: this large, sent at about [`SLOW_RATE`] bytes per second each, so that they
/// are mid-flight (past the first multipart part) when the server is killed.
const SLOW_LEN: usize = 24 * MIB;
const SLOW_CHUNK: usize = 128 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(16);
/// The kill waits until every slow upload has sent more than this (more than one 5 MiB part).
const SLOW_MIN_SENT: u64 = 6 * MIB as u64;
/// Busy uploaders: each uploads small files back to back until the server is gone, so the
/// kill lands in every phase of an upload (staging, promotion, commit) somewhere.
const BUSY: u64 = 4;
/// The kill also waits until every busy uploader has committed this many documents.
const BUSY_MIN_DONE: usize = 3;

/// A complete body as one chunk.
fn whole(bytes: Vec<u8>) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::once(async move { Ok(Bytes::from(bytes)) })
}

/// `bytes` in chunks with a pause before each, counting what was handed to the connection.
fn trickle(
    bytes: Vec<u8>,
    sent: Arc<AtomicU64>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let bytes = Bytes::from(bytes);
    futures::stream::unfold(0usize, move |offset| {
        let (bytes, sent) = (bytes.clone(), sent.clone());
        async move {
            if offset >= bytes.len() {
                return None;
            }
            tokio::time::sleep(SLOW_PAUSE).await;
            let end = (offset + SLOW_CHUNK).min(bytes.len());
            sent.fetch_add((end - offset) as u64, Ordering::SeqCst);
            Some((Ok(bytes.slice(offset..end)), end))
        }
    })
}

/// Uploads `bytes` and answers the 201's document, checked against the content.
async fn upload_ok(api: &Api, name: &str, bytes: Vec<u8>) -> Value {
    let sha256 = sha256_hex(&bytes);
    let size = bytes.len();
    let response = api.upload(name, whole(bytes)).await.unwrap();
    assert_eq!(response.status(), 201, "uploading {name}");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["sha256"], sha256.as_str(), "{document}");
    assert_eq!(document["size"], size, "{document}");
    document
}

/// The number in a sweep report line such as `… 3 incomplete upload(s)`.
fn reported(report: &str, what: &str) -> u64 {
    let words: Vec<&str> = report.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches(',') == what)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no {what:?} count in {report:?}"))
}

async fn crash_during_uploads(env: Env) {
    let server = env.serve(&[]);
    let mut api = Api::register(&server).await;

    // Committed before the crash: distinct and identical content, one past a multipart part.
    let mut committed = vec![
        upload_ok(&api, "a.bin", content(1, 300_000)).await,
        upload_ok(&api, "a-again.bin", content(1, 300_000)).await,
        upload_ok(&api, "b.bin", content(2, 7 * MIB)).await,
        upload_ok(&api, "c.txt", content(3, 10)).await,
    ];
    assert_eq!(committed[0]["file_id"], committed[1]["file_id"]);
    assert_ne!(committed[0]["file_id"], committed[2]["file_id"]);
    // Deleted before the crash: the last reference of a file (the sweep collects the file)
    // and one of two references of another (the sweep must leave that file alone).
    let gone = committed.remove(3);
    api.delete_document(gone["id"].as_str().unwrap()).await;
    let unreferenced = committed.remove(1);
    api.delete_document(unreferenced["id"].as_str().unwrap())
        .await;

    // In flight at the kill: slow uploads (two of them identical) past their first part…
    let mut slow = Vec::new();
    let mut progress = Vec::new();
    for seed in [10, 10, 11, 12] {
        let sent = Arc::new(AtomicU64::new(0));
        progress.push(sent.clone());
        let api = api.clone();
        let body = trickle(content(seed, SLOW_LEN), sent);
        slow.push(tokio::spawn(async move {
            api.upload(&format!("slow-{seed}.bin"), body)
                .await
                .map(|r| r.status())
        }));
    }
    // … and busy uploaders of small files, half of them the same content across uploaders
    // (concurrent promotions of one new SHA-256), half distinct.
    let answered: Arc<Mutex<Vec<Value>>> = Arc::default();
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..BUSY).map(|_| AtomicU64::new(0)).collect());
    let mut busy = Vec::new();
    for uploader in 0..BUSY {
        let (api, answered, done) = (api.clone(), answered.clone(), done.clone());
        busy.push(tokio::spawn(async move {
            for round in 0u64.. {
                let seed = if round % 2 == 0 {
                    100 + round
                } else {
                    1_000_000 + uploader * 10_000 + round
                };
                let len = 64 * 1024 + (seed as usize % 7) * 30_000;
                let name = format!("busy-{uploader}-{round}.bin");
                let response = match api.upload(&name, whole(content(seed, len))).await {
                    Ok(response) => response,
                    // The server is gone.
                    Err(_) => return Ok(()),
                };
                let status = response.status();
                let Ok(document) = response.json::<Value>().await else {
                    return Ok(()); // killed while answering
                };
                if status != 201 {
                    return Err(format!("{name} → {status}: {document}"));
                }
                answered.lock().unwrap().push(document);
                done[uploader as usize].fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Until every upload is where the kill should find it (or an uploader gave up early).
    while !busy.iter().any(|b| b.is_finished())
        && (progress
            .iter()
            .any(|p| p.load(Ordering::SeqCst) < SLOW_MIN_SENT)
            || done
                .iter()
                .any(|d| d.load(Ordering::SeqCst) < BUSY_MIN_DONE as u64))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "uploads made no progress: slow sent {:?}, busy done {:?}; server log: {}",
            progress
                .iter()
                .map(|p| p.load(Ordering::SeqCst))
                .collect::<Vec<_>>(),
            done.iter()
                .map(|d| d.load(Ordering::SeqCst))
                .collect::<Vec<_>>(),
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = server.log.clone();
    server.kill_9();

    for upload in slow {
        let result = upload.await.unwrap();
        assert!(
            result.is_err(),
            "a slow upload finished before the kill ({result:?}); it was meant to be mid-flight"
        );
    }
    for uploader in busy {
        if let Err(failure) = uploader.await.unwrap() {
            panic!(
                "an upload failed before the kill: {failure}; server log: {}",
                log.lock().unwrap()
            );
        }
    }
    committed.extend(answered.lock().unwrap().drain(..));

    let server = env.serve(&[]);
    api.login(&server, "owner@example.com").await;
    // Within the grace period (default one hour) everything the crash left is too young to
    // tell from an upload in flight: nothing is collected.
    let young = env.run(&["admin", "sweep-files"]);
    for what in ["unreferenced", "orphaned", "staged", "incomplete"] {
        assert_eq!(reported(&young, what), 0, "{young}");
    }
    let report = env.run(&["admin", "sweep-files", "--grace-secs", "0"]);
    eprintln!(
        "after the crash ({:?}): {}",
        env.storage_kind(),
        report.trim()
    );
    assert_eq!(reported(&report, "unreferenced"), 1, "{report}");
    if matches!(env.storage, crate::Storage::Local) {
        // The slow uploads were writing multipart temporary files when the server died.
        assert!(
            reported(&report, "incomplete") >= 4,
            "the crash left temporary files the sweep should have removed: {report}"
        );
    }

    let snapshot = Snapshot::read(&env).await;
    snapshot.assert_consistent();
    for document in &committed {
        let id: uuid::Uuid = document["id"].as_str().unwrap().parse().unwrap();
        let file_id: uuid::Uuid = document["file_id"].as_str().unwrap().parse().unwrap();
        let row = snapshot
            .documents
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("document answered 201 before the kill is gone: {document}"));
        assert_eq!(row.file_id, file_id, "{document}");
        let file = snapshot.files.iter().find(|f| f.id == file_id).unwrap();
        assert_eq!(file.sha256, document["sha256"].as_str().unwrap());
    }
    // None of the slow uploads became a document.
    assert!(
        snapshot.documents.iter().all(|d| d.size < SLOW_LEN as i64),
        "an interrupted upload became a document"
    );
    for deleted in [&gone, &unreferenced] {
        let id: uuid::Uuid = deleted["id"].as_str().unwrap().parse().unwrap();
        assert!(snapshot.documents.iter().all(|d| d.id != id), "{deleted}");
    }
    assert!(
        snapshot
            .files
            .iter()
            .all(|f| f.sha256 != gone["sha256"].as_str().unwrap()),
        "the file of the deleted document survived the sweep"
    );

    // The API agrees with the rows, serves the surviving content, and keeps deduplicating.
    let usage = api.get("/usage").await;
    let tenant: uuid::Uuid = api.tenant.parse().unwrap();
    let counted = snapshot.usage[&tenant];
    assert_eq!(usage["storage"]["bytes"], counted.bytes, "{usage}");
    assert_eq!(usage["storage"]["files"], counted.files, "{usage}");
    assert_eq!(usage["storage"]["documents"], counted.documents, "{usage}");
    for document in &committed[..2] {
        let bytes = api.download(document["id"].as_str().unwrap()).await;
        assert_eq!(sha256_hex(&bytes), document["sha256"].as_str().unwrap());
    }
    let again = upload_ok(&api, "a-third.bin", content(1, 300_000)).await;
    assert_eq!(again["file_id"], committed[0]["file_id"]);
    let after = api.get("/usage").await;
    assert_eq!(after["storage"]["bytes"], counted.bytes, "{after}");
    assert_eq!(after["storage"]["documents"], counted.documents + 1);
    server.stop();
    Snapshot::read(&env).await.assert_consistent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_uploads_loses_nothing_on_sqlite() {
    crash_during_uploads(Env::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_uploads_loses_nothing_on_postgres() {
    let Some(env) = Env::postgres("kill_9_during_uploads_loses_nothing_on_postgres").await else {
        return;
    };
    crash_during_uploads(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_uploads_loses_nothing_on_sqlite_with_s3() {
    let test = "kill_9_during_uploads_loses_nothing_on_sqlite_with_s3";
    let Some(env) = Env::sqlite().with_s3(test).await else {
        return;
    };
    crash_during_uploads(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_uploads_loses_nothing_on_postgres_with_s3() {
    let test = "kill_9_during_uploads_loses_nothing_on_postgres_with_s3";
    let Some(env) = Env::postgres(test).await else {
        return;
    };
    let Some(env) = env.with_s3(test).await else {
        return;
    };
    crash_during_uploads(env).await;
}
