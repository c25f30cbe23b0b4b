//! Issue 5, item 2: uploads stream. A large upload leaves the server's resident memory flat,
//! and an upload over the limit is refused (413) while the client is still sending.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use serde_json::Value;
use sha2::Digest;

use crate::{Env, Server, content};

const MIB: u64 = 1024 * 1024;
/// The large upload. Generated on the fly by the test (one 1 MiB block repeated, with the
/// chunk's index written into it so no two chunks are equal), never held whole anywhere.
const LARGE: u64 = 512 * MIB;
const CHUNK: u64 = MIB;
/// How much the server's peak RSS may grow while it takes the large upload. The upload path
/// holds at most three 5 MiB parts; everything above that is allocator and runtime slack.
const MAX_GROWTH: u64 = 64 * MIB;

/// Chunk `index` of the large upload: `block` with `index` in its first eight bytes.
fn chunk(block: &Bytes, index: u64) -> Bytes {
    let mut chunk = block.to_vec();
    chunk[..8].copy_from_slice(&index.to_le_bytes());
    Bytes::from(chunk)
}

/// `len` bytes in [`CHUNK`]s, counting what was handed to the connection.
fn generated(
    block: Bytes,
    len: u64,
    sent: Arc<AtomicU64>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(0u64, move |index| {
        let (block, sent) = (block.clone(), sent.clone());
        async move {
            let offset = index * CHUNK;
            if offset >= len {
                return None;
            }
            let mut piece = chunk(&block, index);
            piece.truncate(usize::try_from((len - offset).min(CHUNK)).unwrap());
            sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
            Some((Ok(piece), index + 1))
        }
    })
}

/// The server's peak RSS starts again from its current RSS (`clear_refs` 5), so the peak
/// measured afterwards belongs to what happens next. `false` when the kernel refuses.
fn reset_peak(server: &Server) -> bool {
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").is_ok()
}

async fn large_upload_keeps_memory_flat(env: Env) {
    let limit = (LARGE + MIB).to_string();
    let server = env.serve(&[("TENANTRY_FILES__MAX_UPLOAD_BYTES", limit.as_str())]);
    let api = crate::Api::register(&server).await;
    // A first upload past one part warms the upload path (pools, buffers, the runtime).
    let warm = api
        .upload(
            "warm.bin",
            futures::stream::once(async { Ok(Bytes::from(content(7, 11 * MIB as usize))) }),
        )
        .await
        .unwrap();
    assert_eq!(warm.status(), 201);

    let block = Bytes::from(content(8, CHUNK as usize));
    let mut expected = sha2::Sha256::new();
    for index in 0..LARGE / CHUNK {
        expected.update(chunk(&block, index));
    }
    let expected = hex::encode(expected.finalize());

    let rss_before = server.memory("VmRSS");
    let peak_reset = reset_peak(&server);
    let baseline = if peak_reset {
        rss_before
    } else {
        server.memory("VmHWM")
    };
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let response = api
        .upload("large.bin", generated(block, LARGE, sent))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status();
    let document: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{document}");
    let peak = server.memory("VmHWM");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "large upload: {} MiB in {:.1} s ({:.0} MiB/s); server RSS before {} MiB, peak {} MiB \
         (growth {} MiB; peak reset: {peak_reset})",
        LARGE / MIB,
        elapsed.as_secs_f64(),
        (LARGE / MIB) as f64 / elapsed.as_secs_f64(),
        rss_before / MIB,
        peak / MIB,
        growth / MIB,
    );
    assert!(
        growth < MAX_GROWTH,
        "the server's peak RSS grew by {} MiB during a {} MiB upload (bound {} MiB)",
        growth / MIB,
        LARGE / MIB,
        MAX_GROWTH / MIB
    );
    assert_eq!(document["size"], LARGE, "{document}");
    assert_eq!(document["sha256"], expected.as_str(), "{document}");
    let usage = api.get("/usage").await;
    assert_eq!(
        usage["storage"]["bytes"],
        LARGE + 11 * MIB,
        "{usage}: the large upload is counted"
    );
    server.stop();
}

/// Sends an upload whose file part never ends (chunked, generated on the fly) over a raw
/// connection, reading the response meanwhile; answers its status and how many bytes had
/// been written when it arrived. (An HTTP client library cannot be used here: once the
/// server answers and closes, the client's next write fails, and e.g. hyper reports that
/// error instead of the response it had already received.)
async fn endless_upload(api: &crate::Api, addr: &str) -> (u16, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let path = api.tenant_url("/documents");
    let path = &path[path.find("/api/").unwrap()..];
    let boundary = "endless";
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        api.token
    );
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let writing = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let block = content(9, CHUNK as usize);
            let mut frame = format!("{:x}\r\n", part.len()).into_bytes();
            frame.extend_from_slice(part.as_bytes());
            frame.extend_from_slice(b"\r\n");
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(&frame).await?;
            let mut data = format!("{:x}\r\n", block.len()).into_bytes();
            data.extend_from_slice(&block);
            data.extend_from_slice(b"\r\n");
            // Endless unless the server stops reading: 4 GiB at most, so a server that reads
            // everything makes the test fail rather than hang.
            for _ in 0..4096 {
                writer.write_all(&data).await?;
                sent.fetch_add(block.len() as u64, Ordering::SeqCst);
            }
            std::io::Result::Ok(())
        })
    };
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let sent_at_answer = loop {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed the connection without answering");
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break sent.load(Ordering::SeqCst);
        }
    };
    // Whatever the writer is doing now (failing on the closed connection, or blocked on a
    // server that neither reads nor closes), it is done.
    writing.abort();
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    (status, sent_at_answer)
}

/// Over the limit: 413 as soon as it is crossed, while the client still has most of its body
/// to send; nothing is stored and memory stays bounded.
async fn over_limit_is_refused_while_sending(env: Env) {
    const LIMIT: u64 = 8 * MIB;
    let limit = LIMIT.to_string();
    let server = env.serve(&[("TENANTRY_FILES__MAX_UPLOAD_BYTES", limit.as_str())]);
    let api = crate::Api::register(&server).await;
    let rss_before = server.memory("VmRSS");
    let peak_reset = reset_peak(&server);
    let (status, sent) = endless_upload(&api, &server.addr).await;
    eprintln!("{status} after the client sent {} MiB", sent / MIB);
    assert_eq!(status, 413);
    // The limit plus what sockets and buffers take in flight: far from the whole body.
    assert!(
        sent < LIMIT + 64 * MIB,
        "the client sent {} MiB before the 413: the server read past its {} MiB limit",
        sent / MIB,
        LIMIT / MIB
    );
    if peak_reset {
        let growth = server.memory("VmHWM").saturating_sub(rss_before);
        assert!(growth < MAX_GROWTH, "peak RSS grew by {} MiB", growth / MIB);
    }
    let usage = api.get("/usage").await;
    assert_eq!(usage["storage"]["bytes"], 0, "{usage}");
    server.stop();
    let snapshot = crate::inspect::Snapshot::read(&env).await;
    assert!(snapshot.objects.is_empty(), "{:?}", snapshot.objects.keys());
    assert!(
        snapshot.stray_files.is_empty(),
        "{:?}",
        snapshot.stray_files
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_keeps_the_server_memory_flat_on_sqlite() {
    large_upload_keeps_memory_flat(Env::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_keeps_the_server_memory_flat_on_postgres() {
    let test = "a_large_upload_keeps_the_server_memory_flat_on_postgres";
    let Some(env) = Env::postgres(test).await else {
        return;
    };
    large_upload_keeps_memory_flat(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_refused_while_still_sending_on_sqlite() {
    over_limit_is_refused_while_sending(Env::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_refused_while_still_sending_on_postgres() {
    let test = "an_upload_over_the_limit_is_refused_while_still_sending_on_postgres";
    let Some(env) = Env::postgres(test).await else {
        return;
    };
    over_limit_is_refused_while_sending(env).await;
}
