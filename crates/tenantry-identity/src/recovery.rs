//! E-mail verification, password recovery and password change.
//!
//! Link tokens are 256 random bits, mailed once and stored only as a SHA-256 digest
//! (`user_tokens`), single-use and short-lived. Requests that start a flow by e-mail address
//! answer the same whether or not an account exists, and do their work off the request.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Email, Password, SessionId, UserId};
use tenantry_db::{DbError, FromRow, Row, Tx};

use crate::{
    ClientInfo, Identity, IdentityError, User,
    security::{SecurityEventKind, audit, record},
    service::UserWithHash,
    tokens,
};

pub const RESET_TTL: TimeDelta = TimeDelta::hours(1);
pub const VERIFY_TTL: TimeDelta = TimeDelta::hours(24);
/// A new verification or reset mail is sent at most this often per account.
const RESEND_INTERVAL: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

struct LinkToken {
    user_id: UserId,
    email: Option<String>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl FromRow for LinkToken {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            user_id: row.id()?,
            email: row.opt_string()?,
            expires_at: row.time()?,
            used_at: row.opt_time()?,
        })
    }
}

/// Issues a link token in `tx`, retiring the user's earlier unused ones of that purpose.
async fn issue(
    tx: &mut Tx,
    user_id: UserId,
    purpose: Purpose,
    email: &str,
    ttl: TimeDelta,
) -> Result<String, DbError> {
    let now = tenantry_core::now();
    tx.execute(
        Query::update()
            .table("user_tokens")
            .value("used_at", now)
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("purpose").eq(purpose.as_str()))
            .and_where(Expr::col("used_at").is_null()),
    )
    .await?;
    let (token, digest) = tokens::new_link_token();
    tx.execute(
        Query::insert()
            .into_table("user_tokens")
            .columns([
                "token_hash",
                "user_id",
                "purpose",
                "email",
                "created_at",
                "expires_at",
            ])
            .values_panic([
                digest.into(),
                user_id.into(),
                purpose.as_str().into(),
                email.into(),
                now.into(),
                (now + ttl).into(),
            ]),
    )
    .await?;
    Ok(token)
}

/// Claims a link token in `tx`: valid, unused and unexpired, then marked used. Exactly one
/// of several concurrent claims succeeds.
async fn redeem(tx: &mut Tx, token: &str, purpose: Purpose) -> Result<LinkToken, IdentityError> {
    let digest = tokens::digest(token);
    let found: Option<LinkToken> = tx
        .fetch_optional(
            Query::select()
                .columns(["user_id", "email", "expires_at", "used_at"])
                .from("user_tokens")
                .and_where(Expr::col("token_hash").eq(digest.clone()))
                .and_where(Expr::col("purpose").eq(purpose.as_str())),
        )
        .await?;
    let now = tenantry_core::now();
    let Some(found) = found.filter(|t| t.used_at.is_none() && t.expires_at > now) else {
        return Err(IdentityError::LinkInvalid);
    };
    let claimed = tx
        .execute(
            Query::update()
                .table("user_tokens")
                .value("used_at", now)
                .and_where(Expr::col("token_hash").eq(digest))
                .and_where(Expr::col("used_at").is_null()),
        )
        .await?;
    if claimed != 1 {
        return Err(IdentityError::LinkInvalid);
    }
    Ok(found)
}

/// Whether a token of `purpose` was issued to the user within the resend interval.
async fn recently_issued(tx: &mut Tx, user_id: UserId, purpose: Purpose) -> Result<bool, DbError> {
    let recent: Option<uuid::Uuid> = tx
        .fetch_optional(
            Query::select()
                .column("user_id")
                .from("user_tokens")
                .and_where(Expr::col("user_id").eq(user_id))
                .and_where(Expr::col("purpose").eq(purpose.as_str()))
                .and_where(Expr::col("created_at").gt(tenantry_core::now() - RESEND_INTERVAL))
                .limit(1),
        )
        .await?;
    Ok(recent.is_some())
}

impl Identity {
    /// A link into the web application for a mailed token: `<public_url>/<path>?token=…`.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}?token={token}", self.public_url)
    }

    /// Queues the verification mail for a new (or changed) address, in the caller's
    /// transaction. Call `mailer().wake()` after committing.
    pub async fn queue_verification(&self, tx: &mut Tx, user: &User) -> Result<(), IdentityError> {
        let Some(email) = user.email.as_deref() else {
            return Ok(());
        };
        let token = issue(tx, user.id, Purpose::VerifyEmail, email, VERIFY_TTL).await?;
        self.mailer
            .enqueue(
                tx,
                email,
                "verify_email",
                &json!({
                    "first_name": user.first_name,
                    "email": email,
                    "link": self.link("verify-email", &token),
                    "expires_in_hours": VERIFY_TTL.num_hours(),
                }),
            )
            .await?;
        Ok(())
    }

    /// Sends a new verification mail to the caller (at most one a minute). `Ok(false)` when
    /// nothing was sent because the address is already verified or one was just sent.
    pub async fn resend_verification(
        &self,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<bool, IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let user = Self::user_in(&mut tx, user_id).await?;
        if user.email_verified
            || user.email.is_none()
            || recently_issued(&mut tx, user_id, Purpose::VerifyEmail).await?
        {
            return Ok(false);
        }
        self.queue_verification(&mut tx, &user).await?;
        audit(
            &mut tx,
            user_id,
            AuditActor::User(user_id),
            client,
            Entry::new("user.verification_sent", "user", user_id),
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(true)
    }

    /// Marks the address the token was sent to as verified (if it is still the user's).
    pub async fn verify_email(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let found = redeem(&mut tx, token, Purpose::VerifyEmail).await?;
        let updated = tx
            .execute(
                Query::update()
                    .table("users")
                    .value("email_verified", true)
                    .value("updated_at", tenantry_core::now())
                    .and_where(Expr::col("id").eq(found.user_id))
                    .and_where(Expr::col("email").eq(found.email.clone())),
            )
            .await?;
        if updated != 1 {
            return Err(IdentityError::LinkInvalid);
        }
        record(
            &mut tx,
            Some(found.user_id),
            AuditActor::User(found.user_id),
            SecurityEventKind::EmailVerified,
            client,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a password reset for `email`. Always succeeds from the caller's point of view;
    /// the work runs in the background so that timing says nothing about the account.
    pub fn forgot_password(&self, email: &str, client: ClientInfo) {
        let Ok(email) = Email::parse(email) else {
            return;
        };
        let identity = self.clone();
        tokio::spawn(async move {
            if let Err(e) = identity.send_reset(&email, &client).await {
                tracing::warn!(error = %e, "password reset mail not queued");
            }
        });
    }

    async fn send_reset(&self, email: &Email, client: &ClientInfo) -> Result<(), IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let found: Option<UserWithHash> = tx
            .fetch_optional(&UserWithHash::select(Expr::col("email").eq(email.as_str())))
            .await?;
        // Only active accounts that sign in with a password can reset one.
        let Some(UserWithHash {
            user,
            password_hash: Some(_),
        }) = found
        else {
            return Ok(());
        };
        if user.status != crate::UserStatus::Active
            || recently_issued(&mut tx, user.id, Purpose::ResetPassword).await?
        {
            return Ok(());
        }
        let token = issue(
            &mut tx,
            user.id,
            Purpose::ResetPassword,
            email.as_str(),
            RESET_TTL,
        )
        .await?;
        self.mailer
            .enqueue(
                &mut tx,
                email.as_str(),
                "password_reset",
                &json!({
                    "first_name": user.first_name,
                    "link": self.link("reset-password", &token),
                    "expires_in_minutes": RESET_TTL.num_minutes(),
                }),
            )
            .await?;
        record(
            &mut tx,
            Some(user.id),
            AuditActor::Anonymous,
            SecurityEventKind::PasswordResetRequested,
            client,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// Sets a new password with a reset token; every session of the user ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &Password,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let hash = self.hash_password(new_password).await?;
        let mut tx = self.db.begin_write().await?;
        let found = redeem(&mut tx, token, Purpose::ResetPassword).await?;
        let user = Self::user_in(&mut tx, found.user_id).await?;
        if user.status != crate::UserStatus::Active || user.email != found.email {
            return Err(IdentityError::LinkInvalid);
        }
        // The link reached the mailbox: that proves the address too.
        self.set_password(&mut tx, &user, hash, None, "password_reset", client)
            .await?;
        tx.execute(
            Query::update()
                .table("users")
                .value("email_verified", true)
                .and_where(Expr::col("id").eq(user.id)),
        )
        .await?;
        if let Some(email) = &user.email {
            // Unlocks the account: the owner of the mailbox proved who they are.
            Self::clear_throttle(&mut tx, &self.throttle_key(email)).await?;
        }
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// Changes the caller's password after checking the current one; the caller's other
    /// sessions end.
    pub async fn change_password(
        &self,
        user_id: UserId,
        current_session: Option<SessionId>,
        current_password: &str,
        new_password: &Password,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let (user, stored) = self.user_with_hash(user_id).await?;
        let Some(stored) = stored else {
            return Err(IdentityError::NoPassword);
        };
        let key = user.email.as_deref().map(|e| self.throttle_key(e));
        if let Some(key) = &key
            && let Some(secs) = self.throttled_for(key).await?
        {
            return Err(IdentityError::Throttled {
                retry_after_secs: secs,
            });
        }
        if !self.hasher.verify(current_password, Some(&stored)).await? {
            let mut tx = self.db.begin_write().await?;
            if let Some(key) = &key {
                Self::throttle_failure(&mut tx, key).await?;
            }
            record(
                &mut tx,
                Some(user.id),
                AuditActor::User(user.id),
                SecurityEventKind::LoginFailed,
                client,
                json!({"during": "password_change"}),
            )
            .await?;
            tx.commit().await?;
            return Err(IdentityError::WrongPassword);
        }
        let hash = self.hash_password(new_password).await?;
        let mut tx = self.db.begin_write().await?;
        self.set_password(
            &mut tx,
            &user,
            hash,
            current_session,
            "password_changed",
            client,
        )
        .await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// Stores a new hash, ends sessions (all but `keep`), records the event and notifies.
    async fn set_password(
        &self,
        tx: &mut Tx,
        user: &User,
        hash: String,
        keep: Option<SessionId>,
        reason: &'static str,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let now = tenantry_core::now();
        tx.execute(
            Query::update()
                .table("users")
                .value("password_hash", hash)
                .value("password_changed_at", now)
                .value("updated_at", now)
                .and_where(Expr::col("id").eq(user.id)),
        )
        .await?;
        crate::sessions::revoke_all(tx, user.id, keep, reason).await?;
        let (kind, how) = if keep.is_some() {
            (SecurityEventKind::PasswordChanged, "changed")
        } else {
            (
                SecurityEventKind::PasswordReset,
                "reset with an e-mailed link",
            )
        };
        let actor = AuditActor::User(user.id);
        record(tx, Some(user.id), actor, kind, client, json!({})).await?;
        if let Some(email) = user.email.as_deref() {
            self.mailer
                .enqueue(
                    tx,
                    email,
                    "password_changed",
                    &json!({
                        "first_name": user.first_name,
                        "how": how,
                        "at": now.format("%Y-%m-%d %H:%M").to_string(),
                    }),
                )
                .await?;
        }
        Ok(())
    }
}
