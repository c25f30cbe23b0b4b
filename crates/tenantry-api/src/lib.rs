//! The assembly: every context's router merged under one OpenAPI document, the middleware,
//! idempotency and the operations endpoints (`state.rs` builds the state, `app.rs` serves it).
//!
//! [`Application::build`] turns a configuration into a bound listener and a router; the
//! binary and the integration tests both start Tenantry through it.

mod app;
pub mod config;
mod idempotency;
mod layers;
mod middleware;
mod openapi_errors;
mod routes;
mod schedule;
mod server;
mod state;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, header},
    response::IntoResponse,
};
pub use schedule::{prune_idempotency_keys, schedule};
use tenantry_core::Problem;
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

use crate::config::Config;
pub use crate::{
    app::Application,
    state::{
        AppState, Shared, build_state, build_state_with_clock, files_service, identity, migrations,
    },
};

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
    // The domain events (docs/events.md); each context's router adds the `data` schemas of
    // its events that no response uses.
    components(schemas(tenantry_events::CloudEvent)),
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
        .merge(tenantry_identity::http::router())
        .merge(tenantry_tenancy::http::router())
        .merge(tenantry_audit::http::router())
        .merge(tenantry_files::http::router())
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
