//! A real SMTP server for mail tests: the one `scripts/test.sh` started
//! (`TENANTRY_TEST_SMTP_URL` + `TENANTRY_TEST_SMTP_DIR`), else one started for this test from
//! `scripts/lib/smtp_sink.py` (aiosmtpd). Messages are read back per recipient.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{STRICT_ENV, strict};

/// How long [`SmtpSink::wait_for`] waits for a message to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running SMTP server and where it stores what it receives.
#[derive(Debug)]
pub struct SmtpSink {
    /// `smtp://user:password@127.0.0.1:PORT` (AUTH required, no TLS).
    pub url: String,
    dir: PathBuf,
    _own: Option<OwnSink>,
}

#[derive(Debug)]
struct OwnSink {
    child: Child,
    _dir: tempfile::TempDir,
}

/// An SMTP server of this test's own with TLS, and the PEM file of the self-signed
/// certificate it presents (for `localhost` and `127.0.0.1`) for the client to trust.
#[derive(Debug)]
pub struct TlsSink {
    pub sink: SmtpSink,
    pub ca_file: PathBuf,
}

/// Starts a TLS SMTP test server (never the shared one).
pub fn smtp_sink_tls(test: &str, mode: SmtpTls) -> Option<TlsSink> {
    let start = || -> Result<TlsSink, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(|e| e.to_string())?;
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).map_err(|e| e.to_string())?;
        std::fs::write(&key, certified.signing_key.serialize_pem()).map_err(|e| e.to_string())?;
        let flag = match mode {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "implicit",
        };
        let args = [
            "--tls".to_owned(),
            flag.to_owned(),
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ];
        let mut sink = start_own_with(&args, dir)?;
        sink.url = match mode {
            SmtpTls::StartTls => format!("{}?tls=required", sink.url),
            SmtpTls::Implicit => sink.url.replacen("smtp://", "smtps://", 1),
        };
        Ok(TlsSink {
            sink,
            ca_file: cert,
        })
    };
    match start() {
        Ok(sink) => Some(sink),
        Err(reason) if strict() => {
            panic!("{test}: TLS SMTP test server not available ({STRICT_ENV}=1): {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test}: TLS SMTP test server not available: {reason}");
            None
        }
    }
}

impl Drop for OwnSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A delivered message as the server parsed it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivered {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The SMTP AUTH login the client used.
    pub auth_user: Option<String>,
    /// Whether the message arrived over TLS (STARTTLS or implicit).
    #[serde(default)]
    pub tls: bool,
}

/// How a TLS test server offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS required before AUTH (`smtp://…?tls=required` on the client).
    StartTls,
    /// TLS from the first byte (`smtps://…`).
    Implicit,
}

impl Delivered {
    /// The value of `token=` in the first link of the text part.
    pub fn link_token(&self) -> Option<String> {
        let start = self.text.find("token=")? + "token=".len();
        let token: String = self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

/// An SMTP server for `test`, or None when none can run here and the run is not strict
/// (then it prints `SKIPPED <test>: …`). When strict and unavailable: panics.
pub fn smtp_sink(test: &str) -> Option<SmtpSink> {
    if let (Ok(url), Ok(dir)) = (
        std::env::var("TENANTRY_TEST_SMTP_URL"),
        std::env::var("TENANTRY_TEST_SMTP_DIR"),
    ) {
        return Some(SmtpSink {
            url,
            dir: PathBuf::from(dir),
            _own: None,
        });
    }
    match start_own() {
        Ok(sink) => Some(sink),
        Err(reason) if strict() => {
            panic!("{test}: SMTP test server not available ({STRICT_ENV}=1): {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test}: SMTP test server not available: {reason}");
            None
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python with aiosmtpd: the virtual environment scripts/test.sh made (`$SMTP_VENV`, as the
/// script reads it, else `target/test-tools/smtp-venv`), else `python3`.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("SMTP_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || repo_root().join("target/test-tools/smtp-venv"),
            |v| repo_root().join(v),
        )
        .join("bin/python");
    let candidates = [venv, PathBuf::from("python3")];
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn start_own() -> Result<SmtpSink, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    start_own_with(&[], dir)
}

fn start_own_with(extra: &[String], dir: tempfile::TempDir) -> Result<SmtpSink, String> {
    let python = python()
        .ok_or("aiosmtpd is not installed (scripts/test.sh installs it into target/test-tools)")?;
    let port_file = dir.path().join("port");
    let mail = dir.path().join("mail");
    let child = Command::new(python)
        .arg(repo_root().join("scripts/lib/smtp_sink.py"))
        .arg("--dir")
        .arg(&mail)
        .arg("--port-file")
        .arg(&port_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting smtp_sink.py: {e}"))?;
    let own = OwnSink { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(port) = std::fs::read_to_string(&port_file)
            && !port.trim().is_empty()
        {
            return Ok(SmtpSink {
                url: format!("smtp://tenantry:test-secret@localhost:{}", port.trim()),
                dir: mail,
                _own: Some(own),
            });
        }
        if Instant::now() > deadline {
            return Err("smtp_sink.py did not report its port".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl SmtpSink {
    /// Every message delivered to `recipient` so far, oldest first.
    pub fn messages(&self, recipient: &str) -> Vec<Delivered> {
        let folder = self.dir.join(recipient.to_lowercase());
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect()
    }

    /// Waits until `recipient` has received at least `count` messages; returns them all.
    pub async fn wait_for(&self, recipient: &str, count: usize) -> Vec<Delivered> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let messages = self.messages(recipient);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{recipient} received {} of {count} expected messages",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
