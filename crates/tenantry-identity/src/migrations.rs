//! Identity tables: users, sessions, refresh tokens, signing keys. All platform-level
//! (not tenant-owned): a user may belong to many tenants.

use tenantry_db::{
    APP_ROLE, Backend,
    migrate::{Migration, ddl},
};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2026112231,
        name: "identity_recovery_mfa_throttling_external_identities",
        up: |backend| {
            vec![ddl(
                backend,
                "ALTER TABLE users ADD COLUMN mfa_secret {bytes};
                ALTER TABLE users ADD COLUMN mfa_pending_secret {bytes};
                ALTER TABLE users ADD COLUMN mfa_last_step BIGINT;
                ALTER TABLE users ADD COLUMN password_changed_at {ts};
                CREATE TABLE user_tokens (
                    token_hash {bytes} PRIMARY KEY,
                    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                    purpose TEXT NOT NULL,
                    email TEXT,
                    created_at {ts} NOT NULL,
                    expires_at {ts} NOT NULL,
                    used_at {ts}
                );
                CREATE INDEX ix_user_tokens__user_id ON user_tokens (user_id, purpose);
                CREATE TABLE mfa_recovery_codes (
                    code_hash {bytes} PRIMARY KEY,
                    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                    created_at {ts} NOT NULL,
                    used_at {ts}
                );
                CREATE INDEX ix_mfa_recovery_codes__user_id ON mfa_recovery_codes (user_id);
                CREATE TABLE security_events (
                    id {uuid} PRIMARY KEY,
                    user_id {uuid} REFERENCES users (id) ON DELETE SET NULL,
                    kind TEXT NOT NULL,
                    ip TEXT,
                    user_agent TEXT,
                    detail {json} NOT NULL DEFAULT '{}',
                    created_at {ts} NOT NULL
                );
                CREATE INDEX ix_security_events__user_id ON security_events (user_id, id);
                CREATE TABLE login_throttle (
                    key_hash {bytes} PRIMARY KEY,
                    failures BIGINT NOT NULL,
                    window_started_at {ts} NOT NULL,
                    window_failures BIGINT NOT NULL,
                    locked_until {ts},
                    updated_at {ts} NOT NULL
                );
                CREATE TABLE external_identities (
                    issuer TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                    email TEXT,
                    created_at {ts} NOT NULL,
                    last_seen_at {ts} NOT NULL,
                    PRIMARY KEY (issuer, subject)
                );
                CREATE INDEX ix_external_identities__user_id ON external_identities (user_id);",
            )]
        },
        down: |_| {
            vec![
                "DROP TABLE external_identities; DROP TABLE login_throttle; \
                 DROP TABLE security_events; DROP TABLE mfa_recovery_codes; DROP TABLE user_tokens; \
                 ALTER TABLE users DROP COLUMN password_changed_at; \
                 ALTER TABLE users DROP COLUMN mfa_last_step; \
                 ALTER TABLE users DROP COLUMN mfa_pending_secret; \
                 ALTER TABLE users DROP COLUMN mfa_secret;"
                    .to_owned(),
            ]
        },
    },
];
