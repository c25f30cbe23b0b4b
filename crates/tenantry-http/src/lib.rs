//! The HTTP vocabulary every context's routes share, and nothing of any context.
//!
//! - [`Json`] and [`Query`]: body and query extractors whose rejections are problems.
//! - [`Client`]: where a request came from ([`Origin`](tenantry_core::Origin)).
//! - [`Ids`]: the typed ids of a path, a malformed one answering 404 like an unknown one.
//! - [`Caller`], [`TenantCtx`] and [`AdminCtx`]: the authenticated caller and the scopes
//!   the authorization layer issues. They reach authentication and authorization through the
//!   [`Gate`] the router state implements: identity implements [`Authenticate`], tenancy
//!   implements [`Authorize`], and the binary wires the two (ADR 0013).
//! - [`Limits`]: per-client, per-tenant and per-key rate limits, configured by the
//!   `rate_limits` section ([`RateLimitConfig`]).
//! - [`OptionalJson`], [`present`] and [`redacted_debug!`]: bodies that may be left out,
//!   PATCH fields that may be `null`, and bodies that carry secrets.
//! - [`admin`]: what every context's platform-administration routes share.
//!
//! A context's router is generic over its state `S`: handlers take what they need with
//! `State<T>` (`T: FromRef<S>`) and the extractors above, so a context names no type of the
//! assembly and the assembly merges every context's router into one.
//! Problems render themselves (`tenantry_core::Problem` implements `IntoResponse`).

pub mod admin;
mod body;
mod client;
pub mod config;
mod gate;
pub mod limits;
mod path;

pub use body::{Json, OptionalJson, Query, present};
pub use client::Client;
pub use config::RateLimitConfig;
pub use gate::{AdminCtx, Authenticate, Authorize, Caller, Gate, Principal, TenantCtx};
pub use limits::{Bucket, Limits};
pub use path::{Ids, PathIds};

/// The bounds every context router's state meets.
pub trait RouterState: Clone + Send + Sync + 'static {}
impl<S: Clone + Send + Sync + 'static> RouterState for S {}
