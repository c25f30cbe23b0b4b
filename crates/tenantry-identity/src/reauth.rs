//! Re-authentication for operations that could take an account over.
//!
//! An access token lives 15 minutes and may leak (a shared machine, a log, a browser
//! extension). Whoever holds one may read and edit the account, but must not be able to lock
//! the owner out: changing the password and turning two-step verification on or off also
//! need the current password. A wrong one is throttled exactly like a failed sign-in (the
//! same per-address key), so these endpoints are no side door for guessing passwords.
//!
//! Accounts without a password — guests, and accounts created for a token of an external
//! OIDC issuer — cannot re-authenticate here and get `NoPassword`: guests have nothing to
//! protect, and for external accounts the issuer owns the sign-in (its tokens never pass
//! our password or TOTP check, so a second factor must be set up there).

use serde_json::json;
use tenantry_audit::AuditActor;

use crate::{
    ClientInfo, Identity, IdentityError, User,
    security::{SecurityEventKind, record},
};

/// The operation a re-authentication is for (kept in the failed attempt's security event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reauth {
    PasswordChange,
    MfaEnrollment,
    MfaDisable,
}

impl Reauth {
    fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChange => "password_change",
            Self::MfaEnrollment => "mfa_enrollment",
            Self::MfaDisable => "mfa_disable",
        }
    }
}

impl Identity {
    /// Checks the caller's current password before `purpose`. Returns the account as stored
    /// now. Locked address → `Throttled`; no password → `NoPassword`; wrong password →
    /// `WrongPassword`, after counting a failure against the address's login throttle and
    /// recording a `login_failed` security event.
    pub(crate) async fn reauthenticate(
        &self,
        user_id: tenantry_core::UserId,
        current_password: &str,
        purpose: Reauth,
        client: &ClientInfo,
    ) -> Result<User, IdentityError> {
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
        if self.hasher.verify(current_password, Some(&stored)).await? {
            return Ok(user);
        }
        let mut tx = self.db.begin_write().await?;
        let locked = match &key {
            Some(key) => Self::throttle_failure(&mut tx, key).await?,
            None => None,
        };
        let actor = AuditActor::User(user.id);
        let detail = json!({"during": purpose.as_str()});
        record(
            &mut tx,
            Some(user.id),
            actor,
            SecurityEventKind::LoginFailed,
            client,
            detail,
        )
        .await?;
        if let Some(secs) = locked {
            let detail = json!({"locked_for_secs": secs, "during": purpose.as_str()});
            let kind = SecurityEventKind::LoginLocked;
            record(&mut tx, Some(user.id), actor, kind, client, detail).await?;
        }
        tx.commit().await?;
        Err(IdentityError::WrongPassword)
    }
}
