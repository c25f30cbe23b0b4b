//! A real S3-compatible server for storage tests: the one `scripts/test.sh` started
//! (`TENANTRY_TEST_S3_URL=http://ACCESS_KEY:SECRET@127.0.0.1:PORT`), else one started for
//! this test from the `s3s-fs` binary that `scripts/lib/s3.sh` installs (crates.io) into
//! `target/test-tools/s3s`. `s3s-fs` checks SigV4 signatures, presigned URLs included
//! (expiry and tampering), which is what the download tests need. Each test gets its own
//! bucket ([`S3Server::create_bucket`]).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{STRICT_ENV, strict};

const URL_ENV: &str = "TENANTRY_TEST_S3_URL";
/// Credentials of servers started here (any pair works; the server is told these).
const ACCESS_KEY: &str = "tenantry-test";
const SECRET_KEY: &str = "tenantry-test-secret";
pub const REGION: &str = "us-east-1";

/// A running S3-compatible server.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    _own: Option<OwnServer>,
}

#[derive(Debug)]
struct OwnServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An S3 server for `test`, or None when none can run here and the run is not strict
/// (then it prints `SKIPPED <test>: …`). When strict and unavailable: panics.
pub fn s3_server(test: &str) -> Option<S3Server> {
    let found = match std::env::var(URL_ENV) {
        Ok(url) => from_url(&url),
        Err(_) => start_own(),
    };
    match found {
        Ok(server) => Some(server),
        Err(reason) if strict() => {
            panic!("{test}: S3 test server not available ({STRICT_ENV}=1): {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test}: S3 test server not available: {reason}");
            None
        }
    }
}

/// `http://KEY:SECRET@HOST:PORT`
fn from_url(url: &str) -> Result<S3Server, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{URL_ENV} must be http://KEY:SECRET@HOST:PORT"))?;
    let (credentials, host) = rest
        .rsplit_once('@')
        .ok_or_else(|| format!("{URL_ENV} must carry KEY:SECRET@"))?;
    let (key, secret) = credentials
        .split_once(':')
        .ok_or_else(|| format!("{URL_ENV} must carry KEY:SECRET@"))?;
    Ok(S3Server {
        endpoint: format!("http://{}", host.trim_end_matches('/')),
        access_key_id: key.to_owned(),
        secret_access_key: secret.to_owned(),
        _own: None,
    })
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `s3s-fs` binary: `S3S_FS_BIN`, the test command's install, or `PATH`.
fn binary() -> Option<PathBuf> {
    let installed = std::env::var_os("S3S_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/test-tools/s3s"));
    let candidates = [
        std::env::var_os("S3S_FS_BIN").map(PathBuf::from),
        Some(repo_root().join(installed).join("bin/s3s-fs")),
        Some(PathBuf::from("s3s-fs")),
    ];
    candidates.into_iter().flatten().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn start_own() -> Result<S3Server, String> {
    let bin = binary().ok_or(
        "s3s-fs is not installed (scripts/test.sh installs it into target/test-tools/s3s)",
    )?;
    let mut last_error = String::new();
    // The free port is found by binding and releasing it; another process may take it in
    // between, hence a few attempts.
    for _ in 0..3 {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut own = OwnServer { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(S3Server {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    access_key_id: ACCESS_KEY.to_owned(),
                    secret_access_key: SECRET_KEY.to_owned(),
                    _own: Some(own),
                });
            }
            if let Ok(Some(status)) = own.child.try_wait() {
                last_error = format!("s3s-fs exited with {status}");
                break;
            }
            if Instant::now() > deadline {
                last_error = "s3s-fs did not accept connections within 15 s".into();
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Err(last_error)
}

impl S3Server {
    /// Creates a bucket with a fresh name (`t` and 12 random hex digits) and returns the name.
    /// Short on purpose: s3s-fs keeps a sidecar file per object named after base64(bucket) and
    /// base64(key), which must fit in 255 bytes (keys up to about 155 bytes).
    pub async fn create_bucket(&self) -> String {
        let id = uuid::Uuid::now_v7().simple().to_string();
        // The last digits of a UUIDv7 are random; the first ones are a timestamp.
        let bucket = format!("t{}", &id[20..]);
        let status = self
            .signed_request("PUT", &format!("/{bucket}"))
            .await
            .unwrap_or_else(|e| panic!("creating bucket {bucket} on {}: {e}", self.endpoint));
        assert!(
            status == 200,
            "creating bucket {bucket} on {}: HTTP {status}",
            self.endpoint
        );
        bucket
    }

    /// Sends a bodyless SigV4-signed request and returns the status code.
    async fn signed_request(&self, method: &str, path: &str) -> Result<u16, String> {
        let host = self
            .endpoint
            .strip_prefix("http://")
            .ok_or("endpoint must be http://")?;
        let empty = hex::encode(Sha256::digest(b""));
        let now = Utc::now();
        let date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{date}\n\n{signed_headers}\n{empty}"
        );
        let scope = format!("{day}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{}", self.secret_access_key).into_bytes();
        for part in [day.as_str(), REGION, "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nx-amz-content-sha256: {empty}\r\n\
             x-amz-date: {date}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{scope}, \
             SignedHeaders={signed_headers}, Signature={signature}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.access_key_id
        );
        let mut stream = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let response = String::from_utf8_lossy(&response);
        response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unexpected response: {response}"))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_carries_credentials() {
        let server = from_url("http://key:sec:ret@127.0.0.1:9000/").unwrap();
        assert_eq!(server.endpoint, "http://127.0.0.1:9000");
        assert_eq!(server.access_key_id, "key");
        assert_eq!(server.secret_access_key, "sec:ret");
        assert!(from_url("https://k:s@h").is_err());
        assert!(from_url("http://h:1").is_err());
    }
}
