//! Files (stored content, one per distinct SHA-256 in a tenant), documents (a user's named
//! reference to a file) and the tenant's storage usage, all in the tenant's RLS boundary. The
//! orphan sweep works across tenants as platform administration.

use tenantry_db::{
    Backend,
    migrate::{Migration, ddl, postgres_tenant_rls},
};

const FILES_DOCUMENTS: Migration = Migration {
    version: 2026112251,
    name: "files_documents_usage",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            // `documents.file_id` has no cascade: a file is deleted only once no document
            // references it. `documents.project_id` blocks deleting a project that still has
            // documents (checked at the end of the statement, so purging a tenant, which
            // deletes both, passes).
            "CREATE TABLE files (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                sha256 TEXT NOT NULL,
                md5 TEXT NOT NULL,
                size BIGINT NOT NULL,
                storage_key TEXT NOT NULL,
                created_at {ts} NOT NULL,
                unreferenced_since {ts},
                PRIMARY KEY (tenant_id, id)
            );
            CREATE UNIQUE INDEX ux_files__tenant_id__sha256 ON files (tenant_id, sha256);
            CREATE INDEX ix_files__unreferenced_since ON files (unreferenced_since)
                WHERE unreferenced_since IS NOT NULL;
            CREATE TABLE documents (
                tenant_id {uuid} NOT NULL,
                id {uuid} NOT NULL,
                file_id {uuid} NOT NULL,
                filename TEXT NOT NULL,
                mime_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                user_id {uuid},
                project_id {uuid},
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                PRIMARY KEY (tenant_id, id),
                FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, file_id) REFERENCES files (tenant_id, id),
                FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id)
            );
            CREATE INDEX ix_documents__tenant_id__file_id ON documents (tenant_id, file_id);
            CREATE INDEX ix_documents__tenant_id__project_id ON documents (tenant_id, project_id);
            CREATE TABLE storage_usage (
                tenant_id {uuid} NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
                bytes BIGINT NOT NULL,
                files BIGINT NOT NULL,
                documents BIGINT NOT NULL
            );",
        )];
        if backend == Backend::Postgres {
            for table in ["files", "documents", "storage_usage"] {
                statements.push(postgres_tenant_rls(table, "tenant_id", None));
            }
        }
        statements
    },
    down: |_| vec!["DROP TABLE storage_usage; DROP TABLE documents; DROP TABLE files;".to_owned()],
};

pub const MIGRATIONS: &[Migration] = &[FILES_DOCUMENTS];
