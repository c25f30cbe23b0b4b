//! `files`: uploads of 1 MiB and 64 MiB files, downloads of them through their download
//! links, and a deduplicated re-upload of identical content, in a tenant of their own.
//! Reports MB/s, requests/s, latency, server CPU per GiB and the server's peak RSS during each
//! scenario (the peak is reset before each one where the kernel allows it).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{Args, Client, PASSWORD, cpu_seconds, peak_rss_mib};

const MIB: usize = 1024 * 1024;
/// Files per size and how many transfers run at once.
const SMALL: (usize, usize, usize) = (MIB, 400, 8);
const LARGE: (usize, usize, usize) = (64 * MIB, 8, 4);
/// Bodies are sent in chunks of this size (generated on the fly, never held whole).
const CHUNK: usize = 256 * 1024;
const BOUNDARY: &str = "tenantry-bench-boundary";

/// A tenant owner's session.
struct Owner {
    client: Arc<Client>,
    tenant: String,
    token: String,
}

/// One stored document: id and size.
type Stored = (String, usize);

struct Measured {
    transfers: usize,
    bytes: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: f64,
    peak_rss: f64,
}

/// Content of file `index` of a run: one shared pseudo-random block with the index written
/// into every chunk, so that files (and chunks) differ without generating each byte.
fn body(block: Bytes, index: u64, len: usize) -> reqwest::Body {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{index}.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let chunks = futures::stream::iter((0..len).step_by(CHUNK)).map(move |offset| {
        let mut chunk = block[..CHUNK.min(len - offset)].to_vec();
        let stamp = index.to_le_bytes();
        let n = stamp.len().min(chunk.len());
        chunk[..n].copy_from_slice(&stamp[..n]);
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    let stream = futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(chunks)
        .chain(futures::stream::once(async move { Ok(Bytes::from(tail)) }));
    reqwest::Body::wrap_stream(stream)
}

fn block() -> Bytes {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    Bytes::from(out)
}

impl Owner {
    async fn register(client: Arc<Client>, run: &str) -> anyhow::Result<Self> {
        let email = format!("files-{run}@bench.example.com");
        let registered = client
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "first_name": "Files",
                    "last_name": "Bench", "tenant_name": format!("Files {run}")}),
            )
            .await?;
        let login = client.login(&email).await?;
        Ok(Self {
            tenant: registered["tenant"]["id"]
                .as_str()
                .context("tenant id")?
                .to_owned(),
            token: login["access_token"].as_str().context("token")?.to_owned(),
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/tenants/{}{path}", self.client.base, self.tenant)
    }

    async fn upload(&self, block: Bytes, index: u64, len: usize) -> anyhow::Result<Stored> {
        let response = self
            .client
            .http
            .post(self.url("/documents"))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body(block, index, len))
            .send()
            .await?;
        let status = response.status();
        let document: Value = response.json().await.unwrap_or(Value::Null);
        if status != reqwest::StatusCode::CREATED {
            bail!("upload → {status}: {document}");
        }
        Ok((
            document["id"].as_str().context("document id")?.to_owned(),
            len,
        ))
    }

    /// Asks for the download link, then reads the content through it; answers the bytes read.
    async fn download(&self, document: &str) -> anyhow::Result<u64> {
        let link: Value = self
            .client
            .http
            .get(self.url(&format!("/documents/{document}/download")))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let url = link["url"].as_str().context("download url")?;
        let response = self.client.http.get(url).send().await?.error_for_status()?;
        let mut body = response.bytes_stream();
        let mut read = 0;
        while let Some(chunk) = body.next().await {
            read += chunk?.len() as u64;
        }
        Ok(read)
    }

    async fn usage(&self) -> anyhow::Result<Value> {
        Ok(self
            .client
            .http
            .get(self.url("/usage"))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

/// Runs `count` jobs, `parallel` at a time, timing each; `job(i)` answers the bytes moved.
async fn measure<F, Fut>(
    args: &Args,
    count: usize,
    parallel: usize,
    job: F,
) -> anyhow::Result<(Measured, Vec<Stored>)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<(u64, Option<Stored>)>> + Send + 'static,
{
    // Peak RSS from now on (`clear_refs` 5 resets VmHWM; without it the peak is the
    // process's lifetime peak).
    std::fs::write(format!("/proc/{}/clear_refs", args.pid), "5").ok();
    let cpu_before = cpu_seconds(args.pid)?;
    let permits = Arc::new(Semaphore::new(parallel));
    let mut set = JoinSet::new();
    let started = Instant::now();
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let job = job(i);
        set.spawn(async move {
            let begun = Instant::now();
            let out = job.await;
            drop(permit);
            out.map(|(bytes, stored)| (bytes, stored, begun.elapsed()))
        });
    }
    let mut measured = Measured {
        transfers: count,
        bytes: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(count),
        cpu: 0.0,
        peak_rss: 0.0,
    };
    let mut stored = Vec::new();
    while let Some(done) = set.join_next().await {
        let (bytes, document, latency) = done??;
        measured.bytes += bytes;
        measured.latencies.push(latency);
        stored.extend(document);
    }
    measured.elapsed = started.elapsed();
    measured.cpu = cpu_seconds(args.pid)? - cpu_before;
    measured.peak_rss = peak_rss_mib(args.pid)?;
    Ok((measured, stored))
}

fn print_row(args: &Args, title: &str, m: &mut Measured, note: &str) {
    m.latencies.sort();
    let pick = |q: f64| {
        let i = ((m.latencies.len() as f64 * q).ceil() as usize).clamp(1, m.latencies.len());
        m.latencies[i - 1].as_secs_f64() * 1000.0
    };
    let secs = m.elapsed.as_secs_f64();
    let gib = m.bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    println!(
        "| {} | {title} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} | {note} |",
        args.label,
        m.transfers,
        m.bytes as f64 / 1e6 / secs,
        m.transfers as f64 / secs,
        pick(0.5),
        pick(0.99),
        m.cpu / gib.max(f64::MIN_POSITIVE),
        m.peak_rss,
    );
}

/// The `files` scenario: every row of it.
pub(crate) async fn run(client: Arc<Client>, args: &Args, run: &str) -> anyhow::Result<()> {
    let owner = Arc::new(Owner::register(client, run).await?);
    let block = block();
    println!(
        "\n| backend | files scenario | transfers | MB/s | transfers/s | p50 ms | p99 ms | server CPU s / GiB | peak RSS MiB | note |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut uploaded = Vec::new();
    for (label, (size, count, parallel), first) in
        [("1 MiB", SMALL, 0u64), ("64 MiB", LARGE, SMALL.1 as u64)]
    {
        let upload = |i: usize| {
            let (owner, block) = (owner.clone(), block.clone());
            async move {
                let stored = owner.upload(block, first + i as u64, size).await?;
                Ok((size as u64, Some(stored)))
            }
        };
        let (mut m, stored) = measure(args, count, parallel, upload).await?;
        print_row(
            args,
            &format!("upload {label}"),
            &mut m,
            &format!("{parallel} at once"),
        );
        uploaded.push((label, parallel, stored));
    }
    for (label, parallel, stored) in &uploaded {
        let stored = Arc::new(stored.clone());
        let download = |i: usize| {
            let (owner, stored) = (owner.clone(), stored.clone());
            async move {
                let (id, size) = &stored[i];
                let read = owner.download(id).await?;
                ensure!(read == *size as u64, "downloaded {read} of {size} bytes");
                Ok((read, None))
            }
        };
        let (mut m, _) = measure(args, stored.len(), *parallel, download).await?;
        print_row(
            args,
            &format!("download {label} (link + GET)"),
            &mut m,
            &format!("{parallel} at once"),
        );
    }
    // Identical content again: every upload is hashed, then becomes a new document of the
    // existing file; storage grows by nothing.
    let before = owner.usage().await?;
    let (size, count, parallel) = SMALL;
    let reupload = |i: usize| {
        let (owner, block) = (owner.clone(), block.clone());
        async move {
            let stored = owner.upload(block, i as u64, size).await?;
            Ok((size as u64, Some(stored)))
        }
    };
    let (mut m, _) = measure(args, count, parallel, reupload).await?;
    let after = owner.usage().await?;
    let storage = |v: &Value, k: &str| v["storage"][k].as_i64().unwrap_or(-1);
    ensure!(
        storage(&before, "bytes") == storage(&after, "bytes")
            && storage(&before, "files") == storage(&after, "files")
            && storage(&after, "documents") == storage(&before, "documents") + count as i64,
        "a deduplicated re-upload changed the storage usage: {before} → {after}"
    );
    print_row(
        args,
        "dedup re-upload 1 MiB",
        &mut m,
        &format!(
            "{parallel} at once; storage {} B in {} files before and after, documents {} → {}",
            storage(&after, "bytes"),
            storage(&after, "files"),
            storage(&before, "documents"),
            storage(&after, "documents")
        ),
    );
    Ok(())
}
