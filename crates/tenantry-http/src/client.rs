//! Where a request came from.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use tenantry_core::{Origin, Problem};

/// Request id, peer address and user agent: recorded with sessions and audit records.
#[derive(Debug, Clone)]
pub struct Client(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        Ok(Self(origin(parts)))
    }
}

pub(crate) fn origin(parts: &Parts) -> Origin {
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Origin {
        request_id,
        ip,
        user_agent,
    }
}
