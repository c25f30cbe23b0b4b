//! Tenancy tables. Every one is tenant-owned: on PostgreSQL row-level security confines it
//! to `app.tenant_id`, and a user-scoped transaction (`app.user_id`) additionally sees that
//! user's own memberships and the tenants they belong to.

use tenantry_db::{
    Backend,
    migrate::{
        Migration, POSTGRES_CURRENT_USER, ddl, postgres_admin_access, postgres_secret_lookup,
        postgres_tenant_rls,
    },
};

pub const MIGRATIONS: &[Migration] = &[
    TENANTS_MEMBERSHIPS_PROJECTS,
    ROLES_PROJECT_MEMBERS_API_KEYS,
    INVITATIONS,
    INVITATION_LIMITS,
];

const TENANTS_MEMBERSHIPS_PROJECTS: Migration = Migration {
    version: 2026112220,
    name: "tenancy_tenants_memberships_projects",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE tenants (
                id {uuid} PRIMARY KEY,
                name TEXT NOT NULL,
                slug TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'active',
                settings {json} NOT NULL DEFAULT '{}',
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                deleted_at {ts}
            );
            CREATE UNIQUE INDEX ux_tenants__slug ON tenants (slug);
            CREATE TABLE memberships (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                PRIMARY KEY (tenant_id, user_id)
            );
            CREATE INDEX ix_memberships__user_id ON memberships (user_id, tenant_id);
            CREATE TABLE projects (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                settings {json} NOT NULL DEFAULT '{}',
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                PRIMARY KEY (tenant_id, id)
            );
            CREATE UNIQUE INDEX ux_projects__tenant_id__name ON projects (tenant_id, name);",
        )];
        if backend == Backend::Postgres {
            let own_membership = format!("user_id = {POSTGRES_CURRENT_USER}");
            let own_tenant = format!(
                "id IN (SELECT tenant_id FROM memberships WHERE user_id = {POSTGRES_CURRENT_USER})"
            );
            statements.push(postgres_tenant_rls("tenants", "id", Some(&own_tenant)));
            statements.push(postgres_tenant_rls(
                "memberships",
                "tenant_id",
                Some(&own_membership),
            ));
            statements.push(postgres_tenant_rls("projects", "tenant_id", None));
        }
        statements
    },
    down: |backend| {
        let mut statements = Vec::new();
        if backend == Backend::Postgres {
            // The tenants policy reads memberships; it must go before the table does.
            statements.push("DROP POLICY tenants_tenant_read ON tenants;".to_owned());
        }
        statements
            .push("DROP TABLE projects; DROP TABLE memberships; DROP TABLE tenants;".to_owned());
        statements
    },
};

const ROLES_PROJECT_MEMBERS_API_KEYS: Migration = Migration {
    version: 2026112240,
    name: "tenancy_custom_roles_project_members_api_keys",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE roles (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                permissions {json} NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                PRIMARY KEY (tenant_id, id)
            );
            CREATE UNIQUE INDEX ux_roles__tenant_id__name ON roles (tenant_id, name);
            CREATE TABLE project_members (
                tenant_id {uuid} NOT NULL,
                project_id {uuid} NOT NULL,
                user_id {uuid} NOT NULL,
                role TEXT NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL,
                PRIMARY KEY (tenant_id, project_id, user_id),
                FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
            );
            CREATE INDEX ix_project_members__tenant_id__user_id ON project_members (tenant_id, user_id);
            CREATE TABLE api_keys (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                name TEXT NOT NULL,
                prefix TEXT NOT NULL,
                key_hash {bytes} NOT NULL,
                role TEXT,
                permissions {json},
                project_id {uuid},
                created_by {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                created_at {ts} NOT NULL,
                expires_at {ts},
                last_used_at {ts},
                revoked_at {ts},
                PRIMARY KEY (tenant_id, id),
                FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
            );
            CREATE UNIQUE INDEX ux_api_keys__key_hash ON api_keys (key_hash);",
        )];
        if backend == Backend::Postgres {
            for table in ["tenants", "memberships", "projects"] {
                statements.push(postgres_admin_access(table));
            }
            statements.push(postgres_tenant_rls("roles", "tenant_id", None));
            statements.push(postgres_tenant_rls("project_members", "tenant_id", None));
            statements.push(postgres_tenant_rls(
                "api_keys",
                "tenant_id",
                Some(&postgres_secret_lookup("key_hash")),
            ));
        }
        statements
    },
    down: |backend| {
        let mut statements = Vec::new();
        if backend == Backend::Postgres {
            for table in ["tenants", "memberships", "projects"] {
                statements.push(format!(
                    "DROP POLICY IF EXISTS {table}_platform_admin ON {table};"
                ));
            }
        }
        statements
            .push("DROP TABLE api_keys; DROP TABLE project_members; DROP TABLE roles;".to_owned());
        statements
    },
};

/// Invitations by e-mail. The token is stored only as its SHA-256 (`token_hash`); a bearer
/// finds the row through `Db::begin_secret_lookup`, which on PostgreSQL also reveals the
/// invitation's tenant row (for the preview's tenant name) and nothing else of the tenant.
/// At most one invitation per address and tenant is pending (neither accepted nor revoked):
/// the partial unique index doubles as the (tenant_id, email) lookup index.
const INVITATIONS: Migration = Migration {
    version: 2026112242,
    name: "tenancy_invitations",
    up: |backend| {
        let mut statements = vec![ddl(
            backend,
            "CREATE TABLE invitations (
                tenant_id {uuid} NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id {uuid} NOT NULL,
                email TEXT NOT NULL,
                role TEXT NOT NULL,
                project_id {uuid},
                token_hash {bytes} NOT NULL,
                invited_by {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                created_at {ts} NOT NULL,
                expires_at {ts} NOT NULL,
                accepted_at {ts},
                accepted_by {uuid} REFERENCES users (id) ON DELETE SET NULL,
                revoked_at {ts},
                PRIMARY KEY (tenant_id, id),
                FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
            );
            CREATE UNIQUE INDEX ux_invitations__token_hash ON invitations (token_hash);
            CREATE UNIQUE INDEX ux_invitations__tenant_id__email ON invitations (tenant_id, email)
                WHERE accepted_at IS NULL AND revoked_at IS NULL;",
        )];
        if backend == Backend::Postgres {
            statements.push(postgres_tenant_rls(
                "invitations",
                "tenant_id",
                Some(&postgres_secret_lookup("token_hash")),
            ));
            // The bearer of an invitation token sees the inviting tenant's row (its name).
            // The leading test keeps other transactions (every authorization reads tenants)
            // from probing invitations at all.
            statements.push(format!(
                "CREATE POLICY tenants_invitation_preview ON tenants FOR SELECT
                    USING (NULLIF(current_setting('app.secret_hash', true), '') IS NOT NULL
                           AND id IN (SELECT tenant_id FROM invitations WHERE {}));",
                postgres_secret_lookup("token_hash")
            ));
        }
        statements
    },
    down: |backend| {
        let mut statements = Vec::new();
        if backend == Backend::Postgres {
            // The tenants policy reads invitations; it must go before the table does.
            statements.push("DROP POLICY tenants_invitation_preview ON tenants;".to_owned());
        }
        statements.push("DROP TABLE invitations;".to_owned());
        statements
    },
};

/// What the invitation limits count: one row per invitation an account sent in the last hour
/// (a platform table — the sender's limit spans their tenants), and an index for the
/// tenant's hourly count.
const INVITATION_LIMITS: Migration = Migration {
    version: 2026112265,
    name: "tenancy_invitation_limits",
    up: |backend| {
        vec![ddl(
            backend,
            "CREATE TABLE invitation_sends (
                user_id {uuid} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                sent_at {ts} NOT NULL
            );
            CREATE INDEX ix_invitation_sends__user_id__sent_at ON invitation_sends (user_id, sent_at);
            CREATE INDEX ix_invitations__tenant_id__created_at ON invitations (tenant_id, created_at);",
        )]
    },
    down: |_| {
        vec![
            "DROP INDEX ix_invitations__tenant_id__created_at;".to_owned(),
            "DROP TABLE invitation_sends;".to_owned(),
        ]
    },
};
