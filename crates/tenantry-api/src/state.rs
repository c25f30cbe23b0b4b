//! The application state: every context's service, built from the configuration, and what
//! context routers take from it (`Gate`, `FromRef`).

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use tenantry_core::{Clock, Email, Password, crypto::MasterKey};
use tenantry_db::{
    Db,
    migrate::{Migration, Migrator},
};
use tenantry_http::Limits;
use tenantry_identity::Identity;
use tenantry_notify::Mailer;

use crate::{config::Config, idempotency};

/// Everything handlers share; one pointer to clone per request.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub db: Db,
    pub identity: Identity,
    pub config: Config,
    pub metrics: PrometheusHandle,
    /// Shared with the rate-limiter upkeep task.
    pub limits: Arc<Limits>,
    /// The authorization layer: the only issuer of scopes.
    pub gatekeeper: tenantry_tenancy::http::Gatekeeper,
    pub idempotency: idempotency::Idempotency,
    pub files: tenantry_files::Files,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The shared extractors authenticate with identity and authorize with tenancy.
impl tenantry_http::Gate for AppState {
    type Authn = Identity;
    type Authz = tenantry_tenancy::http::Gatekeeper;
    fn authn(&self) -> &Identity {
        &self.identity
    }
    fn authz(&self) -> &Self::Authz {
        &self.gatekeeper
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// What context routers take from the state (`State<T>`), each from its place in it.
macro_rules! from_state {
    ($($($field:ident).+: $ty:ty),* $(,)?) => {$(
        impl axum::extract::FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.$($field).+.clone()
            }
        }
    )*};
}

from_state!(
    db: Db,
    identity: Identity,
    files: tenantry_files::Files,
    limits: Arc<Limits>,
    // Tenancy's invitation limits: four numbers, cloned per request that sends an invitation.
    config.tenancy: tenantry_tenancy::TenancyConfig,
);

/// All migrations of all contexts, in the order they apply.
pub fn migrations() -> Vec<Migration> {
    [
        tenantry_db::migrations::MIGRATIONS,
        tenantry_notify::migrations::MIGRATIONS,
        tenantry_identity::migrations::MIGRATIONS,
        tenantry_tenancy::migrations::MIGRATIONS,
        tenantry_audit::migrations::MIGRATIONS,
        idempotency::migrations::MIGRATIONS,
        tenantry_events::migrations::MIGRATIONS,
        tenantry_files::migrations::MIGRATIONS,
    ]
    .concat()
}

/// Connects to the database, applies migrations (if configured), loads keys and creates the
/// bootstrap administrator.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    build_state_with_clock(config, Clock::system()).await
}

/// [`build_state`] with every service reading the time from `clock` (a test's
/// `ManualClock`, advanced instead of sleeping).
pub async fn build_state_with_clock(config: Config, clock: Clock) -> anyhow::Result<AppState> {
    let url = config.effective_database_url();
    let db = Db::connect(url.expose_secret(), &config.database)
        .await?
        .with_clock(clock);
    let migrator = Migrator::new(migrations())?;
    if config.database.migrate_on_start {
        migrator.up(&db).await.context("migrating the database")?;
    } else {
        migrator.ensure_current(&db).await?;
    }
    let key = config.master_key()?;
    let identity = identity_with_key(&db, &config, key.clone()).await?;
    bootstrap_admin(&identity, &config).await?;
    let files = files_service(&db, &config, &key)?;
    let idempotency = idempotency::Idempotency::new(
        db.clone(),
        key,
        Duration::from_secs(config.http.request_timeout_secs.max(1)),
        Duration::from_secs(config.http.idempotency_wait_secs),
    );
    Ok(AppState(Arc::new(Shared {
        gatekeeper: tenantry_tenancy::http::Gatekeeper::new(db.clone()),
        db,
        identity,
        idempotency,
        limits: Arc::new(Limits::new(&config.rate_limits)),

        files,
        config,
        metrics: metrics_handle()?,
    })))
}

/// The files service: the configured blob store and the signer of local download URLs (a
/// subkey of the data key, so every node signs alike). Also used by the CLI.
pub fn files_service(
    db: &Db,
    config: &Config,
    key: &MasterKey,
) -> anyhow::Result<tenantry_files::Files> {
    let storage = tenantry_storage::StorageConfig::resolve(
        config.storage_url.as_deref(),
        &config.s3,
        &config.data_dir,
    )?;
    let store = tenantry_storage::BlobStore::open(&storage).context("opening the blob store")?;
    let signer = tenantry_storage::UrlSigner::new(&key.mac("tenantry/v1/download-url-key", b""))
        .context("download URL signing key")?;
    let settings = tenantry_files::FilesSettings::new(&config.files, config.effective_public_url());
    Ok(tenantry_files::Files::new(
        db.clone(),
        store,
        signer,
        settings,
        // Projects are tenancy's; files runs its statement.
        tenantry_tenancy::project_in_tenant,
    ))
}

/// The identity service with its data key and mailer (also used by the CLI).
pub async fn identity(db: &Db, config: &Config) -> anyhow::Result<Identity> {
    identity_with_key(db, config, config.master_key()?).await
}

async fn identity_with_key(db: &Db, config: &Config, key: MasterKey) -> anyhow::Result<Identity> {
    if config.secret_key.is_none() && db.backend() == tenantry_db::Backend::Postgres {
        tracing::warn!(
            "TENANTRY_SECRET_KEY is not set: using the key file under the data directory; \
             every node must use the same key, so configure it explicitly in production"
        );
    }
    let public_url = config.effective_public_url();
    let mailer = Mailer::new(
        db.clone(),
        &config.mail,
        config.smtp_url.as_ref(),
        &config.data_dir,
        &public_url,
        key.clone(),
    )?;
    Identity::new(
        db.clone(),
        &config.auth,
        config.effective_issuer(),
        &public_url,
        key,
        mailer,
    )
    .await
}

async fn bootstrap_admin(identity: &Identity, config: &Config) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (
        &config.bootstrap_admin_email,
        &config.bootstrap_admin_password,
    ) else {
        return Ok(());
    };
    if identity.has_platform_admin().await? {
        return Ok(());
    }
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("bootstrap_admin_email {e}"))?;
    let password = Password::parse(password.expose_secret())
        .map_err(|e| anyhow::anyhow!("bootstrap_admin_password {e}"))?;
    // Someone may have registered this address before the operator configured it: promote
    // an existing account only when the configured password proves it is the operator's.
    if identity.user_by_email(&email).await?.is_some()
        && identity
            .check_credentials(email.as_str(), password.expose())
            .await?
            .is_none()
    {
        tracing::warn!(
            "bootstrap administrator not created: an account with that e-mail already exists \
             and the configured password does not match it"
        );
        return Ok(());
    }
    let (user, _) = identity
        .create_superuser(email, password)
        .await
        .map_err(|e| anyhow::anyhow!("creating the bootstrap administrator: {e}"))?;
    tracing::info!(user_id = %user.id, "bootstrap platform administrator created");
    Ok(())
}

/// The process-wide Prometheus recorder (installed once; several apps in one test process
/// share it).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".to_owned()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )
        .context("configuring metrics")?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle.clone()).is_ok() {
        metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
        // Histograms buffer raw samples until upkeep folds them into buckets; without it
        // memory grows between scrapes.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(handle)
    } else {
        HANDLE.get().cloned().context("metrics recorder")
    }
}
