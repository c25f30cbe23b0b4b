//! Every stored row that belongs to tenant B, read as the database owner: rows of every table
//! with a `tenant_id` (or `user_id`, `chain_id`) column naming B or one of B's accounts, B's
//! tenant row and B's accounts. Tables are found in the catalog, so a new table is covered.

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection, Row};

use crate::helpers::TestApp;

/// The columns that tie a row to a tenant or an account.
const OWNER_COLUMNS: [&str; 3] = ["tenant_id", "user_id", "chain_id"];

pub enum Probe {
    Postgres(PgConnection),
    Sqlite(rusqlite::Connection),
}

/// Table → its rows of B, as sorted text.
pub type Fingerprint = BTreeMap<String, Vec<String>>;

impl Probe {
    pub async fn open(app: &TestApp) -> Self {
        match &app.database_url {
            Some(url) => Self::Postgres(PgConnection::connect(url).await.expect("connect")),
            None => Self::Sqlite(
                rusqlite::Connection::open_with_flags(
                    app.data_dir().join("tenantry.db"),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open the SQLite database"),
            ),
        }
    }

    /// Tables with an owner column, and which of those columns each has.
    async fn tables(&mut self) -> BTreeMap<String, Vec<String>> {
        let pairs: Vec<(String, String)> = match self {
            Self::Postgres(conn) => sqlx::query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_name = ANY($1)",
            )
            .bind(OWNER_COLUMNS.to_vec())
            .fetch_all(&mut *conn)
            .await
            .expect("catalog")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
            Self::Sqlite(conn) => {
                let mut stmt = conn
                    .prepare(
                        "SELECT m.name, p.name FROM sqlite_master m \
                         JOIN pragma_table_info(m.name) p \
                         WHERE m.type = 'table' AND p.name IN ('tenant_id', 'user_id', 'chain_id')",
                    )
                    .expect("catalog");
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("catalog")
                    .map(|r| r.expect("row"))
                    .collect()
            }
        };
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (table, column) in pairs {
            tables.entry(table).or_default().push(column);
        }
        tables
    }

    /// B's rows everywhere. `ids` are B's tenant id and account ids (uuids, so safe to inline).
    pub async fn take(&mut self, tenant: &str, users: &[String]) -> Fingerprint {
        let mut ids: Vec<&str> = vec![tenant];
        ids.extend(users.iter().map(String::as_str));
        let list = ids
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL compares uuid columns as text here; SQLite stores them as text.
        let cast = match self {
            Self::Postgres(_) => "::text",
            Self::Sqlite(_) => "",
        };
        let mut tables: BTreeMap<String, Vec<String>> = self.tables().await;
        tables.insert("tenants".into(), vec!["id".into()]);
        tables.insert("users".into(), vec!["id".into()]);
        let mut out = Fingerprint::new();
        for (table, columns) in tables {
            let cond = columns
                .iter()
                .map(|c| format!("t.{c}{cast} IN ({list})"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let rows = self.rows(&table, &cond).await;
            out.insert(table, rows);
        }
        out
    }

    async fn rows(&mut self, table: &str, cond: &str) -> Vec<String> {
        let mut rows: Vec<String> = match self {
            Self::Postgres(conn) => {
                let sql = format!("SELECT t::text FROM \"{table}\" t WHERE {cond}");
                // Identifiers from the catalog and uuids of the test: audited, not user input.
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
            Self::Sqlite(conn) => {
                let sql = format!("SELECT * FROM \"{table}\" t WHERE {cond}");
                let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let width = stmt.column_count();
                stmt.query_map([], |r| {
                    let values: Vec<String> = (0..width)
                        .map(|i| format!("{:?}", r.get_ref(i).expect("column")))
                        .collect();
                    Ok(values.join("|"))
                })
                .expect("query")
                .map(|r| r.expect("row"))
                .collect()
            }
        };
        rows.sort();
        rows
    }
}

/// The tables whose rows differ between two fingerprints.
pub fn changed(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let tables: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    tables
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .cloned()
        .collect()
}
