//! Operations endpoints outside `/api/v1`: liveness, readiness, index, metrics, JWKS.

use std::time::Duration;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;
use tenantry_core::Problem;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use tenantry_http::Json;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(index))
        .routes(routes!(jwks))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Status)))]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers (503 otherwise).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Status), (status = 503, body = Problem)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Status>, Problem> {
    if let Err(error) = state.db.ping(Duration::from_secs(2)).await {
        tracing::warn!(error = %error, "readiness check failed");
        return Err(Problem::not_ready()
            .with_detail("the database is not reachable")
            .with_retry_after(1));
    }
    let storage = tokio::time::timeout(Duration::from_secs(2), state.files.store().check()).await;
    match storage {
        Ok(Ok(())) => Ok(Json(Status { status: "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "storage readiness check failed");
            Err(storage_not_ready())
        }
        Err(_) => {
            tracing::warn!("storage readiness check timed out");
            Err(storage_not_ready())
        }
    }
}

fn storage_not_ready() -> Problem {
    Problem::not_ready()
        .with_detail("the file storage is not reachable")
        .with_retry_after(1)
}

/// Name, version and links.
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, body = Object)))]
pub async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "name": "tenantry",
        "version": env!("CARGO_PKG_VERSION"),
        "links": {
            "api": "/api/v1",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "health": "/health",
            "ready": "/ready",
            "metrics": "/metrics",
            "jwks": "/.well-known/jwks.json",
        }
    }))
}

/// Public keys that verify Tenantry access tokens (JWKS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.identity.jwks()),
    )
}

/// Prometheus metrics: request counts and latency histograms by method, route template and
/// status, pool gauges. When `http.metrics_token` is configured, only with
/// `Authorization: Bearer <that token>` (else 401).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics_token" = [])),
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 401, description = "`http.metrics_token` is set and was not sent", body = Problem)))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    if let Some(token) = &state.config.http.metrics_token {
        metrics_authorized(&headers, token.expose_secret())?;
    }
    let stats = state.db.pool_stats();
    let backend = state.db.backend().name();
    metrics::gauge!("db_pool_connections", "backend" => backend, "state" => "open")
        .set(f64::from(stats.size));
    metrics::gauge!("db_pool_connections", "backend" => backend, "state" => "idle")
        .set(f64::from(stats.idle));
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}

/// The request carries `Authorization: Bearer <token>`; compared as SHA-256 digests in
/// constant time, so neither the token's bytes nor its length leak through timing.
fn metrics_authorized(headers: &HeaderMap, token: &str) -> Result<(), Problem> {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, sent)| sent.trim());
    let matches = sent.is_some_and(|sent| {
        bool::from(Sha256::digest(sent.as_bytes()).ct_eq(&Sha256::digest(token.as_bytes())))
    });
    if matches {
        Ok(())
    } else {
        Err(Problem::unauthenticated()
            .with_detail("send Authorization: Bearer <http.metrics_token>"))
    }
}
