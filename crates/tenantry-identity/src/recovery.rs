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
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};

use crate::{
    ClientInfo, Identity, IdentityError, User,
    reauth::Reauth,
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
    const ALL: [Self; 2] = [Self::VerifyEmail, Self::ResetPassword];

    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// Whether `change` makes an outstanding link of this purpose stale. Exhaustive on both
    /// sides on purpose: a new link purpose or a new kind of change must decide here.
    fn voided_by(self, change: CredentialChange) -> bool {
        use CredentialChange as C;
        match (self, change) {
            // A reset link is a way in that bypasses the password. Once the owner has changed
            // how the account is secured (or an administrator shut it), a link requested
            // before must not undo that: whoever requested it may have read the mailbox.
            (
                Self::ResetPassword,
                C::PasswordChanged
                | C::PasswordReset
                | C::MfaEnabled
                | C::MfaDisabled
                | C::AccountDisabled,
            ) => true,
            // A verification link proves control of the address it was sent to, and none of
            // these changes the address (`verify_email` also re-checks that the address is
            // still the account's, so a future address change voids it either way). A
            // disabled account keeps no way in, links included.
            (Self::VerifyEmail, C::AccountDisabled) => true,
            (
                Self::VerifyEmail,
                C::PasswordChanged | C::PasswordReset | C::MfaEnabled | C::MfaDisabled,
            ) => false,
        }
    }
}

/// How a new password came: changed by the signed-in owner (whose own session, if any, stays)
/// or reset with a mailed link (every session ends).
#[derive(Debug, Clone, Copy)]
enum PasswordSet {
    Changed { keep: Option<SessionId> },
    Reset,
}

/// A change to how an account is secured, after which some mailed links must stop working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialChange {
    PasswordChanged,
    PasswordReset,
    MfaEnabled,
    MfaDisabled,
    AccountDisabled,
}

/// Voids the user's outstanding link tokens that `change` makes stale, in the transaction of
/// the change itself. Returns how many were voided.
///
/// Why retire rows rather than a per-user "security stamp" that tokens are bound to: the
/// links live in one table we own, so retiring them in the same transaction is atomic with
/// the change, needs no schema change, and lets each change void only what it should (a
/// password change must not void the pending e-mail verification). A stamp would void every
/// kind at once, or need one stamp per kind. Retired tokens are marked used, so redeeming
/// one answers exactly like an unknown or used link (`link_invalid`).
pub(crate) async fn void_links(
    tx: &mut Tx,
    user_id: UserId,
    change: CredentialChange,
) -> Result<u64, DbError> {
    let purposes: Vec<&str> = Purpose::ALL
        .into_iter()
        .filter(|p| p.voided_by(change))
        .map(Purpose::as_str)
        .collect();
    if purposes.is_empty() {
        return Ok(0);
    }
    tx.execute(
        Query::update()
            .table("user_tokens")
            .value("used_at", tx.now())
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("purpose").is_in(purposes))
            .and_where(Expr::col("used_at").is_null()),
    )
    .await
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
    let now = tx.now();
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
    tx.execute(Query::insert().into_table("user_tokens").row([
        ("token_hash", digest.into()),
        ("user_id", user_id.into()),
        ("purpose", purpose.as_str().into()),
        ("email", email.into()),
        ("created_at", now.into()),
        ("expires_at", (now + ttl).into()),
    ]))
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
    let now = tx.now();
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
                .and_where(Expr::col("created_at").gt(tx.now() - RESEND_INTERVAL))
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
                    .value("updated_at", tx.now())
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
        let Ok(email) = Email::parse_for_lookup(email) else {
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
        self.set_password(&mut tx, &user, hash, PasswordSet::Reset, client)
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

    /// Changes the caller's password after checking the current one (see
    /// `Identity::reauthenticate`); the caller's other sessions end.
    pub async fn change_password(
        &self,
        user_id: UserId,
        current_session: Option<SessionId>,
        current_password: &str,
        new_password: &Password,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let user = self
            .reauthenticate(user_id, current_password, Reauth::PasswordChange, client)
            .await?;
        let hash = self.hash_password(new_password).await?;
        let mut tx = self.db.begin_write().await?;
        let set = PasswordSet::Changed {
            keep: current_session,
        };
        self.set_password(&mut tx, &user, hash, set, client).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    /// Stores a new hash, ends sessions (all but the changing caller's own), voids
    /// outstanding reset links and any TOTP enrolment not yet confirmed, records the event
    /// and notifies.
    async fn set_password(
        &self,
        tx: &mut Tx,
        user: &User,
        hash: String,
        set: PasswordSet,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let now = tx.now();
        tx.execute(
            Query::update()
                .table("users")
                .value("password_hash", hash)
                .value("password_changed_at", now)
                // An enrolment started before (perhaps by whoever made the password change
                // necessary) must be started again with the new password.
                .value("mfa_pending_secret", Option::<Vec<u8>>::None)
                .value("updated_at", now)
                .and_where(Expr::col("id").eq(user.id)),
        )
        .await?;
        let (keep, reason, kind, how, change) = match set {
            PasswordSet::Changed { keep } => (
                keep,
                "password_changed",
                SecurityEventKind::PasswordChanged,
                "changed",
                CredentialChange::PasswordChanged,
            ),
            PasswordSet::Reset => (
                None,
                "password_reset",
                SecurityEventKind::PasswordReset,
                "reset with an e-mailed link",
                CredentialChange::PasswordReset,
            ),
        };
        crate::sessions::revoke_all(tx, user.id, keep, reason).await?;
        let voided = void_links(tx, user.id, change).await?;
        let actor = AuditActor::User(user.id);
        let detail = json!({ "links_voided": voided });
        record(tx, Some(user.id), actor, kind, client, detail).await?;
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
