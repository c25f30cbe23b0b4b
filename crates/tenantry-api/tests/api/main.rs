//! Integration tests: one binary (link time is paid once), one module per area.
//! Every suite runs against SQLite and PostgreSQL (`backend_tests!`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod abuse;
mod admin;
mod admin_users;
mod api_keys;
mod audit;
mod auth;
mod battery;
mod credential_changes;
mod documents;
mod edge;
mod events;
mod idempotency;
mod idempotency_effects;
mod invitations;
mod isolation;
mod lookalikes;
mod members;
mod mfa;
mod oidc;
mod openapi;
mod ops;
mod project_scope;
mod projects;
mod purge;
mod rate_limits;
mod recovery;
mod rls;
mod roles;
mod rotation;
mod schedule;
mod settings;
mod sweep;
mod tenants;
mod tokens;
mod users;
