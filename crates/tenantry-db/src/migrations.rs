//! Migrations owned by the database layer itself.

use crate::{
    Backend,
    migrate::{Migration, postgres_app_role},
};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 2026112200,
    name: "application_role",
    up: |backend| match backend {
        Backend::Postgres => vec![postgres_app_role()],
        Backend::Sqlite => vec![],
    },
    // The role is cluster-wide and may serve other databases: it is left in place.
    down: |_| vec![],
}];
