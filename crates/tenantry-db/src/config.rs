//! The `database` section (`TENANTRY_DATABASE__*`): pool sizes and start-up behaviour. The
//! URL itself (`database_url`) is a platform-wide key of the assembly, since its default
//! derives from `data_dir`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// PostgreSQL pool size.
    pub max_connections: u32,
    /// SQLite read connections (writes go through one connection: SQLite has one writer).
    pub sqlite_readers: u32,
    /// SQLite memory-mapped I/O, in MiB (`PRAGMA mmap_size`; 0 turns it off): pages missing
    /// from a connection's cache are read from the shared mapping instead of by a `read`
    /// system call each.
    pub sqlite_mmap_mib: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Seconds to wait for a connection before failing the request.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            sqlite_readers: 4,
            sqlite_mmap_mib: 256,
            migrate_on_start: true,
            acquire_timeout_secs: 5,
        }
    }
}
