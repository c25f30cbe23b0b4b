//! What other contexts may read of accounts, and how: the one place outside identity's
//! services that knows where accounts are stored.
//!
//! Tenancy lists members with their names and checks an account's status while authorizing.
//! Those reads stay inside tenancy's own statements (a join keeps authorization one
//! statement on the hot path), so identity hands out the join and the columns rather than a
//! function per read; single-account lookups are functions. Renaming or reshaping the table
//! changes this module only (`boundaries::contexts_name_only_their_own_tables` keeps it so).

use sea_query::{Expr, ExprTrait, Query, SelectStatement};
use tenantry_core::UserId;
use tenantry_db::{DbError, FromRow, Row, Tx};

/// The accounts table.
const TABLE: &str = "users";

/// A column of an account that other contexts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountColumn {
    Id,
    /// `NULL` for guests.
    Email,
    FirstName,
    LastName,
    /// `active` or `disabled` (`UserStatus`).
    Status,
}

/// `(table, column)` of `column`, for `.column(…)` / `.columns([…])` in a statement that
/// joined the accounts with [`join_accounts`].
pub const fn account_column(column: AccountColumn) -> (&'static str, &'static str) {
    (
        TABLE,
        match column {
            AccountColumn::Id => "id",
            AccountColumn::Email => "email",
            AccountColumn::FirstName => "first_name",
            AccountColumn::LastName => "last_name",
            AccountColumn::Status => "status",
        },
    )
}

/// `INNER JOIN` the account whose id is in `user_id` (a `(table, column)` of the statement).
pub fn join_accounts(query: &mut SelectStatement, user_id: (&'static str, &'static str)) {
    query.inner_join(
        TABLE,
        Expr::col(account_column(AccountColumn::Id)).equals(user_id),
    );
}

/// An account's name and address, for mail that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName {
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
}

impl FromRow for PersonName {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            first_name: row.string()?,
            last_name: row.string()?,
            email: row.opt_string()?,
        })
    }
}

/// The name and address of `user`, in the caller's transaction.
pub async fn person_name(tx: &mut Tx, user: UserId) -> Result<Option<PersonName>, DbError> {
    tx.fetch_optional(
        Query::select()
            .columns(["first_name", "last_name", "email"])
            .from(TABLE)
            .and_where(Expr::col("id").eq(user)),
    )
    .await
}

/// Whether an account may send mail on a tenant's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderStanding {
    pub email_verified: bool,
    pub is_guest: bool,
}

impl FromRow for SenderStanding {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            email_verified: row.bool()?,
            is_guest: row.bool()?,
        })
    }
}

/// The standing of `user` if it has an address, its row locked until the transaction ends
/// (on PostgreSQL; SQLite serialises writers already) so that counts kept per sender in the
/// same transaction are taken one after the other.
pub async fn lock_sender(tx: &mut Tx, user: UserId) -> Result<Option<SenderStanding>, DbError> {
    let mut q = Query::select();
    q.columns(["email_verified", "is_guest"])
        .from(TABLE)
        .and_where(Expr::col("id").eq(user))
        .and_where(Expr::col("email").is_not_null());
    tx.for_update(&mut q);
    tx.fetch_optional(&q).await
}
