//! Versioned, reversible schema migrations for both backends.
//!
//! A migration's DDL is written once with dialect placeholders (`{uuid}`, `{ts}`, `{json}`,
//! `{bool}`, `{bytes}`) that [`ddl`] renders per backend. What exists only on PostgreSQL
//! (the application role, row-level security) comes from the named helpers below, so the
//! backend difference is visible in one place.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};

use crate::InsertRow;
use crate::{APP_ROLE, Backend, Db, DbError, FromRow, Row};

/// One schema change. `up` and `down` return the statements to run, in order.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Globally unique and increasing: `YYYYMMDDNN`.
    pub version: i64,
    /// What it introduces, e.g. `identity_users_and_sessions`.
    pub name: &'static str,
    pub up: fn(Backend) -> Vec<String>,
    pub down: fn(Backend) -> Vec<String>,
}

/// Renders DDL written with dialect placeholders for `backend`.
pub fn ddl(backend: Backend, sql: &str) -> String {
    let types: [(&str, &str); 5] = match backend {
        Backend::Postgres => [
            ("{uuid}", "UUID"),
            ("{ts}", "TIMESTAMPTZ"),
            ("{json}", "JSONB"),
            ("{bool}", "BOOLEAN"),
            ("{bytes}", "BYTEA"),
        ],
        Backend::Sqlite => [
            ("{uuid}", "TEXT"),
            ("{ts}", "TEXT"),
            ("{json}", "TEXT"),
            ("{bool}", "INTEGER"),
            ("{bytes}", "BLOB"),
        ],
    };
    types.iter().fold(sql.to_owned(), |acc, (placeholder, ty)| {
        acc.replace(placeholder, ty)
    })
}

/// PostgreSQL: the non-owner role tenant transactions switch to. Idempotent and safe when
/// several databases of one cluster migrate at once (roles are cluster-wide). Creating it
/// needs CREATEROLE; an operator may instead create it and grant it to the migrating user.
pub fn postgres_app_role() -> String {
    format!(
        "DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOINHERIT NOBYPASSRLS;
            END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;
         DO $$ BEGIN
            IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
                EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
            END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation OR invalid_grant_operation THEN NULL;
         END $$;
         GRANT USAGE ON SCHEMA public TO {APP_ROLE};"
    )
}

/// PostgreSQL: lets the application role read and write a platform (non-tenant) table.
pub fn postgres_grant(table: &str) -> String {
    format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};")
}

/// PostgreSQL: the standard tenant-table boundary. Rows are visible and writable only when
/// `app.tenant_id` names their tenant; `extra_visibility` may widen reads (e.g. a user's own
/// memberships across tenants), never writes.
pub fn postgres_tenant_rls(
    table: &str,
    tenant_column: &str,
    extra_visibility: Option<&str>,
) -> String {
    let tenant =
        format!("{tenant_column} = NULLIF(current_setting('app.tenant_id', true), '')::uuid");
    let using = match extra_visibility {
        Some(extra) => format!("({tenant}) OR ({extra})"),
        None => tenant.clone(),
    };
    format!(
        "{grant}
         ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
         CREATE POLICY {table}_tenant_read ON {table} FOR SELECT USING ({using});
         CREATE POLICY {table}_tenant_insert ON {table} FOR INSERT WITH CHECK ({tenant});
         CREATE POLICY {table}_tenant_update ON {table} FOR UPDATE USING ({tenant}) WITH CHECK ({tenant});
         CREATE POLICY {table}_tenant_delete ON {table} FOR DELETE USING ({tenant});
         {admin}",
        grant = postgres_grant(table),
        admin = postgres_admin_access(table),
    )
}

/// PostgreSQL: platform administration (`Db::begin_admin`, which sets `app.platform_admin`)
/// reaches every row of a tenant table. Idempotent, so a migration may add it to tables
/// created before it existed.
pub fn postgres_admin_access(table: &str) -> String {
    format!(
        "DROP POLICY IF EXISTS {table}_platform_admin ON {table};
         CREATE POLICY {table}_platform_admin ON {table} USING ({POSTGRES_PLATFORM_ADMIN}) WITH CHECK ({POSTGRES_PLATFORM_ADMIN});"
    )
}

/// PostgreSQL: the row of a secret-holding table whose `{column}` equals the hash set by
/// `Db::begin_secret_lookup`, for a table's `extra_visibility`.
pub fn postgres_secret_lookup(column: &str) -> String {
    format!("{column} = decode(NULLIF(current_setting('app.secret_hash', true), ''), 'hex')")
}

/// True in a platform-administration transaction, for RLS expressions.
pub const POSTGRES_PLATFORM_ADMIN: &str = "current_setting('app.platform_admin', true) = 'on'";

/// The `app.user_id` of a user-scoped transaction, for RLS expressions.
pub const POSTGRES_CURRENT_USER: &str = "NULLIF(current_setting('app.user_id', true), '')::uuid";

const LEDGER: &str = "schema_migrations";

/// PostgreSQL: serialises migrators (several servers starting at once, or `migrate` beside
/// them) for the rest of the transaction. SQLite already admits one writer.
async fn lock_ledger(tx: &mut crate::Tx) -> Result<(), DbError> {
    if tx.backend() == Backend::Postgres {
        tx.execute_script("SELECT pg_advisory_xact_lock(7234001)")
            .await?;
    }
    Ok(())
}

/// A migration and whether (and when) it was applied.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub applied_at: Option<DateTime<Utc>>,
}

struct Applied {
    version: i64,
    name: String,
    applied_at: DateTime<Utc>,
}

impl FromRow for Applied {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            version: row.i64()?,
            name: row.string()?,
            applied_at: row.time()?,
        })
    }
}

/// Applies and reverts a set of migrations.
#[derive(Debug)]
pub struct Migrator {
    migrations: Vec<Migration>,
}

impl Migrator {
    pub fn new(mut migrations: Vec<Migration>) -> anyhow::Result<Self> {
        migrations.sort_by_key(|m| m.version);
        if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
            bail!(
                "migrations {} and {} share version {}",
                pair[0].name,
                pair[1].name,
                pair[0].version
            );
        }
        Ok(Self { migrations })
    }

    async fn ensure_ledger(&self, db: &Db) -> anyhow::Result<()> {
        db.execute_script(&ddl(
            db.backend(),
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at {ts} NOT NULL
            )",
        ))
        .await
        .context("creating the migration ledger")
    }

    async fn applied(&self, db: &Db) -> anyhow::Result<Vec<Applied>> {
        self.ensure_ledger(db).await?;
        let mut tx = db.begin_read().await?;
        let rows = tx
            .fetch_all(
                Query::select()
                    .columns(["version", "name", "applied_at"])
                    .from(LEDGER)
                    .order_by("version", Order::Asc),
            )
            .await
            .context("reading the migration ledger")?;
        tx.commit().await?;
        Ok(rows)
    }

    pub async fn status(&self, db: &Db) -> anyhow::Result<Vec<MigrationStatus>> {
        let applied = self.applied(db).await?;
        let mut out: Vec<MigrationStatus> = self
            .migrations
            .iter()
            .map(|m| MigrationStatus {
                version: m.version,
                name: m.name.to_owned(),
                applied_at: applied
                    .iter()
                    .find(|a| a.version == m.version)
                    .map(|a| a.applied_at),
            })
            .collect();
        for unknown in applied
            .iter()
            .filter(|a| !self.migrations.iter().any(|m| m.version == a.version))
        {
            out.push(MigrationStatus {
                version: unknown.version,
                name: format!("{} (unknown to this binary)", unknown.name),
                applied_at: Some(unknown.applied_at),
            });
        }
        out.sort_by_key(|s| s.version);
        Ok(out)
    }

    /// Applies every pending migration in version order; returns the versions applied.
    pub async fn up(&self, db: &Db) -> anyhow::Result<Vec<i64>> {
        let applied = self.applied(db).await?;
        self.refuse_unknown(&applied)?;
        let mut done = Vec::new();
        for migration in &self.migrations {
            if applied.iter().any(|a| a.version == migration.version) {
                continue;
            }
            let mut tx = db.begin_write().await?;
            lock_ledger(&mut tx).await?;
            if db.backend() == Backend::Postgres {
                let again: Option<i64> = tx
                    .fetch_optional(
                        Query::select()
                            .column("version")
                            .from(LEDGER)
                            .and_where(Expr::col("version").eq(migration.version)),
                    )
                    .await?;
                if again.is_some() {
                    continue;
                }
            }
            for statement in (migration.up)(db.backend()) {
                tx.execute_script(&statement).await.with_context(|| {
                    format!(
                        "applying migration {} {}",
                        migration.version, migration.name
                    )
                })?;
            }
            tx.execute(Query::insert().into_table(LEDGER).row([
                ("version", migration.version.into()),
                ("name", migration.name.into()),
                ("applied_at", tx.now().into()),
            ]))
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "migration applied"
            );
            done.push(migration.version);
        }
        Ok(done)
    }

    /// Fails unless every migration of this binary is applied and none unknown to it is.
    pub async fn ensure_current(&self, db: &Db) -> anyhow::Result<()> {
        let applied = self.applied(db).await?;
        self.refuse_unknown(&applied)?;
        if let Some(pending) = self
            .migrations
            .iter()
            .find(|m| !applied.iter().any(|a| a.version == m.version))
        {
            bail!(
                "the database schema is behind this binary (migration {} {} is pending); \
                 run `tenantry migrate up` or enable database.migrate_on_start",
                pending.version,
                pending.name
            );
        }
        Ok(())
    }

    /// Refuses a database that records a migration this binary does not know.
    fn refuse_unknown(&self, applied: &[Applied]) -> anyhow::Result<()> {
        if let Some(newer) = applied
            .iter()
            .find(|a| !self.migrations.iter().any(|m| m.version == a.version))
        {
            bail!(
                "the database has migration {} ({}) that this binary does not know; \
                 it was migrated by a newer Tenantry",
                newer.version,
                newer.name
            );
        }
        Ok(())
    }

    /// Reverts applied migrations newer than `target`, newest first.
    pub async fn down_to(&self, db: &Db, target: i64) -> anyhow::Result<Vec<i64>> {
        let applied = self.applied(db).await?;
        let mut done = Vec::new();
        for record in applied.iter().rev().filter(|a| a.version > target) {
            let migration = self
                .migrations
                .iter()
                .find(|m| m.version == record.version)
                .with_context(|| {
                    format!(
                        "cannot revert migration {} ({}): unknown to this binary",
                        record.version, record.name
                    )
                })?;
            let mut tx = db.begin_write().await?;
            lock_ledger(&mut tx).await?;
            for statement in (migration.down)(db.backend()) {
                tx.execute_script(&statement).await.with_context(|| {
                    format!(
                        "reverting migration {} {}",
                        migration.version, migration.name
                    )
                })?;
            }
            tx.execute(
                Query::delete()
                    .from_table(LEDGER)
                    .and_where(Expr::col("version").eq(migration.version)),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "migration reverted"
            );
            done.push(migration.version);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_per_backend() {
        let sql = "CREATE TABLE t (id {uuid}, at {ts}, j {json}, b {bool}, x {bytes})";
        assert_eq!(
            ddl(Backend::Postgres, sql),
            "CREATE TABLE t (id UUID, at TIMESTAMPTZ, j JSONB, b BOOLEAN, x BYTEA)"
        );
        assert_eq!(
            ddl(Backend::Sqlite, sql),
            "CREATE TABLE t (id TEXT, at TEXT, j TEXT, b INTEGER, x BLOB)"
        );
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let m = Migration {
            version: 1,
            name: "a",
            up: |_| vec![],
            down: |_| vec![],
        };
        assert!(Migrator::new(vec![m, m]).is_err());
    }
}
