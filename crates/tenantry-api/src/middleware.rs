//! Cross-cutting request handling: access log, metrics, timeout, security headers.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tenantry_core::{Problem, problem::ProblemCode};
use tracing::{Instrument, field::Empty};

/// Per-request settings the middleware needs.
#[derive(Debug, Clone, Copy)]
pub struct ObserveConfig {
    pub timeout: Duration,
}

/// Wraps every request in a span (request id, route, user and tenant ids as they become
/// known), enforces the request timeout, writes one access-log line and records metrics.
pub async fn observe(
    State(config): State<ObserveConfig>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        user_id = Empty,
        tenant_id = Empty,
    );
    let response = match tokio::time::timeout(
        config.timeout,
        next.run(request).instrument(span.clone()),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => {
            let _entered = span.enter();
            tracing::warn!("request timed out");
            Problem::not_ready()
                .with_detail("the request took too long")
                .with_retry_after(1)
                .into_response()
        }
    };
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let code = response.extensions().get::<ProblemCode>().map(|c| c.0);
    span.in_scope(|| {
        tracing::info!(
            target: "tenantry::access",
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            code,
            "request"
        );
    });
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(latency.as_secs_f64());
    response
}

/// The answer for a handler that panicked: logged, then an opaque 500.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    Problem::internal().into_response()
}
