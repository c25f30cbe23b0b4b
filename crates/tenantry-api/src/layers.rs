//! The plain tower layers of the router's stack: request ids and security headers on every
//! exchange, and the switch that gives a middleware only the requests it acts on.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::Response,
};
use tower::{Layer, Service, ServiceExt};

use crate::middleware::BoxResponseFuture;

/// The request id header, echoed on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen `X-Request-Id` kept.
pub const MAX_REQUEST_ID: usize = 128;

/// Headers every answer carries unless its handler set them.
const SECURITY_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Adds [`EdgeHeaders`] to every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeHeadersLayer;

impl<S> Layer<S> for EdgeHeadersLayer {
    type Service = EdgeHeaders<S>;

    fn layer(&self, inner: S) -> EdgeHeaders<S> {
        EdgeHeaders { inner }
    }
}

/// Gives every request an id and every answer the id and the [`SECURITY_HEADERS`]. A
/// client's `X-Request-Id` is kept when it is one value of 1 to [`MAX_REQUEST_ID`] visible
/// ASCII characters (the id is echoed, logged and stored with sessions and audit records);
/// otherwise a new UUID replaces it. One layer for what tower-http's request-id and
/// set-header layers did in five.
#[derive(Debug, Clone)]
pub struct EdgeHeaders<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for EdgeHeaders<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Unpin,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = EdgeHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = match fit_request_id(request.headers()) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        EdgeHeadersFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

/// The client's request id, when it is one that fits.
fn fit_request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut ids = headers.get_all(X_REQUEST_ID).iter();
    // Several ids are as unfit as a bad one.
    match (ids.next(), ids.next()) {
        (Some(id), None)
            if (1..=MAX_REQUEST_ID).contains(&id.len())
                && id.as_bytes().iter().all(u8::is_ascii_graphic) =>
        {
            Some(id)
        }
        _ => None,
    }
}

/// A random (v4) UUID, in one shared buffer for the request and the answer.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(axum::body::Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The answer of [`EdgeHeaders`].
pub struct EdgeHeadersFuture<F> {
    inner: F,
    id: Option<HeaderValue>,
}

impl<F, R, E> Future for EdgeHeadersFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut response = std::task::ready!(Pin::new(&mut self.inner).poll(cx))?;
        let headers = response.headers_mut();
        if let Some(id) = self.id.take() {
            headers.entry(X_REQUEST_ID).or_insert(id);
        }
        for (name, value) in SECURITY_HEADERS {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        }
        Poll::Ready(Ok(response))
    }
}

/// Applies `layer` only to POST requests that carry `header`; every other request goes
/// straight to the inner service. For the idempotency middleware, which acts on nothing
/// else: the others skip what a `from_fn` middleware costs (a boxed clone of the route, a
/// boxed future).
#[derive(Debug, Clone)]
pub struct PostsWithHeader<L> {
    pub header: HeaderName,
    pub layer: L,
}

impl<L: Clone, S> Layer<S> for PostsWithHeader<L> {
    type Service = PostsWithHeaderService<L, S>;

    fn layer(&self, inner: S) -> Self::Service {
        PostsWithHeaderService {
            header: self.header.clone(),
            layer: self.layer.clone(),
            inner,
        }
    }
}

/// The service of [`PostsWithHeader`].
#[derive(Debug, Clone)]
pub struct PostsWithHeaderService<L, S> {
    header: HeaderName,
    layer: L,
    inner: S,
}

impl<L, S> Service<Request> for PostsWithHeaderService<L, S>
where
    L: Layer<S>,
    L::Service: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    <L::Service as Service<Request>>::Future: Send,
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxResponseFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == http::Method::POST && request.headers().contains_key(&self.header) {
            let layered = self.layer.layer(self.inner.clone());
            Either::Right(Box::pin(layered.oneshot(request)))
        } else {
            Either::Left(self.inner.call(request))
        }
    }
}

/// One of two futures with the same output.
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<A, B> Future for Either<A, B>
where
    A: Future + Unpin,
    B: Future<Output = A::Output> + Unpin,
{
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.get_mut() {
            Either::Left(a) => Pin::new(a).poll(cx),
            Either::Right(b) => Pin::new(b).poll(cx),
        }
    }
}
