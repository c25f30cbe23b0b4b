//! Files and documents against the real `tenantry` binary: a server killed with SIGKILL during
//! uploads and restarted (crash consistency), and the server's own memory while it takes a
//! large upload. A child process, not an in-process app: `kill -9` and the RSS must be the
//! server's alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash;
mod inspect;
mod memory;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Where the server keeps file contents.
#[derive(Debug)]
enum Storage {
    /// The default: `<data_dir>/blobs`.
    Local,
    S3 {
        server: tenantry_testkit::S3Server,
        bucket: String,
    },
}

/// A data directory, a database and a blob store that outlive the server processes using them.
struct Env {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    storage: Storage,
}

impl Env {
    fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            storage: Storage::Local,
        }
    }

    async fn postgres(test: &str) -> Option<Self> {
        let url = tenantry_testkit::fresh_postgres_database(test).await?;
        Some(Self {
            database_url: Some(url),
            ..Self::sqlite()
        })
    }

    /// Switches to a fresh bucket of the test S3 server; `None` (skipped) when none can run.
    async fn with_s3(mut self, test: &str) -> Option<Self> {
        let server = tenantry_testkit::s3_server(test)?;
        let bucket = server.create_bucket().await;
        self.storage = Storage::S3 { server, bucket };
        Some(self)
    }

    fn storage_kind(&self) -> (&'static str, &'static str) {
        let database = if self.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        match self.storage {
            Storage::Local => (database, "local"),
            Storage::S3 { .. } => (database, "s3"),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir().join("tenantry.db").display())
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TENANTRY_DATA_DIR", self.data_dir())
            .env("TENANTRY_BIND", "127.0.0.1:0")
            .env("TENANTRY_LOG", "warn")
            // Text logs go to stderr, which the test keeps for its failure messages.
            .env("TENANTRY_LOG_FORMAT", "text")
            // Uploads as fast as the server takes them, from one tenant.
            .env("TENANTRY_RATE_LIMITS__TENANT_PER_SECOND", "0")
            // Only the sweep this test runs, never one of the server's own.
            .env("TENANTRY_FILES__SWEEP_INTERVAL_SECS", "0");
        if let Some(url) = &self.database_url {
            cmd.env("TENANTRY_DATABASE_URL", url);
        }
        if let Storage::S3 { server, bucket } = &self.storage {
            cmd.env("TENANTRY_STORAGE_URL", format!("s3://{bucket}"))
                .env("TENANTRY_S3__ENDPOINT", &server.endpoint)
                .env("TENANTRY_S3__REGION", tenantry_testkit::S3_REGION)
                .env("TENANTRY_S3__ACCESS_KEY_ID", &server.access_key_id)
                .env("TENANTRY_S3__SECRET_ACCESS_KEY", &server.secret_access_key)
                .env("TENANTRY_S3__PATH_STYLE", "true");
        }
        cmd
    }

    /// Runs a command to its end; panics with its stderr when it fails.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "tenantry {args:?} failed: {stderr}");
        stderr
    }

    /// Starts `serve` and waits for its "listening on" line.
    fn serve(&self, vars: &[(&str, &str)]) -> Server {
        let mut child = self
            .command(&[])
            .envs(vars.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| {
                    panic!("server exited before listening: {}", log.lock().unwrap())
                })
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().to_owned();
            }
            log.lock().unwrap().push_str(&(line + "\n"));
        };
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Server { child, addr, log }
    }

    /// The blob store the server uses, opened from the test.
    fn blob_store(&self) -> tenantry_storage::BlobStore {
        let config = match &self.storage {
            Storage::Local => tenantry_storage::StorageConfig::Local {
                root: self.data_dir().join("blobs"),
            },
            Storage::S3 { server, bucket } => {
                let s3 = tenantry_storage::S3Config {
                    endpoint: Some(server.endpoint.clone()),
                    region: Some(tenantry_testkit::S3_REGION.to_owned()),
                    access_key_id: Some(server.access_key_id.clone()),
                    secret_access_key: Some(server.secret_access_key.clone().into()),
                    path_style: true,
                };
                tenantry_storage::StorageConfig::resolve(
                    Some(&format!("s3://{bucket}")),
                    &s3,
                    &self.data_dir(),
                )
                .unwrap()
            }
        };
        tenantry_storage::BlobStore::open(&config).unwrap()
    }
}

/// A running `tenantry serve`.
struct Server {
    child: Child,
    addr: String,
    /// What it wrote to stderr after "listening on" (warnings, errors).
    log: Arc<Mutex<String>>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL (`Child::kill` on unix): no shutdown code runs.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the graceful exit.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {}", self.log.lock().unwrap());
    }

    /// `VmRSS` or `VmHWM` of the server in bytes.
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-in tenant owner talking to one server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    tenant: String,
}

impl Api {
    /// Registers an owner with a tenant and signs in.
    async fn register(server: &Server) -> Self {
        // reqwest is built with `rustls-no-provider` in this workspace: give it one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let base = server.url("");
        let email = "owner@example.com";
        let response = http
            .post(format!("{base}/api/v1/auth/register"))
            .json(
                &json!({"email": email, "password": PASSWORD, "first_name": "O",
                "last_name": "W", "tenant_name": "Crash test"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let registered: Value = response.json().await.unwrap();
        let tenant = registered["tenant"]["id"].as_str().unwrap().to_owned();
        let mut api = Self {
            http,
            base,
            token: String::new(),
            tenant,
        };
        api.login(server, email).await;
        api
    }

    /// Signs in again, e.g. on a restarted server (its address changes).
    async fn login(&mut self, server: &Server, email: &str) {
        self.base = server.url("");
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        self.token = body["access_token"].as_str().unwrap().to_owned();
    }

    fn tenant_url(&self, path: &str) -> String {
        format!("{}/api/v1/tenants/{}{path}", self.base, self.tenant)
    }

    /// Uploads `content` as a multipart form (`filename`, then `file`), streamed as it comes.
    async fn upload<S>(&self, filename: &str, content: S) -> reqwest::Result<reqwest::Response>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
    {
        let boundary = "tenantry-test-boundary-7d3c";
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\n{filename}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
            .chain(content)
            .chain(futures::stream::once(async move { Ok(Bytes::from(tail)) }));
        self.http
            .post(self.tenant_url("/documents"))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.tenant_url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn delete_document(&self, document: &str) {
        let response = self
            .http
            .delete(self.tenant_url(&format!("/documents/{document}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "DELETE document {document}");
    }

    /// The document's content fetched through its download link.
    async fn download(&self, document: &str) -> Bytes {
        let link = self.get(&format!("/documents/{document}/download")).await;
        let url = link["url"].as_str().unwrap();
        // A server-signed link names the configured public URL (`http://127.0.0.1:0` here,
        // the bind address): send its path and query to the server's real address.
        let url = match url.strip_prefix("http://127.0.0.1:0") {
            Some(path) => format!("{}{path}", self.base),
            None => url.to_owned(),
        };
        let response = self.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "downloading {document}");
        response.bytes().await.unwrap()
    }
}

/// Deterministic pseudo-random content: `len` bytes from `seed`, in chunks of `chunk` bytes.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
