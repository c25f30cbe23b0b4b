//! Cross-cutting request handling: access log, metrics, timeouts, declared body sizes, and
//! problem+json for every error answer.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use parking_lot::RwLock;
use tenantry_core::{Problem, problem::ProblemCode};
use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};

/// Per-request settings the middleware needs.
#[derive(Debug, Clone, Copy)]
pub struct ObserveConfig {
    pub timeout: Duration,
    /// For uploads, whose body streams to storage for as long as the client sends it.
    pub upload_timeout: Duration,
    /// Longest pause between two chunks of an upload's body.
    pub upload_idle_timeout: Duration,
    /// Largest body a route other than the upload reads (`http.body_limit_bytes`).
    pub body_limit: u64,
    /// Largest upload body: the file limit plus room for the form's other parts.
    pub upload_body_limit: u64,
}

/// Room in an upload's body beyond the file itself: boundaries, part headers and the small
/// text fields (at most 8 parts of at most 1 KiB each).
pub const UPLOAD_FORM_OVERHEAD: u64 = 64 * 1024;

fn is_upload(method: &axum::http::Method, route: &str) -> bool {
    method == axum::http::Method::POST && route == tenantry_files::http::UPLOAD_ROUTE
}

/// The declared `Content-Length`, when there is one that parses.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Adds [`Observe`] to every route.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    config: ObserveConfig,
    series: Arc<SeriesCache>,
}

impl ObserveLayer {
    pub fn new(config: ObserveConfig) -> Self {
        Self {
            config,
            series: Arc::default(),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            config: self.config,
            series: self.series.clone(),
            inner,
        }
    }
}

/// Wraps every request in a span (request id, route, user and tenant ids as they become
/// known), refuses bodies declared larger than the route reads, enforces the request timeout
/// (and the pause limit of upload bodies), turns any error answer that is not a problem yet
/// into one, writes one access-log line and records metrics.
///
/// A service of its own rather than `axum::middleware::from_fn`, which boxes a clone of the
/// inner service (its `Next`) besides the future, for every request.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    config: ObserveConfig,
    series: Arc<SeriesCache>,
    inner: S,
}

pub(crate) type BoxResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> BoxResponseFuture {
        let started = Instant::now();
        let config = self.config;
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let route_label = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let upload = is_upload(&method, route_label);
        // The field values are only evaluated when the span is enabled.
        let span = tracing::info_span!(
            "request",
            request_id = %request
                .headers()
                .get(crate::layers::X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            method = %method,
            route = %route_label,
            user_id = Empty,
            tenant_id = Empty,
        );
        let (timeout, limit) = if upload {
            (config.upload_timeout, config.upload_body_limit)
        } else {
            (config.timeout, config.body_limit)
        };
        // A body declared larger than the route reads is refused before it is read (so hyper
        // sends no `100 Continue` and the client does not upload it in vain).
        let too_large = declared_length(&request).is_some_and(|length| length > limit);
        let stalled = upload.then(|| {
            let stalled = Arc::new(AtomicBool::new(false));
            let watched = stalled.clone();
            let pause = config.upload_idle_timeout;
            request = std::mem::take(&mut request)
                .map(|body| Body::new(IdleTimeout::new(body, pause, watched)));
            stalled
        });
        let answer = if too_large {
            None
        } else {
            Some(span.in_scope(|| self.inner.call(request)))
        };
        let series = self.series.clone();
        Box::pin(async move {
            let response = match answer {
                None => Problem::payload_too_large()
                    .with_detail(format!(
                        "the declared body is larger than this route accepts ({limit} bytes)"
                    ))
                    .into_response(),
                Some(answer) => {
                    match tokio::time::timeout(timeout, answer.instrument(span.clone())).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => {
                            let _entered = span.enter();
                            tracing::warn!("request timed out");
                            Problem::not_ready()
                                .with_detail("the request took too long")
                                .with_retry_after(1)
                                .into_response()
                        }
                    }
                }
            };
            let response = match stalled {
                Some(stalled) if stalled.load(Ordering::Relaxed) => Problem::request_timeout()
                    .with_detail(format!(
                        "the upload's body paused longer than {} s",
                        config.upload_idle_timeout.as_secs()
                    ))
                    .into_response(),
                _ => response,
            };
            let response = problem_for_any_error(response).await;
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
            series.record(
                static_method(&method),
                route.as_ref().map_or("unmatched", MatchedPath::as_str),
                static_status(status),
                latency.as_secs_f64(),
            );
            Ok(response)
        })
    }
}

/// The request counter and latency histogram of each (method, route, status) series,
/// registered once: registering a series with the recorder (building its key with owned
/// labels, hashing it, finding it in the registry), as `metrics::counter!` does on every
/// call, costs more than the rest of the middleware together. The exporter removes no idle
/// series (no `idle_timeout`), so the handles stay the ones `/metrics` renders.
#[derive(Debug, Default)]
struct SeriesCache(RwLock<HashMap<String, Vec<Series>>>);

#[derive(Debug)]
struct Series {
    method: &'static str,
    status: &'static str,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl SeriesCache {
    fn record(&self, method: &'static str, route: &str, status: &'static str, seconds: f64) {
        let matches = |s: &Series| s.method == method && s.status == status;
        if let Some(series) = self
            .0
            .read()
            .get(route)
            .and_then(|all| all.iter().find(|s| matches(s)))
        {
            series.requests.increment(1);
            series.duration.record(seconds);
            return;
        }
        let mut map = self.0.write();
        let all = map.entry(route.to_owned()).or_default();
        if !all.iter().any(matches) {
            let labels = [
                ("method", metrics::SharedString::const_str(method)),
                ("route", metrics::SharedString::from(route.to_owned())),
                ("status", metrics::SharedString::const_str(status)),
            ];
            all.push(Series {
                method,
                status,
                requests: metrics::counter!("http_requests_total", &labels),
                duration: metrics::histogram!("http_request_duration_seconds", &labels),
            });
        }
        if let Some(series) = all.iter().find(|s| matches(s)) {
            series.requests.increment(1);
            series.duration.record(seconds);
        }
    }
}

/// The method label: one of a fixed set, so clients cannot mint new metric series (any
/// other method, which the router refuses anyway, counts as `OTHER`).
fn static_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// The status label: the statuses this API answers, else the status class (`4xx`), so the
/// label takes a bounded set of values.
fn static_status(status: u16) -> &'static str {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (206, "206"),
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
        (416, "416"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (503, "503"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
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

/// The problem an error status stands for, for answers that are not problems yet.
pub(crate) fn problem_for_status(status: StatusCode) -> Problem {
    let mut problem = match status {
        StatusCode::UNAUTHORIZED => Problem::unauthenticated(),
        StatusCode::FORBIDDEN => Problem::forbidden(),
        StatusCode::NOT_FOUND => Problem::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => Problem::method_not_allowed(),
        StatusCode::REQUEST_TIMEOUT => Problem::request_timeout(),
        StatusCode::CONFLICT => Problem::conflict(),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(),
        StatusCode::URI_TOO_LONG => Problem::uri_too_long(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::unsupported_media_type(),
        StatusCode::RANGE_NOT_SATISFIABLE => Problem::range_not_satisfiable(),
        StatusCode::UNPROCESSABLE_ENTITY => Problem::validation_failed(),
        StatusCode::TOO_MANY_REQUESTS => Problem::rate_limited(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Problem::header_fields_too_large(),
        StatusCode::SERVICE_UNAVAILABLE => Problem::not_ready(),
        s if s.is_server_error() => Problem::internal(),
        _ => Problem::malformed(),
    };
    // Other 4xx/5xx keep their status under the class's generic code.
    problem.status = status;
    problem
}

/// Longest plain-text error body kept as a problem's `detail`.
const MAX_DETAIL: usize = 512;

/// Every error answer is `application/problem+json`: the ones the handlers and extractors of
/// this crate produce already are (they carry a [`ProblemCode`], or the content type when
/// replayed from storage); anything else — a rejection
/// of an axum extractor (path, multipart), a status from a library layer — is rewritten here,
/// keeping its status, its headers (`Allow`, `Retry-After`) and its plain-text message as the
/// `detail`. Success answers pass untouched.
async fn problem_for_any_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ProblemCode>().is_some()
    {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A problem without the extension: one replayed from storage (idempotency).
    if content_type.starts_with(tenantry_core::problem::PROBLEM_CONTENT_TYPE) {
        return response;
    }
    let text = content_type.starts_with("text/plain");
    let (mut parts, body) = response.into_parts();
    let mut problem = problem_for_status(status);
    if text && let Ok(bytes) = axum::body::to_bytes(body, MAX_DETAIL).await {
        let detail = String::from_utf8_lossy(&bytes).trim().to_owned();
        if !detail.is_empty() {
            problem = problem.with_detail(detail);
        }
    }
    let problem = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(tenantry_core::problem::PROBLEM_CONTENT_TYPE),
    );
    let (problem_parts, body) = problem.into_parts();
    parts.extensions.extend(problem_parts.extensions);
    Response::from_parts(parts, body)
}

/// An upload body that fails when the client pauses longer than `pause` between chunks
/// (and records that it did, so the answer can say so).
struct IdleTimeout {
    inner: Body,
    pause: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    stalled: Arc<AtomicBool>,
}

impl IdleTimeout {
    fn new(inner: Body, pause: Duration, stalled: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            pause,
            sleep: Box::pin(tokio::time::sleep(pause)),
            stalled,
        }
    }
}

/// The error an upload body ends with when the client paused too long.
#[derive(Debug)]
struct BodyStalled;

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body paused too long")
    }
}

impl std::error::Error for BodyStalled {}

impl http_body::Body for IdleTimeout {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.pause;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.stalled.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(BodyStalled))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
