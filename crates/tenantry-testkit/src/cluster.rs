//! A throw-away PostgreSQL cluster, started at most once per test process.
//!
//! Layout of the temporary directory `$TMPDIR/tenantry-pg-<pid>-<random>/`:
//! `data/` (the cluster), `log` (server log) and the Unix socket `.s.PGSQL.<port>`.
//!
//! Cleanup: before anything else is started, a detached watchdog shell (own process group,
//! stdio on `/dev/null`) is spawned. It polls the test process with `kill -0` once per second;
//! when the test process is gone (normal exit, panic, SIGKILL, nextest timeout...) it runs
//! `pg_ctl -m immediate stop` and removes the whole directory. The server itself also runs
//! in its own process group, so a Ctrl-C in the terminal does not take it down before the
//! watchdog does.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Name of the cluster superuser (and of the OS user the server runs as when we are root).
const PG_USER: &str = "postgres";
/// How many times `pg_ctl start` is tried (a new free port each time) before giving up.
const START_ATTEMPTS: u32 = 3;

/// A running throw-away cluster listening on `127.0.0.1:<port>` with trust authentication.
#[derive(Debug)]
pub(crate) struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    /// URL of the cluster's `postgres` maintenance database, as superuser `postgres`.
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// The server log file (useful in error messages).
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Blocking: finds the binaries, runs `initdb` and `pg_ctl start`. Takes ~1-3 s.
    pub(crate) fn start() -> Result<Self, String> {
        let bins = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        let dir = create_temp_dir()?;
        spawn_watchdog(&dir, &bins.pg_ctl, &run_as)?;
        run_as.hand_over(&dir)?;
        initdb(&bins, &run_as, &dir)?;
        let port = start_server(&bins, &run_as, &dir)?;
        Ok(Self { dir, port })
    }
}

/// `initdb` and `pg_ctl` from the same installation.
#[derive(Debug)]
struct PgBinaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl PgBinaries {
    /// Looks on `PATH` first, then in `/usr/lib/postgresql/<version>/bin`, highest version first.
    fn find() -> Result<Self, String> {
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(versioned_bin_dirs(Path::new("/usr/lib/postgresql")))
            .find_map(|dir| {
                let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
                (is_executable(&initdb) && is_executable(&pg_ctl))
                    .then_some(Self { initdb, pg_ctl })
            })
            .ok_or_else(|| {
                "initdb/pg_ctl not found on PATH nor under /usr/lib/postgresql/*/bin \
                 (install the PostgreSQL server, e.g. `apt-get install postgresql`, \
                 or set TENANTRY_TEST_DATABASE_URL)"
                    .to_owned()
            })
    }
}

/// `<root>/<version>/bin` directories, highest (numeric) version first.
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(str::parse::<u32>)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Which OS user runs `initdb`/`pg_ctl`: PostgreSQL refuses to run as root, so as root we
/// switch to the `postgres` user with `runuser`.
#[derive(Debug)]
enum RunAs {
    CurrentUser,
    Postgres { runuser: PathBuf },
}

impl RunAs {
    fn detect() -> Result<Self, String> {
        let uid = Command::new("id").arg("-u").stdin(Stdio::null()).output();
        let is_root = matches!(&uid, Ok(out) if out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim() == "0");
        if !is_root {
            return Ok(Self::CurrentUser);
        }
        let user_exists = Command::new("id")
            .args(["-u", PG_USER])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success());
        if !user_exists {
            return Err(format!(
                "running as root, but there is no OS user {PG_USER:?} to run initdb/postgres as \
                 (PostgreSQL refuses to run as root)"
            ));
        }
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let runuser = path_dirs
            .into_iter()
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|dir| dir.join("runuser"))
            .find(|p| is_executable(p))
            .ok_or("running as root, but `runuser` (util-linux) is not available")?;
        Ok(Self::Postgres { runuser })
    }

    /// A command running `program` as the chosen user.
    fn command(&self, program: &Path) -> Command {
        match self {
            Self::CurrentUser => Command::new(program),
            Self::Postgres { runuser } => {
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", PG_USER, "--"]).arg(program);
                cmd
            }
        }
    }

    /// Gives the directory to the user that runs the server.
    fn hand_over(&self, dir: &Path) -> Result<(), String> {
        if let Self::Postgres { .. } = self {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg(PG_USER).arg(dir);
            run(chown, "chown")?;
        }
        Ok(())
    }
}

/// Runs `cmd` to completion (stdin closed), turning a failure into a readable reason.
fn run(mut cmd: Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(format!(
        "{what} failed ({}): {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    ))
}

fn create_temp_dir() -> Result<PathBuf, String> {
    let random = uuid::Uuid::now_v7().simple().to_string();
    let dir = std::env::temp_dir().join(format!(
        "tenantry-pg-{}-{}",
        std::process::id(),
        &random[random.len() - 12..]
    ));
    if dir.to_string_lossy().contains(['\'', '"', ' ']) {
        return Err(format!(
            "temporary directory path {} contains quotes or spaces; set TMPDIR to a plain path",
            dir.display()
        ));
    }
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Spawns the detached cleanup process described in the module docs.
///
/// The outer `sh` only forks the watchdog subshell into the background and exits at once
/// (so it is waited for here); the subshell is re-parented to init and keeps the new process
/// group. As root, the watchdog itself stays root (so that `kill -0` on the test process works
/// and `rm -rf` can remove everything) and only `pg_ctl stop` runs as `postgres`.
fn spawn_watchdog(dir: &Path, pg_ctl: &Path, run_as: &RunAs) -> Result<(), String> {
    const SCRIPT: &str = r#"(
  while kill -0 "$1" 2>/dev/null; do sleep 1; done
  if [ -n "$4" ]; then "$4" -u postgres -- "$3" -D "$2/data" -m immediate stop
  else "$3" -D "$2/data" -m immediate stop; fi
  rm -rf "$2"
) </dev/null >/dev/null 2>&1 &"#;
    let runuser = match run_as {
        RunAs::CurrentUser => PathBuf::new(),
        RunAs::Postgres { runuser } => runuser.clone(),
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", SCRIPT, "tenantry-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(pg_ctl)
        .arg(runuser)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    run(cmd, "spawning the cleanup watchdog").map(drop)
}

fn initdb(bins: &PgBinaries, run_as: &RunAs, dir: &Path) -> Result<(), String> {
    let data = dir.join("data");
    let mut errors = Vec::new();
    for locale in ["C.UTF-8", "C"] {
        let mut cmd = run_as.command(&bins.initdb);
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", PG_USER, "-A", "trust", "-E", "UTF8", "--no-sync"])
            .arg(format!("--locale={locale}"))
            .current_dir(dir);
        match run(cmd, &format!("initdb --locale={locale}")) {
            Ok(_) => return Ok(()),
            Err(e) => errors.push(e),
        }
        // initdb cleans up after itself on failure; make sure before retrying.
        let _ = fs::remove_dir_all(&data);
    }
    Err(errors.join("; "))
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read local address: {e}"))
}

/// `pg_ctl start -w`, retried on a fresh port in case another process grabbed ours.
fn start_server(bins: &PgBinaries, run_as: &RunAs, dir: &Path) -> Result<u16, String> {
    let log = dir.join("log");
    let mut errors = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let options = format!(
            "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=400",
            dir.display()
        );
        let mut cmd = run_as.command(&bins.pg_ctl);
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "60", "-l"])
            .arg(&log)
            .arg("start")
            .current_dir(dir)
            .process_group(0);
        match run(cmd, &format!("pg_ctl start (port {port})")) {
            Ok(_) => return Ok(port),
            Err(e) => errors.push(format!("{e}; server log: {}", log_tail(&log))),
        }
    }
    Err(errors.join("; "))
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::versioned_bin_dirs;
    use std::path::PathBuf;

    #[test]
    fn versions_sorted_numerically_descending() {
        let root = std::env::temp_dir().join(format!(
            "tenantry-testkit-versions-{}",
            uuid::Uuid::now_v7().simple()
        ));
        for v in ["9.6", "15", "10", "notaversion", "16"] {
            std::fs::create_dir_all(root.join(v).join("bin")).expect("create test dirs");
        }
        let found = versioned_bin_dirs(&root);
        std::fs::remove_dir_all(&root).expect("remove test dirs");
        let expected: Vec<PathBuf> = ["16", "15", "10", "9.6"]
            .iter()
            .map(|v| root.join(v).join("bin"))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn missing_root_gives_no_dirs() {
        assert!(versioned_bin_dirs(std::path::Path::new("/nonexistent/tenantry")).is_empty());
    }
}
