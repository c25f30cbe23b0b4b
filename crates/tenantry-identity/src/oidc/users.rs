//! The account behind an external identity: found by (issuer, subject); on first sight
//! linked to an existing account by a verified e-mail (where the provider allows it) or
//! created. Such an account has no password and no tenant until invited or assigned.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Origin, UserId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};
use tenantry_events::EventType;

use super::{ExternalClaims, Provider};
use crate::{
    Authenticated, Credential, Identity, IdentityError, User, UserStatus,
    security::{SecurityEventKind, record, record_account},
    service::{UserRow, insert_user_row},
};

/// `last_seen_at` is written at most this often per identity.
const LAST_SEEN_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

/// Tries at creating the account before giving up (each lost race re-reads).
const CREATE_ATTEMPTS: usize = 3;

struct Linked {
    user: User,
    last_seen_at: DateTime<Utc>,
}

impl FromRow for Linked {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            user: User::from_row(row)?,
            last_seen_at: row.time()?,
        })
    }
}

fn linked_query(issuer: &str, subject: &str) -> sea_query::SelectStatement {
    Query::select()
        .columns(User::qualified_columns())
        .column(("external_identities", "last_seen_at"))
        .from("external_identities")
        .inner_join(
            "users",
            Expr::col(("users", "id")).equals(("external_identities", "user_id")),
        )
        .and_where(Expr::col(("external_identities", "issuer")).eq(issuer))
        .and_where(Expr::col(("external_identities", "subject")).eq(subject))
        .to_owned()
}

impl Identity {
    /// Verifies a token of an external issuer and returns its (active) account.
    pub(crate) async fn authenticate_external(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<Authenticated, IdentityError> {
        // The token's times against the system clock, as `jsonwebtoken` checks them.
        let claims = provider.verify(token, crate::tokens::token_time()).await?;
        let user = self.external_user(provider, &claims, self.db.now()).await?;
        if user.status != UserStatus::Active {
            return Err(IdentityError::InvalidToken);
        }
        Ok(Authenticated {
            user,
            credential: Credential::External {
                issuer: Arc::from(provider.issuer()),
            },
        })
    }

    async fn external_user(
        &self,
        provider: &Provider,
        claims: &ExternalClaims,
        now: DateTime<Utc>,
    ) -> Result<User, IdentityError> {
        let issuer = provider.issuer();
        for _ in 0..CREATE_ATTEMPTS {
            let found: Option<Linked> = self
                .db
                .read_optional(&linked_query(issuer, &claims.subject))
                .await?;
            if let Some(found) = found {
                if now - found.last_seen_at >= LAST_SEEN_RESOLUTION {
                    self.touch(issuer, &claims.subject, now).await?;
                }
                return Ok(found.user);
            }
            match self.first_sight(provider, claims, now).await {
                Ok(user) => return Ok(user),
                // Another request created the identity (or took the address) meanwhile:
                // read again.
                Err(IdentityError::Db(DbError::UniqueViolation { .. })) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(IdentityError::Internal(anyhow::anyhow!(
            "could not resolve the account of an external identity"
        )))
    }

    async fn touch(&self, issuer: &str, subject: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let mut tx = self.db.begin_write().await?;
        tx.execute(
            Query::update()
                .table("external_identities")
                .value("last_seen_at", now)
                .and_where(Expr::col("issuer").eq(issuer))
                .and_where(Expr::col("subject").eq(subject)),
        )
        .await?;
        tx.commit().await
    }

    /// Links or creates the account of an identity seen for the first time.
    async fn first_sight(
        &self,
        provider: &Provider,
        claims: &ExternalClaims,
        now: DateTime<Utc>,
    ) -> Result<User, IdentityError> {
        let issuer = provider.issuer();
        let mut tx = self.db.begin_write().await?;
        // Another request may have won since our read.
        if let Some(found) = tx
            .fetch_optional::<Linked, _>(&linked_query(issuer, &claims.subject))
            .await?
        {
            tx.commit().await?;
            return Ok(found.user);
        }
        let holder = match &claims.email {
            Some(email) => email_holder(&mut tx, email).await?,
            None => None,
        };
        let user_id = match holder {
            // Only an address the issuer vouches for may join an existing account, and only
            // where the operator allowed it; never a guest or disabled account.
            Some(holder)
                if provider.link_by_verified_email
                    && claims.email_verified
                    && holder.status == UserStatus::Active
                    && !holder.is_guest =>
            {
                tx.execute(
                    Query::update()
                        .table("users")
                        .value("email_verified", true)
                        .value("updated_at", now)
                        .and_where(Expr::col("id").eq(holder.id)),
                )
                .await?;
                record(
                    &mut tx,
                    Some(holder.id),
                    AuditActor::User(holder.id),
                    SecurityEventKind::ExternalIdentityLinked,
                    &Origin::NONE,
                    json!({ "issuer": issuer, "subject": claims.subject }),
                )
                .await?;
                tracing::info!(user_id = %holder.id, issuer, "external identity linked by verified e-mail");
                holder.id
            }
            // The address belongs to someone else: the new account goes without it.
            Some(_) => insert_user(&mut tx, claims, None, issuer, now).await?,
            None => insert_user(&mut tx, claims, claims.email.as_deref(), issuer, now).await?,
        };
        tx.execute(Query::insert().into_table("external_identities").row([
            ("issuer", issuer.into()),
            ("subject", claims.subject.clone().into()),
            ("user_id", user_id.into()),
            ("email", claims.email.clone().into()),
            ("created_at", now.into()),
            ("last_seen_at", now.into()),
        ]))
        .await?;
        let user = Self::user_in(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(user)
    }
}

async fn email_holder(tx: &mut Tx, email: &str) -> Result<Option<User>, DbError> {
    tx.fetch_optional(&User::select(Expr::col("email").eq(email)))
        .await
}

/// A new account without password (so password login and reset do not apply to it).
async fn insert_user(
    tx: &mut Tx,
    claims: &ExternalClaims,
    email: Option<&str>,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<UserId, DbError> {
    let row = UserRow {
        email,
        email_verified: email.is_some() && claims.email_verified,
        first_name: &claims.given_name,
        last_name: &claims.family_name,
        ..UserRow::default()
    };
    let id = insert_user_row(tx, row, now).await?;
    record_account(
        tx,
        id,
        AuditActor::User(id),
        &Origin::NONE,
        Entry::new("user.created", "user", id)
            .with_summary(json!({ "issuer": issuer, "email": email })),
        EventType::UserCreated,
    )
    .await?;
    tracing::info!(user_id = %id, "user created for an external identity");
    Ok(id)
}
