//! Seeds a running Tenantry server through its public API (tenants, members, projects), then
//! measures load scenarios with `wrk`, reading the server's CPU time and peak RSS from /proc.
//!
//! Usage:
//!
//! ```text
//! tenantry-bench --url http://127.0.0.1:4999 --pid <server pid> --label sqlite
//!     --mail-dir <server data dir>/mail [--tenants 50] [--users 20] [--projects 100000]
//!     [--duration 15] [--connections 64]
//!     [--scenarios me,read,list,create,login,refresh,me_under_login,noisy_neighbour,files]
//! ```
//!
//! Normally run through `benches/run.sh`.
#![allow(clippy::print_stdout)]

use std::{collections::HashMap, path::PathBuf, process::Command, sync::Arc};

mod files;
mod mail;
mod noisy;
mod seed;

use seed::{run_all, seed};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const PASSWORD: &str = "load test password 1";

/// `wrk -t`: the Lua script splits refresh tokens among this many threads.
const WRK_THREADS: usize = 2;
/// Connections of the login storm in `me_under_login`.
const LOGIN_STORM: usize = 200;

#[derive(Clone)]
struct Args {
    url: String,
    pid: u32,
    label: String,
    tenants: usize,
    users: usize,
    projects: usize,
    duration: u64,
    connections: usize,
    scenarios: Vec<String>,
    /// The server's mail directory (`<data dir>/mail`), for verification and invitation links.
    mail_dir: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let key = key
            .strip_prefix("--")
            .context("flags look like --name value")?
            .to_owned();
        map.insert(key, it.next().context("flag without a value")?);
    }
    let num = |k: &str, d: usize| -> anyhow::Result<usize> {
        map.get(k)
            .map_or(Ok(d), |v| v.parse().with_context(|| format!("--{k}")))
    };
    Ok(Args {
        url: map
            .get("url")
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:4999".into()),
        pid: map
            .get("pid")
            .context("--pid <server pid> is required")?
            .parse()?,
        label: map
            .get("label")
            .cloned()
            .unwrap_or_else(|| "tenantry".into()),
        tenants: num("tenants", 50)?,
        users: num("users", 20)?,
        projects: num("projects", 100_000)?,
        duration: num("duration", 15)? as u64,
        connections: num("connections", 64)?,
        mail_dir: map
            .get("mail-dir")
            .map(PathBuf::from)
            .context("--mail-dir <server data dir>/mail is required (seeding reads its links)")?,
        scenarios: map
            .get("scenarios")
            .map_or(
                "me,read,list,create,login,refresh,me_under_login,noisy_neighbour,files",
                String::as_str,
            )
            .split(',')
            .map(str::to_owned)
            .collect(),
    })
}

/// A small xorshift generator: the benchmark needs spread, not cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Signs `email` in with the benchmark's password: the login response.
    async fn login(&self, email: &str) -> anyhow::Result<Value> {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": PASSWORD}),
        )
        .await
    }

    /// POSTs `body`; a 429 (per-tenant limit on) is retried after its `Retry-After`.
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        for _ in 0..120 {
            let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await?;
            let status = resp.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("POST {path} → {status}: {body}");
            }
            return Ok(body);
        }
        bail!("POST {path}: still rate limited after 120 attempts")
    }
}

/// Logs in `count` times (cycling through `emails`) and writes the refresh tokens, one per
/// line, to `path`. The refresh scenario spends each token once, so every wrk run needs a
/// fresh set, at least one per connection (twice as many leaves slack for lost requests).
async fn fresh_refresh_tokens(
    client: &Arc<Client>,
    emails: &[String],
    count: usize,
    path: &PathBuf,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !emails.is_empty(),
        "the refresh scenario needs seeded members"
    );
    let jobs: Vec<_> = (0..count)
        .map(|i| {
            let client = client.clone();
            let email = emails[i % emails.len()].clone();
            async move {
                let login = client.login(&email).await?;
                Ok(login["refresh_token"]
                    .as_str()
                    .context("refresh token")?
                    .to_owned())
            }
        })
        .collect();
    let tokens = run_all(8, jobs).await?;
    std::fs::write(path, tokens.join("\n") + "\n")?;
    Ok(())
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(") ").context("stat format")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let hz: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()?;
    Ok(ticks / hz)
}

/// The machine's CPU time counters (`/proc/stat`, all CPUs): on a virtual machine, `steal`
/// is time the hypervisor gave to other guests. A run with much steal measured a slower
/// machine than its core count says, so the tables print it beside each row.
struct MachineTicks {
    total: u64,
    steal: u64,
}

impl MachineTicks {
    fn read() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("/proc/stat is empty")?;
        let ticks = line
            .split_whitespace()
            .skip(1)
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
        // already counted in user.
        Ok(Self {
            total: ticks.iter().take(8).sum(),
            steal: ticks.get(7).copied().unwrap_or(0),
        })
    }

    fn steal_percent_since(&self, before: &Self) -> f64 {
        let total = self.total.saturating_sub(before.total).max(1);
        100.0 * self.steal.saturating_sub(before.steal) as f64 / total as f64
    }
}

/// Peak resident set size in MiB.
fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("VmHWM")?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM value")?
        .parse()?;
    Ok(kib / 1024.0)
}

fn parse_latency(value: &str) -> Option<f64> {
    let (num, unit) = value.split_at(value.find(|c: char| c.is_alphabetic())?);
    let num: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => num / 1000.0,
        "ms" => num,
        "s" => num * 1000.0,
        _ => return None,
    })
}

struct Measured {
    rps: f64,
    p50: f64,
    p99: f64,
    requests: f64,
    errors: u64,
}

fn wrk(
    args: &Args,
    scenario: &str,
    data: &std::path::Path,
    seconds: u64,
) -> anyhow::Result<Measured> {
    wrk_with(args, scenario, data, seconds, args.connections)
}

fn wrk_with(
    args: &Args,
    scenario: &str,
    data: &std::path::Path,
    seconds: u64,
    connections: usize,
) -> anyhow::Result<Measured> {
    wrk_paced(args, scenario, data, seconds, connections, 0)
}

/// `wrk_with`, each connection pausing `delay_ms` between requests (an open, moderate load
/// rather than as fast as the server answers; wrk leaves the pause out of the latency).
fn wrk_paced(
    args: &Args,
    scenario: &str,
    data: &std::path::Path,
    seconds: u64,
    connections: usize,
    delay_ms: u64,
) -> anyhow::Result<Measured> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenario.lua");
    let out = Command::new("wrk")
        .args([
            &format!("-t{WRK_THREADS}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(&args.url)
        .env("BENCH_SCENARIO", scenario)
        .env("BENCH_DATA", data)
        .env("BENCH_PASSWORD", PASSWORD)
        .env("BENCH_THREADS", WRK_THREADS.to_string())
        .env("BENCH_DELAY_MS", delay_ms.to_string())
        .output()
        .context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut m = Measured {
        rps: 0.0,
        p50: 0.0,
        p99: 0.0,
        requests: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["50%", v] => m.p50 = parse_latency(v).unwrap_or(0.0),
            ["99%", v] => m.p99 = parse_latency(v).unwrap_or(0.0),
            ["Requests/sec:", v] => m.rps = v.parse().unwrap_or(0.0),
            [n, "requests", "in", ..] => m.requests = n.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => m.errors = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(m)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Built together with the server, reqwest has `rustls-no-provider`: give it one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        base: args.url.trim_end_matches('/').to_owned(),
    });
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    // First, while the server's memory is not yet shaped by the other scenarios.
    if args.scenarios.iter().any(|s| s == "files") {
        println!("== {} (files, a tenant of their own)", args.label);
        files::run(client.clone(), &args, &run).await?;
        if args.scenarios.iter().all(|s| s == "files") {
            return Ok(());
        }
    }
    println!(
        "== {} ({} tenants × {} users, {} projects)",
        args.label, args.tenants, args.users, args.projects
    );
    let tenants = seed(client.clone(), &args, &run).await?;

    let data = std::env::temp_dir().join(format!("tenantry-bench-{run}.txt"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut lines = String::new();
    for tenant in &tenants {
        for token in &tenant.member_tokens {
            for _ in 0..20 {
                let project = &tenant.projects[rng.next(tenant.projects.len())];
                lines.push_str(&format!("{token} {} {project}\n", tenant.id));
            }
        }
    }
    std::fs::write(&data, lines)?;
    // noisy_neighbour: the first tenant floods, the second is measured.
    let noisy_data = std::env::temp_dir().join(format!("tenantry-bench-{run}-noisy.txt"));
    let quiet_data = std::env::temp_dir().join(format!("tenantry-bench-{run}-quiet.txt"));
    for (tenant, path) in tenants.iter().zip([&noisy_data, &quiet_data]) {
        let mut lines = String::new();
        for token in &tenant.member_tokens {
            for _ in 0..20 {
                let project = &tenant.projects[rng.next(tenant.projects.len())];
                lines.push_str(&format!("{token} {} {project}\n", tenant.id));
            }
        }
        std::fs::write(path, lines)?;
    }
    let emails: Vec<String> = tenants
        .iter()
        .flat_map(|t| t.member_emails.iter().cloned())
        .collect();
    let login_data = std::env::temp_dir().join(format!("tenantry-bench-{run}-login.txt"));
    std::fs::write(&login_data, emails.join("\n") + "\n")?;
    let refresh_data = std::env::temp_dir().join(format!("tenantry-bench-{run}-refresh.txt"));

    println!(
        "\n| backend | scenario | req/s | p50 ms | p99 ms | CPU s / 1k req | peak RSS MiB | non-2xx | steal % |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (scenario, title) in [
        ("me", "GET /users/me"),
        ("read", "project by id"),
        ("list", "list 20 projects"),
        ("create", "create project"),
        ("login", "login (password hash)"),
        ("refresh", "refresh (rotating)"),
        (
            "me_under_login",
            "GET /users/me during 200 concurrent logins",
        ),
        (
            "noisy_neighbour",
            "tenant B project by id while tenant A is flooded",
        ),
    ] {
        if !args.scenarios.iter().any(|s| s == scenario) {
            continue;
        }
        let input = match scenario {
            "login" => &login_data,
            "refresh" => &refresh_data,
            _ => &data,
        };
        let tokens = 2 * args.connections.max(WRK_THREADS);
        if scenario == "refresh" {
            fresh_refresh_tokens(&client, &emails, tokens, input).await?;
        }
        if scenario == "noisy_neighbour" {
            anyhow::ensure!(
                tenants.len() >= 2 && !tenants[1].member_tokens.is_empty(),
                "noisy_neighbour needs two tenants with members (--tenants 2 --users 2 at least)"
            );
        }
        if scenario != "me_under_login" && scenario != "noisy_neighbour" {
            wrk(&args, scenario, input, 2)?; // warm-up
        }
        if scenario == "refresh" {
            // The warm-up spent those tokens (their successors died with wrk).
            fresh_refresh_tokens(&client, &emails, tokens, input).await?;
        }
        let cpu_before = cpu_seconds(args.pid)?;
        let machine_before = MachineTicks::read()?;
        let m = if scenario == "noisy_neighbour" {
            noisy::noisy_neighbour(&args, &noisy_data, &quiet_data)?
        } else if scenario == "me_under_login" {
            // A login storm (200 connections) in the background, the `me` load measured
            // meanwhile: compare its p99 with the `me` row.
            let storm = {
                let (args, login_data) = (args.clone(), login_data.clone());
                std::thread::spawn(move || {
                    wrk_with(&args, "login", &login_data, args.duration + 4, LOGIN_STORM)
                })
            };
            std::thread::sleep(std::time::Duration::from_secs(2));
            let m = wrk(&args, "me", &data, args.duration)?;
            let logins = storm
                .join()
                .map_err(|_| anyhow::anyhow!("login storm panicked"))??;
            println!(
                "  (meanwhile {:.0} logins/s, p99 {:.0} ms, {} non-2xx)",
                logins.rps, logins.p99, logins.errors
            );
            m
        } else {
            wrk(&args, scenario, input, args.duration)?
        };
        let cpu = cpu_seconds(args.pid)? - cpu_before;
        let steal = MachineTicks::read()?.steal_percent_since(&machine_before);
        println!(
            "| {} | {title} | {:.0} | {:.2} | {:.2} | {:.3} | {:.0} | {} | {steal:.0} |",
            args.label,
            m.rps,
            m.p50,
            m.p99,
            cpu / (m.requests / 1000.0).max(f64::MIN_POSITIVE),
            peak_rss_mib(args.pid)?,
            m.errors
        );
    }
    for file in [&data, &login_data, &refresh_data, &noisy_data, &quiet_data] {
        std::fs::remove_file(file).ok();
    }
    Ok(())
}
