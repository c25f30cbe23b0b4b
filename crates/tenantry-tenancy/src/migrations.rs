//! Tenancy tables. Every one is tenant-owned: on PostgreSQL row-level security confines it
//! to `app.tenant_id`, and a user-scoped transaction (`app.user_id`) additionally sees that
//! user's own memberships and the tenants they belong to.

use tenantry_db::{
    Backend,
    migrate::{Migration, POSTGRES_CURRENT_USER, ddl, postgres_tenant_rls},
};

pub const MIGRATIONS: &[Migration] = &[Migration {
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
}];
