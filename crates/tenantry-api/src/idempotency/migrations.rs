//! The `idempotency_keys` table: one row per (tenant, caller, key), holding the request's
//! fingerprint, its progress and, once answered, its sealed response.
//!
//! `tenant_id` is NULL for requests outside a tenant (e.g. `POST /tenants`). Uniqueness treats
//! NULL as one value (an expression index, valid on both backends and on PostgreSQL < 15).
//! On PostgreSQL a tenant transaction sees its tenant's rows and any other transaction the
//! rows without a tenant; besides, the row named by `app.idempotency_id` is reachable from any
//! transaction, which is how a request's write transactions mark their reservation "applied"
//! whatever tenant they are confined to (see `tenantry_db::EffectMark`).

use tenantry_db::{
    APP_ROLE, Backend,
    migrate::{Migration, POSTGRES_PLATFORM_ADMIN, ddl},
};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 2026112243,
    name: "idempotency_keys",
    up: |backend| {
        let no_tenant = match backend {
            Backend::Postgres => "'00000000-0000-0000-0000-000000000000'::uuid",
            Backend::Sqlite => "''",
        };
        let mut statements = vec![ddl(
            backend,
            &format!(
                "CREATE TABLE idempotency_keys (
                    id {{uuid}} PRIMARY KEY,
                    tenant_id {{uuid}} REFERENCES tenants (id) ON DELETE CASCADE,
                    caller TEXT NOT NULL,
                    client_key TEXT NOT NULL,
                    fingerprint {{bytes}} NOT NULL,
                    state TEXT NOT NULL,
                    lease {{uuid}} NOT NULL,
                    locked_until {{ts}} NOT NULL,
                    response_status BIGINT,
                    response_content_type TEXT,
                    response_body {{bytes}},
                    created_at {{ts}} NOT NULL,
                    expires_at {{ts}} NOT NULL
                );
                CREATE UNIQUE INDEX ux_idempotency_keys__client_key
                    ON idempotency_keys (caller, client_key, COALESCE(tenant_id, {no_tenant}));
                CREATE INDEX ix_idempotency_keys__expires_at ON idempotency_keys (expires_at);"
            ),
        )];
        if backend == Backend::Postgres {
            let tenant = "NULLIF(current_setting('app.tenant_id', true), '')";
            let scope = format!(
                "CASE WHEN {tenant} IS NULL THEN tenant_id IS NULL \
                 ELSE tenant_id = {tenant}::uuid END"
            );
            let own = "id = NULLIF(current_setting('app.idempotency_id', true), '')::uuid";
            let rule = format!("({scope}) OR ({own}) OR {POSTGRES_PLATFORM_ADMIN}");
            statements.push(format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {APP_ROLE};
                 ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
                 CREATE POLICY idempotency_keys_access ON idempotency_keys
                    USING ({rule}) WITH CHECK ({rule});"
            ));
        }
        statements
    },
    down: |_| vec!["DROP TABLE idempotency_keys;".to_owned()],
}];
