//! The e-mail outbox (platform-level: a message belongs to its recipient, not to a tenant).

use tenantry_db::{
    APP_ROLE, Backend,
    migrate::{Migration, ddl},
};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 2026112230,
    name: "mail_outbox",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE mail_outbox (
                id {uuid} PRIMARY KEY,
                template TEXT NOT NULL,
                payload {bytes},
                status TEXT NOT NULL DEFAULT 'pending',
                attempts BIGINT NOT NULL DEFAULT 0,
                next_attempt_at {ts} NOT NULL,
                locked_until {ts},
                last_error TEXT,
                created_at {ts} NOT NULL,
                sent_at {ts}
            );
            CREATE INDEX ix_mail_outbox__due ON mail_outbox (status, next_attempt_at);",
        )];
        if backend == Backend::Postgres {
            // Tenant transactions (invitations) enqueue; only the worker reads and updates.
            statements.push(format!("GRANT INSERT ON mail_outbox TO {APP_ROLE};"));
        }
        statements
    },
    down: |_| vec!["DROP TABLE mail_outbox;".to_owned()],
}];
