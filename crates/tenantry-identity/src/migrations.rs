//! Identity tables: users, sessions, refresh tokens, signing keys. All platform-level
//! (not tenant-owned): a user may belong to many tenants.

use tenantry_db::{
    APP_ROLE, Backend,
    migrate::{Migration, ddl},
};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 2026112210,
    name: "identity_users_sessions_and_signing_keys",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE users (
                id {uuid} PRIMARY KEY,
                email TEXT,
                password_hash TEXT,
                first_name TEXT NOT NULL DEFAULT '',
                last_name TEXT NOT NULL DEFAULT '',
                display_name TEXT,
                email_verified {bool} NOT NULL DEFAULT FALSE,
                is_guest {bool} NOT NULL DEFAULT FALSE,
                is_platform_admin {bool} NOT NULL DEFAULT FALSE,
                status TEXT NOT NULL DEFAULT 'active',
                mfa_enabled {bool} NOT NULL DEFAULT FALSE,
                preferences {json} NOT NULL DEFAULT '{}',
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL
            );
            CREATE UNIQUE INDEX ux_users__email ON users (email);
            CREATE TABLE sessions (
                id {uuid} PRIMARY KEY,
                user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                created_at {ts} NOT NULL,
                last_used_at {ts} NOT NULL,
                expires_at {ts} NOT NULL,
                revoked_at {ts},
                revoked_reason TEXT,
                user_agent TEXT,
                ip TEXT
            );
            CREATE INDEX ix_sessions__user_id ON sessions (user_id, id);
            CREATE TABLE refresh_tokens (
                token_hash {bytes} PRIMARY KEY,
                session_id {uuid} NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                created_at {ts} NOT NULL,
                expires_at {ts} NOT NULL,
                used_at {ts}
            );
            CREATE INDEX ix_refresh_tokens__session_id ON refresh_tokens (session_id);
            CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                algorithm TEXT NOT NULL,
                private_key {bytes} NOT NULL,
                public_key {bytes} NOT NULL,
                created_at {ts} NOT NULL,
                retired_at {ts}
            );",
        )];
        if backend == Backend::Postgres {
            // Tenant transactions read member profiles; column privileges keep password
            // hashes and account flags out of the request role's reach.
            statements.push(format!(
                "GRANT SELECT (id, email, first_name, last_name, display_name, is_guest, status) \
                 ON users TO {APP_ROLE};"
            ));
        }
        statements
    },
    down: |_| {
        vec!["DROP TABLE signing_keys; DROP TABLE refresh_tokens; DROP TABLE sessions; DROP TABLE users;".to_owned()]
    },
}];
