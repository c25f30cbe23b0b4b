//! Integration tests: one binary (link time is paid once), one module per area.
//! Every suite runs against SQLite and PostgreSQL (`backend_tests!`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod abuse;
mod auth;
mod idempotency;
mod idempotency_effects;
mod isolation;
mod members;
mod mfa;
mod oidc;
mod ops;
mod projects;
mod rate_limits;
mod recovery;
mod rls;
mod rotation;
mod sweep;
mod tenants;
mod tokens;
mod users;
