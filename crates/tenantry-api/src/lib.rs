//! The HTTP API: router assembly, extractors, middleware and the OpenAPI document.
//!
//! [`Application::build`] turns a configuration into a bound listener and a router; the
//! binary and the integration tests both start Tenantry through it.

pub mod extract;
mod idempotency;
mod layers;
mod middleware;
mod openapi_errors;
mod routes;
mod schedule;
mod server;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context;
use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, header},
    response::IntoResponse,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
pub use schedule::{prune_idempotency_keys, schedule};
use secrecy::ExposeSecret;
use tenantry_core::{Email, Password, Problem, config::Config, crypto::MasterKey};
use tenantry_db::{
    Db,
    migrate::{Migration, Migrator},
};
use tenantry_http::Limits;
use tenantry_identity::Identity;
use tenantry_notify::Mailer;
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

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

/// What context routers take from the state (`State<T>`).
macro_rules! from_state {
    ($($field:ident: $ty:ty),* $(,)?) => {$(
        impl axum::extract::FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

from_state!(
    db: Db,
    identity: Identity,
    files: tenantry_files::Files,
    limits: Arc<Limits>,
    gatekeeper: tenantry_tenancy::http::Gatekeeper,
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenantry",
        description = "Multi-tenant SaaS backend: identity, tenants, roles and projects.\n\n\
            Errors are RFC 9457 problem details (`application/problem+json`, schema `Problem`) with \
            a stable `code`; every operation lists the error statuses it can answer (the shared \
            ones are in `components.responses`).\n\
            Lists take `limit` (1–200, default 50) and `cursor`, and answer `{items, next_cursor}`.\n\
            An id of another tenant's object answers exactly like an id that does not exist (404).",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    // The domain events and the `data` schemas of theirs no response uses (docs/events.md).
    components(schemas(
        tenantry_events::CloudEvent,
        tenantry_files::DocumentUploaded,
        tenantry_files::DocumentDeleted,
    )),
    tags(
        (name = "identity", description = "Accounts, sessions and tokens"),
        (name = "tenancy", description = "Tenants, members, roles and projects"),
        (name = "audit", description = "The audit trail: who changed what, from where, with what outcome"),
        (name = "operations", description = "Health, readiness, metrics and keys"),
        (name = "admin", description = "Platform administration (platform administrators only)"),
        (name = "files", description = "Documents and their stored files, downloads and storage usage"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /api/v1/auth/login, or a token of an external \
                         OpenID Connect issuer configured in `auth.oidc` (e.g. Auth0), verified \
                         against the issuer's JWKS (or, later, an API key `tnt_…`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `http.metrics_token` of the configuration, when one is set",
                    ))
                    .build(),
            ),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::ops::router())
        .merge(routes::auth::router())
        .merge(routes::recovery::router())
        .merge(routes::users::router())
        .merge(routes::account::router())
        .merge(routes::mfa::router())
        .merge(routes::tenants::router())
        .merge(routes::members::router())
        .merge(routes::projects::router())
        .merge(routes::roles::router())
        .merge(routes::project_members::router())
        .merge(routes::api_keys::router())
        .merge(routes::invitations::router())
        .merge(tenantry_audit::http::router())
        .merge(routes::settings::router())
        .merge(routes::admin::router())
        .merge(routes::documents::router())
        .merge(routes::files::router())
        .merge(routes::downloads::router())
}

/// The API routes and their OpenAPI document (with what the middleware adds to every
/// operation), and the POST routes that take an `Idempotency-Key`.
fn api_parts() -> (
    Router<AppState>,
    utoipa::openapi::OpenApi,
    std::collections::HashSet<String>,
) {
    let (api, mut openapi) = api_router().split_for_parts();
    let idempotent = idempotency::document(&mut openapi);
    // After the idempotency header is in: it adds statuses of its own.
    openapi_errors::document(&mut openapi);
    (api, openapi, idempotent)
}

/// The OpenAPI 3.1 document, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_parts().1
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

fn cors(config: &Config) -> CorsLayer {
    let origins = &config.http.cors_allowed_origins;
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            idempotency::HEADER,
            layers::X_REQUEST_ID,
        ])
        .expose_headers([
            layers::X_REQUEST_ID,
            header::RETRY_AFTER,
            idempotency::REPLAYED,
        ])
        .max_age(Duration::from_secs(600))
}

/// Builds the complete router for `state`.
///
/// The middleware is one stack applied with one `Router::layer`: each `layer` call wraps every
/// route in another boxed service, and a request then clones every level below the one it
/// passes (the stack of ten single layers cost more than the handler of `/users/me`).
pub fn router(state: AppState) -> Router {
    let (api, openapi, idempotent) = api_parts();
    let body_limit = state.config.http.body_limit_bytes;
    let observe = middleware::ObserveConfig {
        timeout: Duration::from_secs(state.config.http.request_timeout_secs.max(1)),
        upload_timeout: Duration::from_secs(state.config.files.upload_timeout_secs.max(1)),
        upload_idle_timeout: Duration::from_secs(
            state.config.files.upload_idle_timeout_secs.max(1),
        ),
        body_limit: u64::try_from(body_limit).unwrap_or(u64::MAX),
        upload_body_limit: state
            .config
            .files
            .max_upload_bytes
            .saturating_add(middleware::UPLOAD_FORM_OVERHEAD),
    };
    // Outermost first.
    let stack = tower::ServiceBuilder::new()
        .layer(layers::EdgeHeadersLayer)
        .layer(cors(&state.config))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::ObserveLayer::new(observe))
        .layer(layers::PostsWithHeader {
            header: idempotency::HEADER,
            layer: axum::middleware::from_fn_with_state(
                idempotency::Layer {
                    state: state.clone(),
                    routes: Arc::new(idempotent),
                },
                idempotency::middleware,
            ),
        });
    // The documentation page runs scripts: only its own, from this origin.
    let docs: Router<AppState> = Router::from(
        SwaggerUi::new("/docs").url("/openapi.json", openapi),
    )
    .layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ));
    api.merge(docs)
        .fallback(|| async {
            Problem::not_found()
                .with_detail("no such route")
                .into_response()
        })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed().into_response() })
        .layer(stack)
        .with_state(state)
}

/// Content-Security-Policy of `/docs`: Swagger UI's own scripts and styles (it sets inline
/// styles), its inline SVG icons, and calls to this origin only; no framing.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Connects to the database, applies migrations (if configured), loads keys and creates the
/// bootstrap administrator.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let url = config.effective_database_url();
    let db = Db::connect(url.expose_secret(), &config.database).await?;
    let migrator = Migrator::new(migrations())?;
    if config.database.migrate_on_start {
        migrator.up(&db).await.context("migrating the database")?;
    } else {
        migrator.ensure_current(&db).await?;
    }
    let key = MasterKey::load_or_create(&config)?;
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
    let storage = tenantry_storage::StorageConfig::from_config(config)?;
    let store = tenantry_storage::BlobStore::open(&storage).context("opening the blob store")?;
    let signer = tenantry_storage::UrlSigner::new(&key.mac("tenantry/v1/download-url-key", b""))
        .context("download URL signing key")?;
    let settings = tenantry_files::FilesSettings {
        max_upload_bytes: config.files.max_upload_bytes,
        quota_bytes: config.files.quota_bytes,
        download_ttl: Duration::from_secs(config.files.download_url_ttl_secs.max(1)),
        orphan_grace: Duration::from_secs(config.files.orphan_grace_secs),
        public_url: config.effective_public_url(),
    };
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
    identity_with_key(db, config, MasterKey::load_or_create(config)?).await
}

async fn identity_with_key(db: &Db, config: &Config, key: MasterKey) -> anyhow::Result<Identity> {
    if config.secret_key.is_none() && db.backend() == tenantry_db::Backend::Postgres {
        tracing::warn!(
            "TENANTRY_SECRET_KEY is not set: using the key file under the data directory; \
             every node must use the same key, so configure it explicitly in production"
        );
    }
    let mailer = Mailer::new(db.clone(), config, key.clone())?;
    Identity::new(db.clone(), config, key, mailer).await
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

/// Background tasks that end with the server, however it ends.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A built server, bound and ready to accept connections.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let bind = config.bind;
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        // With port 0 the system picked one: links built from the listening address
        // (`effective_public_url`) must name it.
        config.bind = listener.local_addr().context("the bound address")?;
        let state = build_state(config).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (bounded by `http.shutdown_grace_secs`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.http.shutdown_grace_secs);
        let settings = server::ServeSettings {
            header_read_timeout: Duration::from_secs(
                self.state.config.http.header_read_timeout_secs.max(1),
            ),
            max_connections_per_ip: self.state.config.http.max_connections_per_ip,
        };
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // Periodic work (mail delivery, pruning, purges, sweeps) stops with the server.
        let periodic = schedule(&self.state).spawn(stopped(stopping.clone()));
        // Signing-key rotations made elsewhere (CLI, other nodes) arrive without a restart.
        let keys = tokio::spawn(self.state.identity.refresh_keys_forever());
        // Best effort: an external issuer that is down does not delay or fail the start.
        let identity = self.state.identity.clone();
        let oidc_prefetch = tokio::spawn(async move { identity.prefetch_external_keys().await });
        let app = router(self.state);
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
            let _ = stopped_tx.send(());
        };
        let _background = AbortOnDrop(vec![periodic, keys, oidc_prefetch]);
        let server = tokio::spawn(server::serve(self.listener, app, settings, signal));
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => return result.context("server task"),
            _ = stopped_rx => {}
        }
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => result.context("server task"),
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "in-flight requests did not finish in time"
                );
                Ok(())
            }
        }
    }
}
