//! The audit table. Records are chained per `chain_id`: a tenant's records in the tenant's
//! chain (`chain_id` = `tenant_id`), a user's account records (sign-ins, password and MFA
//! changes, administrators acting on the account) in that user's chain (`chain_id` = user id,
//! `tenant_id` NULL), and what concerns neither in the platform chain (the nil UUID). Per-user
//! chains keep sign-ins of different users from queueing behind one lock.
//!
//! Append-only on both backends: on PostgreSQL the table has no UPDATE policy and DELETE
//! only for tenants being purged (row-level security is forced, so this binds the owner
//! too); on SQLite triggers refuse the same statements.

use tenantry_db::{
    APP_ROLE, Backend,
    migrate::{Migration, POSTGRES_PLATFORM_ADMIN, ddl},
};

/// The chain of records that belong to neither a tenant nor a user.
pub const PLATFORM_CHAIN: uuid::Uuid = uuid::Uuid::nil();

pub const MIGRATIONS: &[Migration] = &[AUDIT_TRAIL, AUDIT_PROJECT];

const AUDIT_TRAIL: Migration = Migration {
    version: 2026112241,
    name: "audit_trail",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE audit_logs (
                chain_id {uuid} NOT NULL,
                seq BIGINT NOT NULL,
                tenant_id {uuid},
                id {uuid} NOT NULL,
                occurred_at {ts} NOT NULL,
                actor_type TEXT NOT NULL,
                actor_id {uuid},
                actor_user_id {uuid},
                action TEXT NOT NULL,
                target_type TEXT NOT NULL,
                target_id TEXT,
                outcome TEXT NOT NULL,
                request_id TEXT,
                ip TEXT,
                user_agent TEXT,
                summary TEXT NOT NULL,
                prev_hash {bytes} NOT NULL,
                hash {bytes} NOT NULL,
                PRIMARY KEY (chain_id, seq)
            );
            CREATE UNIQUE INDEX ux_audit_logs__id ON audit_logs (id);
            CREATE INDEX ix_audit_logs__tenant_id__id ON audit_logs (tenant_id, id);",
        )];
        match backend {
            Backend::Postgres => {
                // A tenant transaction reaches its tenant's records; any other transaction
                // only records without a tenant.
                let chain = "CASE WHEN NULLIF(current_setting('app.tenant_id', true), '') IS NULL \
                     THEN tenant_id IS NULL \
                     ELSE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid END";
                statements.push(format!(
                    "GRANT SELECT, INSERT, DELETE ON audit_logs TO {APP_ROLE};
                     ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
                     ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
                     CREATE POLICY audit_logs_read ON audit_logs FOR SELECT
                        USING (({chain}) OR {POSTGRES_PLATFORM_ADMIN});
                     CREATE POLICY audit_logs_append ON audit_logs FOR INSERT
                        WITH CHECK (({chain}) OR {POSTGRES_PLATFORM_ADMIN});
                     CREATE POLICY audit_logs_purge ON audit_logs FOR DELETE
                        USING ({POSTGRES_PLATFORM_ADMIN}
                               AND tenant_id IN (SELECT id FROM tenants WHERE status = 'deleted'));"
                ));
            }
            Backend::Sqlite => statements.push(
                "CREATE TRIGGER audit_logs_append_only_update BEFORE UPDATE ON audit_logs
                 BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
                 CREATE TRIGGER audit_logs_append_only_delete BEFORE DELETE ON audit_logs
                 WHEN NOT EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant_id AND status = 'deleted')
                 BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
                    .to_owned(),
            ),
        }
        statements
    },
    down: |_| vec!["DROP TABLE audit_logs;".to_owned()],
};

/// The project a record's target belongs to, so the tenant's trail can hide records about
/// projects (and their documents) the reader cannot see. Records written before carry none.
const AUDIT_PROJECT: Migration = Migration {
    version: 2026121261,
    name: "audit_project",
    up: |backend| {
        vec![ddl(
            backend,
            "ALTER TABLE audit_logs ADD COLUMN project_id {uuid};",
        )]
    },
    down: |_| vec!["ALTER TABLE audit_logs DROP COLUMN project_id;".to_owned()],
};
