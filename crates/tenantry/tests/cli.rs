//! The `tenantry` binary as an operator uses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Output, Stdio},
};

struct Env {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Env {
    fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
        }
    }

    async fn postgres(test: &str) -> Option<Self> {
        let url = tenantry_testkit::fresh_postgres_database(test).await?;
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(url),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TENANTRY_DATA_DIR", self.dir.path().join("data"))
            .env("TENANTRY_BIND", "127.0.0.1:0")
            .env("TENANTRY_LOG", "warn");
        if let Some(url) = &self.database_url {
            cmd.env("TENANTRY_DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `serve` and waits for its "listening on" line; returns the child and address.
    fn serve(&self) -> (Child, String) {
        self.serve_with(&[])
    }

    /// Like [`Env::serve`], with extra environment variables.
    fn serve_with(&self, vars: &[(&str, &str)]) -> (Child, String) {
        let mut child = self
            .command(&[])
            .envs(vars.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (child, addr)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// One HTTP/1.1 exchange with a JSON body; returns the status and the JSON answer.
fn http_json(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let kind = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_owned()
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}{kind}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// Signs in; the access token, or the status of the refusal.
fn login(addr: &str, email: &str, password: &str) -> Result<String, u16> {
    let (status, body) = http_json(
        addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(serde_json::json!({"email": email, "password": password})),
    );
    match status {
        200 => Ok(body["access_token"].as_str().unwrap().to_owned()),
        other => Err(other),
    }
}

fn migrations_round_trip(env: &Env) {
    let status = env.run(&["migrate", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(stderr(&status).contains("pending"), "{}", stderr(&status));
    let up = env.run(&["migrate", "up"]);
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(
        stderr(&up).contains(&format!(
            "applied {} migration(s)",
            tenantry_api::migrations().len()
        )),
        "{}",
        stderr(&up)
    );
    let again = env.run(&["migrate", "up"]);
    assert!(
        stderr(&again).contains("applied 0 migration(s)"),
        "{}",
        stderr(&again)
    );
    let down = env.run(&["migrate", "down", "--to", "2026112210"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(
        stderr(&down).contains(&format!("{:?}", {
            let mut undone: Vec<i64> = tenantry_api::migrations()
                .iter()
                .map(|m| m.version)
                .filter(|v| *v > 2026112210)
                .collect();
            undone.sort_unstable_by(|a, b| b.cmp(a));
            undone
        })),
        "{}",
        stderr(&down)
    );
    let status = stderr(&env.run(&["migrate", "status"]));
    let tenancy = status
        .lines()
        .find(|l| l.contains("tenancy_tenants"))
        .unwrap();
    assert!(tenancy.contains("pending"), "{status}");
    let identity = status
        .lines()
        .find(|l| l.contains("identity_users"))
        .unwrap();
    assert!(identity.contains("applied"), "{status}");
    let down_all = env.run(&["migrate", "down", "--to", "0"]);
    assert!(down_all.status.success(), "{}", stderr(&down_all));
    let up = env.run(&["migrate", "up"]);
    assert!(
        stderr(&up).contains(&format!(
            "applied {} migration(s)",
            tenantry_api::migrations().len()
        )),
        "{}",
        stderr(&up)
    );
}

#[test]
fn migrations_go_up_and_down_on_sqlite() {
    migrations_round_trip(&Env::sqlite());
}

#[tokio::test]
async fn migrations_go_up_and_down_on_postgres() {
    let Some(env) = Env::postgres("cli_migrations").await else {
        return;
    };
    tokio::task::spawn_blocking(move || migrations_round_trip(&env))
        .await
        .unwrap();
}

#[test]
fn openapi_prints_the_document() {
    let out = Env::sqlite().run(&["openapi"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/auth/login"].is_object());
}

#[test]
fn unknown_configuration_keys_are_refused_by_name() {
    let env = Env::sqlite();
    let out = env
        .command(&["migrate", "status"])
        .env("TENANTRY_DATABSE_URL", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("databse_url"), "{}", stderr(&out));
    let out = env
        .command(&["migrate", "status"])
        .env("TENANTRY_LOG", "info,[[")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("TENANTRY_LOG"), "{}", stderr(&out));
    std::fs::write(
        env.dir.path().join("tenantry.toml"),
        "[http]\nbody_limit = 5\n",
    )
    .unwrap();
    let out = env.run(&["migrate", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("body_limit"), "{}", stderr(&out));
}

#[test]
fn create_superuser_creates_then_promotes_and_validates() {
    let env = Env::sqlite();
    let bad = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "root",
        "--password",
        "correct horse battery",
    ]);
    assert!(!bad.status.success());
    let weak = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "root@example.com",
        "--password",
        "password",
    ]);
    assert!(!weak.status.success());
    let out = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "root@example.com",
        "--password",
        "correct horse battery",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("created platform administrator root@example.com"));
    let again = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "ROOT@example.com",
        "--password",
        "another pass phrase",
    ]);
    assert!(
        stderr(&again).contains("promoted existing account"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn administrators_from_the_command_line_and_the_bootstrap_variables_administer() {
    const PASS: &str = "correct horse battery";
    let env = Env::sqlite();
    let out = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "root@example.com",
        "--password",
        PASS,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The bootstrap variables change nothing once an administrator exists.
    let bootstrap = [
        ("TENANTRY_BOOTSTRAP_ADMIN_EMAIL", "boot@example.com"),
        ("TENANTRY_BOOTSTRAP_ADMIN_PASSWORD", "bootstrap pass phrase"),
    ];
    let (server, addr) = env.serve_with(&bootstrap);
    assert_eq!(
        login(&addr, "boot@example.com", "bootstrap pass phrase"),
        Err(401)
    );
    let root = login(&addr, "root@example.com", PASS).unwrap();
    let (status, tenants) = http_json(&addr, "GET", "/api/v1/admin/tenants", Some(&root), None);
    assert_eq!(status, 200, "{tenants}");
    assert_eq!(tenants["items"], serde_json::json!([]));

    // create-superuser on a disabled account enables it again.
    let (status, _) = http_json(
        &addr,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(
            serde_json::json!({"email": "ops@example.com", "password": PASS,
            "first_name": "O", "last_name": "P"}),
        ),
    );
    assert_eq!(status, 201);
    let (_, users) = http_json(&addr, "GET", "/api/v1/admin/users?q=ops", Some(&root), None);
    let ops = users["items"][0]["id"].as_str().unwrap().to_owned();
    let disable = format!("/api/v1/admin/users/{ops}/disable");
    let (status, body) = http_json(&addr, "POST", &disable, Some(&root), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(login(&addr, "ops@example.com", PASS), Err(401));
    let out = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "ops@example.com",
        "--password",
        "ignored pass phrase",
    ]);
    assert!(
        stderr(&out).contains("promoted existing account"),
        "{}",
        stderr(&out)
    );
    let ops = login(&addr, "ops@example.com", PASS).unwrap();
    let (status, _) = http_json(&addr, "GET", "/api/v1/admin/users", Some(&ops), None);
    assert_eq!(status, 200);
    stop(server);

    // On a fresh installation the bootstrap variables create the first administrator.
    let fresh = Env::sqlite();
    let (server, addr) = fresh.serve_with(&bootstrap);
    let boot = login(&addr, "boot@example.com", "bootstrap pass phrase").unwrap();
    let (status, me) = http_json(&addr, "GET", "/api/v1/users/me", Some(&boot), None);
    assert_eq!(status, 200);
    assert_eq!(me["is_platform_admin"], true);
    let (status, _) = http_json(&addr, "GET", "/api/v1/admin/users", Some(&boot), None);
    assert_eq!(status, 200);
    stop(server);
}

#[test]
fn serve_keeps_its_keys_and_stops_on_sigterm() {
    let env = Env::sqlite();
    let (mut first, addr) = env.serve();
    let health = http_get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let jwks = http_get(&addr, "/.well-known/jwks.json");
    let kid = jwks
        .split("\"kid\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let (mut second, addr) = env.serve();
    let jwks = http_get(&addr, "/.well-known/jwks.json");
    assert!(
        jwks.contains(&kid),
        "signing key changed across restarts: {jwks}"
    );
    Command::new("kill")
        .args(["-INT", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
}

/// The `kid`s of the JWKS a server publishes, sorted.
fn published_kids(addr: &str) -> Vec<String> {
    let response = http_get(addr, "/.well-known/jwks.json");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let jwks: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn stop(mut server: Child) {
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

#[test]
fn rotate_keys_makes_a_new_signer_and_keeps_the_old_key_published() {
    let env = Env::sqlite();
    let (server, addr) = env.serve();
    let before = published_kids(&addr);
    assert_eq!(before.len(), 1, "{before:?}");
    let old = before[0].clone();

    // Rotated while the server runs, as an operator would.
    let out = env.run(&["admin", "rotate-keys"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let new = text
        .lines()
        .find_map(|l| l.strip_prefix("new signing key: "))
        .unwrap_or_else(|| panic!("no new kid in: {text}"))
        .trim()
        .to_owned();
    assert_ne!(new, old);
    let retiring = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("previous key {old} keeps verifying until ")))
        .unwrap_or_else(|| panic!("no retirement time for {old} in: {text}"));
    let until: chrono::DateTime<chrono::Utc> = retiring.trim().parse().unwrap();
    // Default access TTL 900 s + 30 s leeway + 60 s reload interval.
    let grace = (until - chrono::Utc::now()).num_seconds();
    assert!((980..=991).contains(&grace), "grace {grace} s: {text}");
    assert!(text.contains("within 60 s"), "{text}");
    stop(server);

    let (server, addr) = env.serve();
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(
        published_kids(&addr),
        both,
        "old and new keys are published"
    );
    stop(server);

    // A second rotation retires the current signer too; nothing has expired yet.
    let out = env.run(&["admin", "rotate-keys"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("previous key {new} keeps verifying until ")),
        "{text}"
    );
    assert!(!text.contains("deleted"), "{text}");
    let (server, addr) = env.serve();
    assert_eq!(published_kids(&addr).len(), 3);
    stop(server);
}

/// Writes records through the CLI and the audit service, verifies them, tampers with the
/// table as someone with direct database access would, and verifies again.
async fn verify_audit_detects_tampering(env: &Env) {
    let empty = env.run(&["admin", "verify-audit"]);
    assert!(
        !empty.status.success(),
        "an unmigrated database is an error"
    );
    let created = env.run(&[
        "admin",
        "create-superuser",
        "--email",
        "root@example.com",
        "--password",
        "correct horse battery",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let user = stderr(&created)
        .lines()
        .find_map(|l| l.strip_prefix("created platform administrator root@example.com ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no user id in: {}", stderr(&created)))
        .to_owned();
    for _ in 0..2 {
        let rotated = env.run(&["admin", "rotate-keys"]);
        assert!(rotated.status.success(), "{}", stderr(&rotated));
    }
    let url = env.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            env.dir.path().join("data/tenantry.db").display()
        )
    });
    let db = tenantry_db::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    let tenant = tenantry_core::TenantId::new();
    let mut tx = db
        .begin_admin(&tenantry_db::AdminScope::for_housekeeping())
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        tenantry_audit::record_in(
            &mut tx,
            tenantry_audit::Chain::Tenant(tenant),
            tenantry_audit::AuditActor::System,
            &tenantry_core::Origin::NONE,
            tenantry_audit::Entry::new("project.created", "project", name)
                .with_summary(serde_json::json!({ "name": name })),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let intact = env.run(&["admin", "verify-audit"]);
    let text = stderr(&intact);
    assert!(intact.status.success(), "{text}");
    assert!(text.contains("verified 3 chain(s), 6 record(s)"), "{text}");
    assert!(text.contains("every chain is intact"), "{text}");

    if env.database_url.is_none() {
        db.execute_script(
            "DROP TRIGGER audit_logs_append_only_update;
             DROP TRIGGER audit_logs_append_only_delete;",
        )
        .await
        .unwrap();
    }
    db.execute_script(&format!(
        "UPDATE audit_logs SET summary = '{{\"email\":\"evil@example.com\"}}'
            WHERE chain_id = '{user}' AND seq = 1;
         DELETE FROM audit_logs WHERE chain_id = '{tenant}' AND seq = 2;"
    ))
    .await
    .unwrap();
    let broken = env.run(&["admin", "verify-audit"]);
    let text = stderr(&broken);
    assert_eq!(broken.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "BROKEN chain {user} (user {user}) at seq 1: the record's content does not match its hash"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "BROKEN chain {tenant} (tenant {tenant}) at seq 3: a record is missing or out of sequence"
        )),
        "{text}"
    );
    assert!(text.contains("2 of 3 audit chain(s) broken"), "{text}");
    assert!(!text.contains("(platform)"), "{text}");
}

#[tokio::test]
async fn verify_audit_detects_tampering_on_sqlite() {
    verify_audit_detects_tampering(&Env::sqlite()).await;
}

#[tokio::test]
async fn verify_audit_detects_tampering_on_postgres() {
    let Some(env) = Env::postgres("cli_verify_audit").await else {
        return;
    };
    verify_audit_detects_tampering(&env).await;
}
