//! The outbox of domain events.

use tenantry_db::{
    Backend,
    migrate::{Migration, ddl, postgres_tenant_rls},
};

/// `domain_events`: one row per event, in the tenant's RLS boundary (the relay reads every
/// tenant's rows as platform administration). The partial index serves the relay's scan of
/// unpublished events.
const DOMAIN_EVENTS: Migration = Migration {
    version: 2026112250,
    name: "events_domain_events",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE domain_events (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                type TEXT NOT NULL,
                source TEXT NOT NULL,
                subject TEXT NOT NULL,
                time {ts} NOT NULL,
                user_id {uuid},
                data {json} NOT NULL,
                published_at {ts},
                PRIMARY KEY (tenant_id, id)
            );
            CREATE INDEX ix_domain_events__unpublished ON domain_events (id) WHERE published_at IS NULL;",
        )];
        if backend == Backend::Postgres {
            statements.push(postgres_tenant_rls("domain_events", "tenant_id", None));
        }
        statements
    },
    down: |_| vec!["DROP TABLE domain_events;".to_owned()],
};

/// `platform_events`: events of accounts, which belong to no tenant (`user.registered`,
/// `user.password_changed`, …). A platform table: written by identity's platform
/// transactions as the connecting role; the request role `tenantry_app` gets no privilege on
/// it, so no tenant transaction can read or write it (ADR 0012).
const PLATFORM_EVENTS: Migration = Migration {
    version: 2026121340,
    name: "events_platform_events",
    up: |backend| {
        vec![ddl(
            backend,
            "CREATE TABLE platform_events (
                id {uuid} PRIMARY KEY,
                type TEXT NOT NULL,
                source TEXT NOT NULL,
                subject TEXT NOT NULL,
                time {ts} NOT NULL,
                user_id {uuid},
                data {json} NOT NULL,
                published_at {ts}
            );
            CREATE INDEX ix_platform_events__unpublished ON platform_events (id) WHERE published_at IS NULL;",
        )]
    },
    down: |_| vec!["DROP TABLE platform_events;".to_owned()],
};

pub const MIGRATIONS: &[Migration] = &[DOMAIN_EVENTS, PLATFORM_EVENTS];
