//! `Idempotency-Key` on POST (API.md, Conventions): the first response of a request is
//! stored per (tenant, caller, key) for 24 hours and replayed to retries; the same key with
//! another request answers 422 `idempotency_key_reused`.
//!
//! The middleware covers the POST operations that require a bearer credential (anonymous ones
//! such as login ignore the header: their responses carry credentials that a replay would
//! hand to whoever holds the key). It resolves the caller (and, on tenant routes, the
//! authorized tenant scope, which the handler's extractor then reuses), reserves the key,
//! runs the handler under an [`tenantry_db::EffectMark`] so its writes commit together with
//! the reservation's "applied" record, and stores the response. Concurrent requests with the
//! same key wait for the first and replay its response. Design and trade-offs:
//! `docs/adr/0008-idempotency-keys.md`.

pub mod migrations;
mod openapi;
mod store;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, HttpBody},
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use tenantry_core::{Problem, crypto::MasterKey};
use tenantry_db::{Actor, Db};
use tokio::sync::Notify;
use uuid::Uuid;

pub use openapi::document;
pub use store::prune;
use store::{Owner, Reservation, State as KeyState, Store, Stored};

use tenantry_http::{Caller, TenantCtx};

use crate::AppState;

/// The request header.
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on replayed responses.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Largest response stored for replay; a larger one is answered but not kept.
const MAX_STORED_BODY: u64 = 4 * 1024 * 1024;

/// Shared state: the store and the requests waiting on a key held on this node.
#[derive(Debug)]
pub struct Idempotency {
    store: Store,
    waiters: Waiters,
    wait: Duration,
}

impl Idempotency {
    /// `request_timeout`: no request runs longer, so a reservation older than it (plus a
    /// margin for clock skew between nodes) belongs to a request that is gone.
    pub fn new(db: Db, key: MasterKey, request_timeout: Duration, wait: Duration) -> Self {
        Self {
            store: Store::new(db, key, request_timeout + Duration::from_secs(10)),
            waiters: Waiters::default(),
            wait,
        }
    }
}

/// What the middleware needs: the application and the routes it covers.
#[derive(Debug, Clone)]
pub struct Layer {
    pub state: AppState,
    /// Path templates of the covered POST operations (from the OpenAPI document).
    pub routes: Arc<HashSet<String>>,
}

/// Wakes requests waiting for a key held by a request of this node (requests of other nodes
/// are seen by polling).
#[derive(Debug, Default)]
struct Waiters(parking_lot::Mutex<HashMap<Uuid, Arc<Notify>>>);

impl Waiters {
    fn subscribe(&self, id: Uuid) -> Arc<Notify> {
        Arc::clone(self.0.lock().entry(id).or_default())
    }

    fn unsubscribe(&self, id: Uuid, notify: Arc<Notify>) {
        drop(notify);
        let mut map = self.0.lock();
        if map.get(&id).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(&id);
        }
    }

    fn wake(&self, id: Uuid) {
        if let Some(notify) = self.0.lock().remove(&id) {
            notify.notify_waiters();
        }
    }
}

/// A key as the header carries it: 1–255 visible ASCII characters.
fn parse_key(value: &HeaderValue) -> Result<&str, Problem> {
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(Problem::malformed().with_detail(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (e.g. a UUID)",
        ));
    }
    // Visible ASCII is valid UTF-8.
    std::str::from_utf8(bytes).map_err(|_| Problem::malformed())
}

/// SHA-256 of what makes two requests "the same": method, path with query, body.
fn fingerprint(parts: &Parts, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str().as_bytes());
    hash.update(b"\n");
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    hash.update(target.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hash.finalize().to_vec()
}

fn caller_of(actor: Actor) -> String {
    match actor {
        Actor::User(id) => format!("user:{id}"),
        Actor::ApiKey { key_id, .. } => format!("api_key:{key_id}"),
    }
}

enum Resolved {
    Owner(Owner),
    /// Not authenticated (or not authorized): the handler answers as without a key.
    PassThrough,
    /// Refused before the handler could run (rate limited, database down).
    Answer(Response),
}

/// The key's owner. On tenant routes the authorized scope is left in the request for the
/// handler's `TenantCtx` extractor, so authorization runs once.
async fn resolve(state: &AppState, parts: &mut Parts, tenant_route: bool) -> Resolved {
    if tenant_route {
        return match TenantCtx::from_request_parts(parts, state).await {
            Ok(ctx) => {
                let owner = Owner {
                    tenant: Some(ctx.scope.clone()),
                    caller: caller_of(ctx.scope.actor()),
                };
                parts.extensions.insert(ctx);
                Resolved::Owner(owner)
            }
            Err(problem)
                if problem.status == StatusCode::TOO_MANY_REQUESTS
                    || problem.status.is_server_error() =>
            {
                Resolved::Answer(problem.into_response())
            }
            Err(_) => Resolved::PassThrough,
        };
    }
    match Caller::from_request_parts(parts, state).await {
        Ok(caller) => Resolved::Owner(Owner {
            tenant: None,
            caller: caller_of(Actor::User(caller.0.user.id)),
        }),
        Err(_) => Resolved::PassThrough,
    }
}

/// The middleware (a route layer, so the matched path is known).
pub async fn middleware(State(layer): State<Layer>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    // Boxed: keyed requests are rare, and their future (caller resolution, the store) is
    // large; every other request would otherwise carry and copy it.
    Box::pin(keyed(layer, request, next)).await
}

/// A POST that carries an `Idempotency-Key`.
async fn keyed(layer: Layer, request: Request, next: Next) -> Response {
    let Some(value) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .filter(|route| layer.routes.contains(route))
    else {
        return next.run(request).await;
    };
    let key = match parse_key(value) {
        Ok(key) => key.to_owned(),
        Err(problem) => return problem.into_response(),
    };
    let state = layer.state;
    let (mut parts, body) = request.into_parts();
    let owner = match resolve(&state, &mut parts, route.contains("{tenant_id}")).await {
        Resolved::Owner(owner) => owner,
        Resolved::PassThrough => return next.run(Request::from_parts(parts, body)).await,
        Resolved::Answer(response) => return response,
    };
    let Ok(body) = axum::body::to_bytes(body, state.config.http.body_limit_bytes).await else {
        return Problem::payload_too_large()
            .with_detail("the request body is too large (or could not be read)")
            .into_response();
    };
    let fingerprint = fingerprint(&parts, &body);
    let begun = begin(&state.idempotency, &owner, &key, &fingerprint).await;
    let outcome = match &begun {
        Ok(Begun::Reserved(_)) => "executed",
        Ok(Begun::Replay(_)) => "replayed",
        Err(problem) if problem.code == "idempotency_key_reused" => "reused",
        Err(problem) if problem.code == "idempotency_key_in_progress" => "in_progress",
        Err(_) => "error",
    };
    metrics::counter!("idempotency_requests_total", "outcome" => outcome).increment(1);
    match begun {
        Ok(Begun::Replay(stored)) => replay(stored),
        Ok(Begun::Reserved(reservation)) => {
            run(
                &state,
                reservation,
                Request::from_parts(parts, Body::from(body)),
                next,
            )
            .await
        }
        Err(problem) => problem.into_response(),
    }
}

enum Begun {
    Reserved(Reservation),
    Replay(Stored),
}

/// Reserves the key, or waits for the request holding it and replays its response.
async fn begin(
    idem: &Idempotency,
    owner: &Owner,
    key: &str,
    fingerprint: &[u8],
) -> Result<Begun, Problem> {
    let deadline = Instant::now() + idem.wait;
    let mut poll = Duration::from_millis(20);
    let mut insert = true;
    loop {
        if insert && let Some(reservation) = idem.store.try_reserve(owner, key, fingerprint).await?
        {
            return Ok(Begun::Reserved(reservation));
        }
        let found = idem.store.find(owner, key).await?;
        insert = true;
        let now = idem.store.now();
        match found {
            // Released (or pruned) since: try again.
            None => {}
            Some(row) if row.expires_at <= now => idem.store.delete_expired(owner, row.id).await?,
            Some(row) if row.fingerprint != fingerprint => {
                return Err(Problem::idempotency_key_reused().with_detail(
                    "this Idempotency-Key was used with a different request (method, path or \
                     body); use a new key for a new request",
                ));
            }
            Some(row) if row.state == KeyState::Completed => {
                return Ok(Begun::Replay(idem.store.open(row)?));
            }
            Some(row) if row.locked_until <= now && row.state == KeyState::InProgress => {
                if let Some(reservation) = idem.store.take_over(owner, &row).await? {
                    tracing::info!(key_id = %row.id, "took over an abandoned idempotency key");
                    return Ok(Begun::Reserved(reservation));
                }
            }
            Some(row) if row.locked_until <= now => {
                return Err(Problem::idempotency_key_in_progress().with_detail(
                    "the request with this Idempotency-Key took effect, but the server stopped \
                     before its response was stored; check the resource's state instead of \
                     retrying with this key",
                ));
            }
            Some(row) => {
                insert = false;
                if Instant::now() >= deadline {
                    return Err(Problem::idempotency_key_in_progress()
                        .with_detail(
                            "a request with this Idempotency-Key is still running; retry later",
                        )
                        .with_retry_after(1));
                }
                let notify = idem.waiters.subscribe(row.id);
                let pause = poll.min(deadline.saturating_duration_since(Instant::now()));
                tokio::select! {
                    () = notify.notified() => {}
                    () = tokio::time::sleep(pause) => {}
                }
                idem.waiters.unsubscribe(row.id, notify);
                poll = (poll * 2).min(Duration::from_millis(250));
            }
        }
        if insert && Instant::now() >= deadline {
            return Err(Problem::idempotency_key_in_progress().with_retry_after(1));
        }
    }
}

/// Releases a reservation whose request was dropped (timed out, client gone) before it
/// finished: the key may be retried unless an effect committed.
struct Held {
    state: AppState,
    reservation: Option<Reservation>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let state = self.state.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = state.idempotency.store.release(&reservation).await {
                    tracing::warn!(error = %e, "releasing an abandoned idempotency key failed");
                }
                state.idempotency.waiters.wake(reservation.id);
            });
        }
    }
}

/// Runs the handler under the reservation's mark, then stores its response.
async fn run(state: &AppState, reservation: Reservation, request: Request, next: Next) -> Response {
    let idem = &state.idempotency;
    let mark = Arc::new(idem.store.mark(&reservation));
    let mut held = Held {
        state: state.clone(),
        reservation: Some(reservation.clone()),
    };
    let response = mark.scope(next.run(request)).await;
    let status = response.status();
    let storable = status != StatusCode::TOO_MANY_REQUESTS
        && response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= MAX_STORED_BODY);
    let (parts, body) = response.into_parts();
    let (response, stored) = if storable {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => (
                Response::from_parts(parts, Body::from(bytes.clone())),
                Some(bytes),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reading a response to store it failed");
                (Problem::internal().into_response(), None)
            }
        }
    } else {
        (Response::from_parts(parts, body), None)
    };
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = finish(idem, &reservation, status, content_type, stored.as_deref()).await {
        // The row stays reserved until its lease ends: then a retry runs again if nothing
        // took effect, or learns that its response was lost.
        tracing::warn!(error = %e, "storing an idempotent response failed");
    }
    held.reservation = None;
    idem.waiters.wake(reservation.id);
    response
}

/// 5xx (and unstorable responses) release the key when nothing took effect, so the client
/// may retry; every other response is stored, and so is a 5xx after an effect.
async fn finish(
    idem: &Idempotency,
    reservation: &Reservation,
    status: StatusCode,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(), tenantry_db::DbError> {
    let retryable = status.is_server_error() || body.is_none();
    if retryable && idem.store.release(reservation).await? {
        return Ok(());
    }
    let Some(body) = body else {
        tracing::warn!(
            key_id = %reservation.id,
            "an idempotent request took effect but its response cannot be stored"
        );
        return Ok(());
    };
    if !idem
        .store
        .complete(reservation, status.as_u16(), content_type, body)
        .await?
    {
        tracing::warn!(key_id = %reservation.id, "idempotency reservation lost before completion");
    }
    Ok(())
}

fn replay(stored: Stored) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(stored.body)).into_response();
    let headers = response.headers_mut();
    if let Some(content_type) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        for ok in [
            "a",
            "0b7e6d4c-3f1a-4c55-9c2e-0d3f5e6a7b8c",
            &"k".repeat(255),
        ] {
            assert!(
                parse_key(&HeaderValue::from_str(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "has space", &"k".repeat(256), "tab\there"] {
            assert!(
                parse_key(&HeaderValue::from_str(bad).unwrap()).is_err(),
                "{bad:?}"
            );
        }
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert!(parse_key(&latin1).is_err());
    }
}
