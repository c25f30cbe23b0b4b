//! Signing in: password (with throttling and a second factor) and guest sessions.

use rand::Rng;
use sea_query::{Expr, ExprTrait};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Email, UserId};
use tenantry_events::EventType;

use crate::{
    ClientInfo, Identity, IdentityError, TokenPair, User, UserStatus,
    security::{SecurityEventKind, record, record_account},
    service::{UserRow, UserWithHash, insert_user_row},
};

impl Identity {
    /// The account with this e-mail (if any) and whether `password` is its password.
    /// Unknown e-mail and wrong password cost the same work.
    async fn verify_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(Option<User>, bool), IdentityError> {
        let email = Email::parse_for_lookup(email).ok();
        let found: Option<UserWithHash> = match &email {
            Some(email) => {
                self.db
                    .read_optional(&UserWithHash::select(Expr::col("email").eq(email.as_str())))
                    .await?
            }
            None => None,
        };
        let stored_hash = found.as_ref().and_then(|u| u.password_hash.as_deref());
        let matches = self.hasher.verify(password, stored_hash).await?;
        Ok((found.map(|u| u.user), matches))
    }

    /// The active account these credentials belong to, if they are right. Unknown e-mail,
    /// wrong password and disabled accounts cost the same work and all answer `None`.
    /// (No throttling and no second factor: for operator tooling, not for sign-in.)
    pub async fn check_credentials(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, IdentityError> {
        let (found, matches) = self.verify_password(email, password).await?;
        Ok(found.filter(|user| matches && user.status == UserStatus::Active))
    }

    /// Signs in with e-mail, password and (for accounts with two-step verification) a TOTP
    /// or recovery code, and opens a session. Failures are throttled per address (see
    /// `throttle`) and recorded as security events.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        mfa_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(User, TokenPair), IdentityError> {
        let key = self.throttle_key(email);
        let throttle = self.throttle_state(&key).await?;
        if let Some(secs) = throttle.locked_for {
            return Err(IdentityError::Throttled {
                retry_after_secs: secs,
            });
        }
        let (found, matches) = self.verify_password(email, password).await?;
        let user = match found {
            Some(user) if matches && user.status == UserStatus::Active => user,
            found => {
                self.login_failed(
                    &key,
                    found.map(|u| u.id),
                    SecurityEventKind::LoginFailed,
                    client,
                )
                .await?;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        if user.mfa_enabled {
            let Some(code) = mfa_code.filter(|c| !c.trim().is_empty()) else {
                return Err(IdentityError::MfaRequired);
            };
            let mut tx = self.db.begin_write().await?;
            let ok = self
                .check_second_factor(&mut tx, user.id, code, client)
                .await?;
            tx.commit().await?;
            if !ok {
                self.login_failed(&key, Some(user.id), SecurityEventKind::MfaFailed, client)
                    .await?;
                return Err(IdentityError::MfaInvalid);
            }
        }
        if throttle.recorded {
            self.throttle_success(&key).await?;
        }
        let tokens = self
            .open_session(user.id, client, self.refresh_ttl_secs, "password")
            .await?;
        tracing::info!(user_id = %user.id, session_id = %tokens.session_id, "login");
        Ok((user, tokens))
    }

    /// Counts a failed attempt against `key` and records it (with the lock it caused).
    pub(crate) async fn login_failed(
        &self,
        key: &crate::throttle::ThrottleKey,
        user_id: Option<UserId>,
        kind: SecurityEventKind,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let locked = Self::throttle_failure(&mut tx, key).await?;
        // Failures against unknown addresses are throttled but not recorded: there is no
        // account to attach them to, and the address itself is not kept.
        if user_id.is_some() {
            let anonymous = AuditActor::Anonymous;
            record(&mut tx, user_id, anonymous, kind, client, json!({})).await?;
            if let Some(secs) = locked {
                record(
                    &mut tx,
                    user_id,
                    anonymous,
                    SecurityEventKind::LoginLocked,
                    client,
                    json!({ "locked_for_secs": secs }),
                )
                .await?;
            }
        }
        tx.commit().await?;
        tracing::warn!(event = "login_failed", locked_for_secs = ?locked, "login failed");
        Ok(())
    }

    /// A short-lived anonymous account with its own session.
    pub async fn guest(&self, client: &ClientInfo) -> Result<(User, TokenPair), IdentityError> {
        let display_name = format!("guest-{:04}", rand::rng().random_range(0..10_000));
        let mut tx = self.db.begin_write().await?;
        let row = UserRow {
            display_name: Some(display_name),
            is_guest: true,
            ..UserRow::default()
        };
        let now = tx.now();
        let id = insert_user_row(&mut tx, row, now).await?;
        let user = Self::user_in(&mut tx, id).await?;
        record_account(
            &mut tx,
            id,
            AuditActor::User(id),
            client,
            Entry::new("user.created", "user", id)
                .with_summary(json!({"guest": true, "display_name": user.display_name})),
            EventType::UserCreated,
        )
        .await?;
        tx.commit().await?;
        let tokens = self
            .open_session(id, client, self.guest_ttl_secs, "guest")
            .await?;
        Ok((user, tokens))
    }
}
