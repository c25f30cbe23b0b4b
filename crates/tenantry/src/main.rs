//! The `tenantry` binary: `serve` (default), `migrate`, `admin`, `openapi`.

#[cfg(test)]
mod boundaries;
mod config;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tenantry_api::{
    Application,
    config::{Config, LogFormat},
};
use tenantry_core::{Email, Password};
use tenantry_db::{Db, migrate::Migrator};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// mimalloc instead of glibc malloc: faster small allocations on the request path, and freed
/// memory (argon2's 19 MiB blocks, SQLite page caches) is returned instead of being pinned in
/// one arena per thread. See docs/adr/0004-mimalloc.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tenantry",
    version,
    about = "Multi-tenant SaaS backend in one binary"
)]
struct Cli {
    /// Configuration file (default: ./tenantry.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Platform administration.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Revert applied migrations newer than a version.
    Down {
        #[arg(long)]
        to: i64,
    },
    /// List migrations and whether they are applied.
    Status,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create a platform administrator (or promote the account with that e-mail).
    CreateSuperuser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
    /// Generate a new access-token signing key; the previous one keeps verifying until the
    /// tokens it signed have expired.
    RotateKeys,
    /// Recompute every audit hash chain; exits non-zero when a record was edited, deleted,
    /// inserted or reordered.
    VerifyAudit,
    /// Collect what uploads, deletions and crashes left behind in the blob store and the
    /// database: files no document references, objects without a file row, staged uploads
    /// and temporary files of interrupted local uploads, all older than the grace period.
    SweepFiles {
        /// Only collect what is at least this old (default: `files.orphan_grace_secs`).
        /// 0 collects everything at once: use it only when no upload is in flight.
        #[arg(long)]
        grace_secs: Option<u64>,
    },
}

fn init_logging(config: &Config, server: bool) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("invalid log filter {:?} (TENANTRY_LOG): {e}", config.log))?;
    let registry = tracing_subscriber::registry().with(filter);
    if server && config.log_format == LogFormat::Json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi))
            .init();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Openapi)) {
        return print_openapi();
    }
    let config = match config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let server = matches!(cli.command, None | Some(Command::Serve));
    if let Err(error) = init_logging(&config, server) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        None | Some(Command::Serve) => serve(config).await,
        Some(Command::Migrate { action }) => migrate(config, action).await,
        Some(Command::Admin { action }) => admin(config, action).await,
        Some(Command::Openapi) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if server {
                // The structured log gets it too, for whoever collects the server's logs.
                tracing::error!(error = format!("{error:#}"), "fatal");
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn print_openapi() -> ExitCode {
    match tenantry_api::openapi().to_pretty_json() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    let state = app.state();
    tracing::info!(%addr, backend = state.db.backend().name(), "tenantry listening");
    eprintln!(
        "Tenantry {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("  API docs:  http://{addr}/docs");
    eprintln!("  database:  {}", state.db.backend().name());
    if state.config.http.metrics_token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "GET /metrics is public on a non-loopback address: set http.metrics_token \
             (TENANTRY_HTTP__METRICS_TOKEN) or keep /metrics off the public route"
        );
    }
    if !state.identity.has_platform_admin().await.unwrap_or(true) {
        eprintln!(
            "  No platform administrator yet. Create one with:\n    \
             tenantry admin create-superuser --email you@example.com --password '<a strong password>'\n  \
             (or set TENANTRY_BOOTSTRAP_ADMIN_EMAIL and TENANTRY_BOOTSTRAP_ADMIN_PASSWORD)"
        );
    }
    app.run_until_stopped(shutdown_signal()?).await?;
    tracing::info!("tenantry stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the server accepts
/// its first connection: a signal that arrives once the server answers is always a graceful
/// stop, never the default disposition that kills the process (the first poll of a lazily
/// registered handler may come later than that under load).
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received; shutting down");
    })
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).ok();
    Db::connect(
        config.effective_database_url().expose_secret(),
        &config.database,
    )
    .await
}

async fn migrate(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = connect(&config).await?;
    let migrator = Migrator::new(tenantry_api::migrations())?;
    match action {
        MigrateAction::Up => {
            let applied = migrator.up(&db).await?;
            eprintln!("applied {} migration(s): {applied:?}", applied.len());
        }
        MigrateAction::Down { to } => {
            let reverted = migrator.down_to(&db, to).await?;
            eprintln!("reverted {} migration(s): {reverted:?}", reverted.len());
        }
        MigrateAction::Status => {
            for status in migrator.status(&db).await? {
                let applied = status.applied_at.map_or_else(
                    || "pending".to_owned(),
                    |at| format!("applied {}", at.to_rfc3339()),
                );
                eprintln!("{:>12}  {:<50} {applied}", status.version, status.name);
            }
        }
    }
    Ok(())
}

async fn admin(config: Config, action: AdminAction) -> anyhow::Result<()> {
    match action {
        AdminAction::CreateSuperuser { email, password } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let password =
                Password::parse(&password).map_err(|e| anyhow::anyhow!("--password {e}"))?;
            let db = connect(&config).await?;
            Migrator::new(tenantry_api::migrations())?.up(&db).await?;
            let identity = tenantry_api::identity(&db, &config).await?;
            let (user, created) = identity
                .create_superuser(email, password)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if created {
                eprintln!(
                    "created platform administrator {} ({})",
                    user.email.unwrap_or_default(),
                    user.id
                );
            } else {
                eprintln!(
                    "promoted existing account {} ({}) to platform administrator; its password is unchanged",
                    user.email.unwrap_or_default(),
                    user.id
                );
            }
            Ok(())
        }
        AdminAction::RotateKeys => {
            let db = connect(&config).await?;
            Migrator::new(tenantry_api::migrations())?.up(&db).await?;
            let identity = tenantry_api::identity(&db, &config).await?;
            let rotation = identity.rotate_keys().await?;
            eprintln!("new signing key: {}", rotation.kid);
            for (kid, until) in &rotation.retiring {
                eprintln!(
                    "previous key {kid} keeps verifying until {}",
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
            if rotation.deleted > 0 {
                eprintln!("deleted {} retired key(s)", rotation.deleted);
            }
            eprintln!(
                "running servers switch to the new key within {} s",
                tenantry_identity::RELOAD_INTERVAL.as_secs()
            );
            Ok(())
        }
        AdminAction::VerifyAudit => verify_audit(&config).await,
        AdminAction::SweepFiles { grace_secs } => sweep_files(&config, grace_secs).await,
    }
}

async fn sweep_files(config: &Config, grace_secs: Option<u64>) -> anyhow::Result<()> {
    let db = connect(config).await?;
    Migrator::new(tenantry_api::migrations())?
        .ensure_current(&db)
        .await?;
    let key = config.master_key()?;
    let files = tenantry_api::files_service(&db, config, &key)?;
    let grace =
        std::time::Duration::from_secs(grace_secs.unwrap_or(config.files.orphan_grace_secs));
    let report = files
        .sweep(&tenantry_db::AdminScope::for_housekeeping(), grace)
        .await
        .context("sweeping orphaned files")?;
    eprintln!(
        "swept (grace {} s): {} unreferenced file(s), {} orphaned object(s), \
         {} staged upload(s), {} incomplete upload(s)",
        grace.as_secs(),
        report.files,
        report.orphan_objects,
        report.staged_objects,
        report.incomplete_uploads
    );
    Ok(())
}

async fn verify_audit(config: &Config) -> anyhow::Result<()> {
    let db = connect(config).await?;
    Migrator::new(tenantry_api::migrations())?
        .ensure_current(&db)
        .await?;
    let report = tenantry_audit::verify(&db, &tenantry_db::AdminScope::for_housekeeping())
        .await
        .context("reading the audit trail")?;
    eprintln!(
        "verified {} chain(s), {} record(s)",
        report.chains, report.records
    );
    for broken in &report.breaks {
        let chain = match broken.tenant_id {
            Some(tenant) => format!("tenant {tenant}"),
            None if broken.chain_id == tenantry_audit::PLATFORM_CHAIN => "platform".to_owned(),
            None => format!("user {}", broken.chain_id),
        };
        eprintln!(
            "BROKEN chain {} ({chain}) at seq {}: {}",
            broken.chain_id, broken.seq, broken.reason
        );
    }
    if report.is_intact() {
        eprintln!("every chain is intact");
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} audit chain(s) broken",
            report.breaks.len(),
            report.chains
        )
    }
}
