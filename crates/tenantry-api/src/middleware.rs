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
    /// For uploads, whose body streams to storage for as long as the client sends it.
    pub upload_timeout: Duration,
}

impl ObserveConfig {
    fn timeout_for(&self, method: &axum::http::Method, route: &str) -> Duration {
        if method == axum::http::Method::POST && route == crate::routes::documents::UPLOAD_ROUTE {
            self.upload_timeout
        } else {
            self.timeout
        }
    }
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
        config.timeout_for(&method, &route),
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
        (
            "method",
            metrics::SharedString::from(static_method(&method)),
        ),
        ("route", metrics::SharedString::from(route)),
        ("status", metrics::SharedString::from(static_status(status))),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(latency.as_secs_f64());
    response
}

fn static_method(method: &http::Method) -> std::borrow::Cow<'static, str> {
    match *method {
        http::Method::GET => "GET".into(),
        http::Method::POST => "POST".into(),
        http::Method::PUT => "PUT".into(),
        http::Method::PATCH => "PATCH".into(),
        http::Method::DELETE => "DELETE".into(),
        http::Method::OPTIONS => "OPTIONS".into(),
        http::Method::HEAD => "HEAD".into(),
        ref other => other.as_str().to_owned().into(),
    }
}

/// Metric labels without an allocation for the statuses this API answers.
fn static_status(status: u16) -> std::borrow::Cow<'static, str> {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (402, "402"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    KNOWN
        .iter()
        .find(|(code, _)| *code == status)
        .map_or_else(|| status.to_string().into(), |(_, s)| (*s).into())
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
