//! The accept loop: what `axum::serve` does (HTTP/1.1 and HTTP/2, upgrades, the peer address
//! for the per-IP limits, graceful drain), plus the limits a server facing the internet needs
//! and `axum::serve` does not offer:
//!
//! - a deadline for a request's head (`http.header_read_timeout_secs`), from the connection's
//!   start or the end of its previous answer: [`EdgeIo`]'s, one per connection, for the bytes
//!   that tell HTTP/1 from HTTP/2 and for every HTTP/1 head (hyper's own timer would cost a
//!   boxed sleep registered with the timer wheel per request);
//! - a cap on the connections one client address holds open (`http.max_connections_per_ip`);
//!   excess connections are closed at once, before a byte is read;
//! - problem+json bodies for the answers hyper writes by itself when a request head does not
//!   parse (400, 414, 431), which it sends with an empty body.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::{Request, Response, StatusCode},
    routing::future::RouteFuture,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tower::Service;

/// Connection-level settings of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    pub header_read_timeout: Duration,
    /// 0 = no cap.
    pub max_connections_per_ip: u32,
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting and waits for the
/// open connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    // Dropping the receiver tells every connection task to shut down gracefully.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    // Each connection task holds a receiver; the sender's `closed` waits for all of them.
    let (close_tx, close_rx) = watch::channel(());
    let limit = Arc::new(PerIpLimit::new(settings.max_connections_per_ip));
    let mut builder = Builder::new(TokioExecutor::new());
    // The head deadline is `EdgeIo`'s.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let Some(slot) = PerIpLimit::enter(&limit, peer.ip()) else {
            tracing::debug!(peer = %peer.ip(), "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        let progress = Arc::new(Progress::default());
        let service = Connection {
            app: app.clone(),
            peer,
            progress: progress.clone(),
        };
        let builder = builder.clone();
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        let io = TokioIo::new(EdgeIo::new(stream, settings.header_read_timeout, progress));
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(connection);
            let mut stopping = std::pin::pin!(signal_tx.closed());
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::trace!(error = %error, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut stopping, if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(slot);
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// What `axum::serve` does on an accept error: the peer's own failures are skipped; anything
/// else (out of file descriptors) is logged and waited out.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Open connections per client address (an IPv4 address, or an IPv6 /64: one subscriber's
/// share, as the rate limits count it).
#[derive(Debug)]
struct PerIpLimit {
    max: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection's place in [`PerIpLimit`], given back on drop.
struct Slot {
    limit: Arc<PerIpLimit>,
    key: IpAddr,
}

impl PerIpLimit {
    fn new(max: u32) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it holds the maximum. With no
    /// cap, an unlimited slot that costs nothing.
    fn enter(this: &Arc<Self>, ip: IpAddr) -> Option<Option<Slot>> {
        if this.max == 0 {
            return Some(None);
        }
        let key = tenantry_http::limits::ip_key(ip);
        let mut open = this.open.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= this.max {
            return None;
        }
        *count += 1;
        Some(Some(Slot {
            limit: this.clone(),
            key,
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What the application tells the socket about one connection's requests: a request head is
/// awaited while every request that started has finished. Relaxed atomics: on HTTP/1 both
/// sides run in the connection's task (only HTTP/2 streams, which the socket ignores here,
/// run elsewhere).
#[derive(Debug, Default)]
struct Progress {
    /// Requests handed to the application (their heads were complete).
    started: AtomicU64,
    /// Answers whose bodies hyper is done with.
    finished: AtomicU64,
    /// A `101 Switching Protocols` was answered: the socket no longer carries HTTP/1 heads.
    upgraded: AtomicBool,
}

/// The application as one connection's hyper service: the peer address for the per-IP limits,
/// and the [`Progress`] of its requests.
#[derive(Clone)]
struct Connection {
    app: Router,
    peer: SocketAddr,
    progress: Arc<Progress>,
}

impl hyper::service::Service<Request<Incoming>> for Connection {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Answer {
        self.progress.started.fetch_add(1, Ordering::Relaxed);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        // A `Router` is always ready: its `poll_ready` answers `Ready` without looking.
        let future = self.app.clone().call(request);
        Answer {
            future,
            progress: self.progress.clone(),
        }
    }
}

/// The application's answer, its body [`Tracked`].
struct Answer {
    future: RouteFuture<Infallible>,
    progress: Arc<Progress>,
}

impl Future for Answer {
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(Pin::new(&mut self.future).poll(cx))?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            self.progress.upgraded.store(true, Ordering::Relaxed);
        }
        let progress = self.progress.clone();
        Poll::Ready(Ok(response.map(|body| Tracked { body, progress })))
    }
}

/// An answer's body, which counts its request as finished when hyper drops it (written out,
/// or abandoned with the connection).
struct Tracked {
    body: Body,
    progress: Arc<Progress>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.progress.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// The HTTP/2 connection preface, which hyper reads to tell HTTP/1 from HTTP/2.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the bytes read so far say about the connection's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// They match the first `n` bytes of the HTTP/2 preface.
    Undecided(usize),
    Http1,
    /// HTTP/2 has no head deadline (hyper's HTTP/1 timer did not cover it either).
    Http2,
}

impl Protocol {
    /// After `read` more bytes arrived.
    fn after(self, read: &[u8]) -> Self {
        let Protocol::Undecided(matched) = self else {
            return self;
        };
        let rest = &H2_PREFACE[matched..];
        let n = read.len().min(rest.len());
        if read[..n] != rest[..n] {
            Protocol::Http1
        } else if matched + n == H2_PREFACE.len() {
            Protocol::Http2
        } else {
            Protocol::Undecided(matched + n)
        }
    }
}

/// The socket as hyper sees it. Reads: while a request head is awaited — from the start
/// until the protocol is known, and on HTTP/1 from the start and from the end of each
/// answer until the application gets the next request ([`Progress`]) — a read that would
/// wait fails once the header-read timeout has passed, which closes the connection without
/// an answer (a slow head, or an idle keep-alive connection). One deadline per connection,
/// moved forward as each answer ends.
/// Writes: an answer hyper makes up itself for a head it cannot parse — a 4xx status line
/// with `content-length: 0` and a date, nothing else — is replaced by the same status with
/// a problem+json body.
struct EdgeIo {
    inner: TcpStream,
    protocol: Protocol,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// `progress.finished` when the deadline was last set.
    deadline_after: u64,
    progress: Arc<Progress>,
    /// The replacement answer still to be written.
    pending: Vec<u8>,
}

impl EdgeIo {
    fn new(inner: TcpStream, timeout: Duration, progress: Arc<Progress>) -> Self {
        Self {
            inner,
            protocol: Protocol::Undecided(0),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            deadline_after: 0,
            progress,
            pending: Vec::new(),
        }
    }

    /// Whether a request head is awaited; the deadline is moved forward when the connection
    /// has become idle since it was set (then `Some(true)`).
    fn awaiting_head(&mut self) -> Option<bool> {
        match self.protocol {
            Protocol::Http2 => return None,
            Protocol::Undecided(_) => return Some(false),
            Protocol::Http1 => {}
        }
        let finished = self.progress.finished.load(Ordering::Relaxed);
        if self.progress.started.load(Ordering::Relaxed) != finished
            || self.progress.upgraded.load(Ordering::Relaxed)
        {
            return None;
        }
        if finished == self.deadline_after {
            return Some(false);
        }
        self.deadline_after = finished;
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(deadline);
        Some(true)
    }

    /// Writes what is left of the replacement answer; ready when nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if let Protocol::Undecided(_) = this.protocol {
                    this.protocol = this.protocol.after(&buf.filled()[before..]);
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if this.awaiting_head().is_some() && this.deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head too slow",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.drain(cx))?;
        if let Some(replacement) = problem_answer(buf) {
            this.pending = replacement;
            // hyper's bytes count as written; the replacement goes out in their place.
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.drain(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(replacement) = problem_answer(only)
        {
            this.pending = replacement;
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        // hyper flushes after each answer, and (without a timer of its own) need not read
        // again until the client sends: the deadline set here must wake the task.
        if self.awaiting_head() == Some(true) && self.deadline.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Longest automatic answer of hyper (status line, `content-length: 0`, `date`).
const MAX_AUTOMATIC_ANSWER: usize = 160;

/// The status of an answer hyper wrote by itself for an unparsable request head: exactly a
/// 4xx status line followed by nothing but `content-length: 0`, `date` and `connection`
/// headers. This crate's own error answers always carry a content type (they are problems,
/// see `middleware::problem_for_any_error`), so they never match.
fn automatic_error_status(buf: &[u8]) -> Option<u16> {
    if buf.len() > MAX_AUTOMATIC_ANSWER
        || !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4"))
    {
        return None;
    }
    let text = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => empty = value.trim() == "0",
            "date" | "connection" => {}
            _ => return None,
        }
    }
    empty.then_some(status)
}

/// The problem+json answer that replaces hyper's empty one in `buf`, if `buf` is one.
fn problem_answer(buf: &[u8]) -> Option<Vec<u8>> {
    let status = automatic_error_status(buf)?;
    let status = axum::http::StatusCode::from_u16(status).ok()?;
    let detail = match status {
        axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request's head has more than 100 header fields or is larger than 400 KiB"
        }
        axum::http::StatusCode::URI_TOO_LONG => "the request target is too long",
        _ => "the request's head could not be parsed",
    };
    let problem = crate::middleware::problem_for_status(status).with_detail(detail);
    let body = serde_json::to_vec(&problem).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        tenantry_core::problem::PROBLEM_CONTENT_TYPE,
        body.len(),
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_answers_are_replaced() {
        let automatic = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_error_status(automatic), Some(431));
        let answer = String::from_utf8(problem_answer(automatic).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(answer.contains("content-type: application/problem+json\r\n"));
        assert!(answer.ends_with('}'));
        assert!(
            answer.contains(r#""code":"header_fields_too_large""#),
            "{answer}"
        );
        for other in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(automatic_error_status(other), None, "{other:?}");
        }
    }
}
