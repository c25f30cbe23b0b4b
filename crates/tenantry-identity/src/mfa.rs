//! TOTP (RFC 6238) second factor with recovery codes.
//!
//! The secret is sealed with the data key (bound to the user id) while pending and once
//! confirmed. A code's time step is accepted once (`mfa_last_step`), so a code seen over a
//! shoulder cannot be replayed. Recovery codes (10, shown once) are stored as keyed MACs and
//! work once each.

use rand::{Rng, RngCore};
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::UserId;
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::{
    ClientInfo, Identity, IdentityError, User,
    reauth::Reauth,
    recovery::{CredentialChange, void_links},
    security::{SecurityEventKind, audit, record},
};

pub const RECOVERY_CODES: usize = 10;
const ISSUER: &str = "Tenantry";
/// Recovery code alphabet: no 0/O, 1/l/I.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// What enrolment hands the user once.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// Base32, for manual entry.
    pub secret: String,
    pub otpauth_url: String,
}

struct MfaState {
    secret: Option<Vec<u8>>,
    pending: Option<Vec<u8>>,
    last_step: Option<i64>,
}

impl FromRow for MfaState {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            secret: row.opt_bytes()?,
            pending: row.opt_bytes()?,
            last_step: row.opt_i64()?,
        })
    }
}

fn active_context(user: UserId) -> String {
    format!("totp:{user}")
}

fn pending_context(user: UserId) -> String {
    format!("totp-pending:{user}")
}

fn totp(secret: Vec<u8>, account: &str) -> Result<Totp, IdentityError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(Secret::from(secret))
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| IdentityError::Internal(anyhow::anyhow!("building TOTP: {e}")))
}

fn unix_now() -> u64 {
    // The authenticator app's real time, never a test's clock.
    u64::try_from(tenantry_core::now().timestamp()).unwrap_or(0)
}

fn new_recovery_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    code
}

fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Identity {
    async fn mfa_state(tx: &mut Tx, user: UserId) -> Result<MfaState, IdentityError> {
        tx.fetch_optional(
            Query::select()
                .columns(["mfa_secret", "mfa_pending_secret", "mfa_last_step"])
                .from("users")
                .and_where(Expr::col("id").eq(user)),
        )
        .await?
        .ok_or(IdentityError::UserNotFound)
    }

    fn recovery_mac(&self, user: UserId, code: &str) -> Vec<u8> {
        let normalised = normalise_recovery_code(code);
        self.key
            .mac("mfa-recovery", format!("{user}:{normalised}").as_bytes())
            .to_vec()
    }

    /// Starts (or restarts) enrolment: a new pending secret. Needs the current password (see
    /// `crate::reauth`): a stolen access token alone must not be able to put a second
    /// factor the owner does not have on the account. Confirming needs no password again:
    /// it takes a code of the secret that only this call handed out.
    pub async fn totp_enroll(
        &self,
        user: &User,
        current_password: &str,
        client: &ClientInfo,
    ) -> Result<TotpEnrollment, IdentityError> {
        if user.is_guest {
            return Err(IdentityError::NoPassword);
        }
        let user = &self
            .reauthenticate(user.id, current_password, Reauth::MfaEnrollment, client)
            .await?;
        if user.mfa_enabled {
            return Err(IdentityError::MfaAlreadyEnabled);
        }
        let mut secret = vec![0u8; 20];
        rand::rng().fill_bytes(&mut secret);
        let account = user.email.clone().unwrap_or_else(|| user.id.to_string());
        let generator = totp(secret.clone(), &account)?;
        let sealed = self.key.seal(&secret, &pending_context(user.id));
        let mut tx = self.db.begin_write().await?;
        tx.execute(
            Query::update()
                .table("users")
                .value("mfa_pending_secret", sealed)
                .and_where(Expr::col("id").eq(user.id))
                .and_where(Expr::col("mfa_enabled").eq(false)),
        )
        .await?;
        audit(
            &mut tx,
            user.id,
            AuditActor::User(user.id),
            client,
            Entry::new("user.mfa_enrollment_started", "user", user.id),
        )
        .await?;
        tx.commit().await?;
        Ok(TotpEnrollment {
            secret: generator.secret().to_base32(),
            otpauth_url: generator
                .to_url()
                .map_err(|e| IdentityError::Internal(anyhow::anyhow!("otpauth URL: {e}")))?,
        })
    }

    /// Confirms enrolment with a current code; returns the recovery codes (shown once).
    pub async fn totp_confirm(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let state = Self::mfa_state(&mut tx, user.id).await?;
        if user.mfa_enabled || state.secret.is_some() {
            return Err(IdentityError::MfaAlreadyEnabled);
        }
        let pending = state.pending.ok_or(IdentityError::MfaNotPending)?;
        let secret = self.key.open(&pending, &pending_context(user.id))?;
        let step = totp(secret.clone(), "x")?
            .check(code.trim(), unix_now())
            .ok_or(IdentityError::InvalidCode)?;
        tx.execute(
            Query::update()
                .table("users")
                .value(
                    "mfa_secret",
                    self.key.seal(&secret, &active_context(user.id)),
                )
                .value("mfa_pending_secret", Option::<Vec<u8>>::None)
                .value("mfa_enabled", true)
                .value("mfa_last_step", i64::try_from(step).unwrap_or(i64::MAX))
                .value("updated_at", tx.now())
                .and_where(Expr::col("id").eq(user.id)),
        )
        .await?;
        let codes = self.replace_recovery_codes(&mut tx, user.id).await?;
        let voided = void_links(&mut tx, user.id, CredentialChange::MfaEnabled).await?;
        record(
            &mut tx,
            Some(user.id),
            AuditActor::User(user.id),
            SecurityEventKind::MfaEnabled,
            client,
            json!({ "links_voided": voided }),
        )
        .await?;
        self.notify_mfa(&mut tx, user, true).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(codes)
    }

    /// Turns MFA off; needs the current password (see `crate::reauth`) and a current code
    /// or an unused recovery code. A wrong code counts against the login throttle like a
    /// wrong code at sign-in, so this is no unthrottled way to guess codes.
    pub async fn totp_disable(
        &self,
        user: &User,
        current_password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let user = &self
            .reauthenticate(user.id, current_password, Reauth::MfaDisable, client)
            .await?;
        if !user.mfa_enabled {
            return Err(IdentityError::MfaNotEnabled);
        }
        let mut tx = self.db.begin_write().await?;
        if !self
            .check_second_factor(&mut tx, user.id, code, client)
            .await?
        {
            drop(tx);
            if let Some(email) = user.email.as_deref() {
                let key = self.throttle_key(email);
                self.login_failed(&key, Some(user.id), SecurityEventKind::MfaFailed, client)
                    .await?;
            }
            return Err(IdentityError::InvalidCode);
        }
        tx.execute(
            Query::update()
                .table("users")
                .value("mfa_secret", Option::<Vec<u8>>::None)
                .value("mfa_pending_secret", Option::<Vec<u8>>::None)
                .value("mfa_enabled", false)
                .value("mfa_last_step", Option::<i64>::None)
                .value("updated_at", tx.now())
                .and_where(Expr::col("id").eq(user.id)),
        )
        .await?;
        tx.execute(
            Query::delete()
                .from_table("mfa_recovery_codes")
                .and_where(Expr::col("user_id").eq(user.id)),
        )
        .await?;
        let voided = void_links(&mut tx, user.id, CredentialChange::MfaDisabled).await?;
        record(
            &mut tx,
            Some(user.id),
            AuditActor::User(user.id),
            SecurityEventKind::MfaDisabled,
            client,
            json!({ "links_voided": voided }),
        )
        .await?;
        self.notify_mfa(&mut tx, user, false).await?;
        tx.commit().await?;
        self.mailer.wake();
        Ok(())
    }

    async fn notify_mfa(
        &self,
        tx: &mut Tx,
        user: &User,
        enabled: bool,
    ) -> Result<(), IdentityError> {
        if let Some(email) = user.email.as_deref() {
            self.mailer
                .enqueue(
                    tx,
                    email,
                    "mfa_changed",
                    &json!({
                        "first_name": user.first_name,
                        "enabled": enabled,
                        "at": tx.now().format("%Y-%m-%d %H:%M").to_string(),
                    }),
                )
                .await?;
        }
        Ok(())
    }

    async fn replace_recovery_codes(
        &self,
        tx: &mut Tx,
        user: UserId,
    ) -> Result<Vec<String>, IdentityError> {
        tx.execute(
            Query::delete()
                .from_table("mfa_recovery_codes")
                .and_where(Expr::col("user_id").eq(user)),
        )
        .await?;
        let now = tx.now();
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let mut insert = Query::insert();
        insert.into_table("mfa_recovery_codes");
        for code in &codes {
            insert.row([
                ("code_hash", self.recovery_mac(user, code).into()),
                ("user_id", user.into()),
                ("created_at", now.into()),
            ]);
        }
        tx.execute(&insert).await?;
        Ok(codes)
    }

    /// Checks a TOTP code (each time step once) or a recovery code (each once) in `tx`,
    /// consuming it. Writes the recovery-code event when one is used.
    pub(crate) async fn check_second_factor(
        &self,
        tx: &mut Tx,
        user: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<bool, IdentityError> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let state = Self::mfa_state(tx, user).await?;
            let Some(sealed) = state.secret else {
                return Ok(false);
            };
            let secret = self.key.open(&sealed, &active_context(user))?;
            let Some(step) = totp(secret, "x")?.check(code, unix_now()) else {
                return Ok(false);
            };
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            if state.last_step.is_some_and(|last| step <= last) {
                return Ok(false);
            }
            // Compare-and-set: of two concurrent logins with one code, one wins.
            let accepted = tx
                .execute(
                    Query::update()
                        .table("users")
                        .value("mfa_last_step", step)
                        .and_where(Expr::col("id").eq(user))
                        .and_where(
                            Expr::col("mfa_last_step")
                                .is_null()
                                .or(Expr::col("mfa_last_step").lt(step)),
                        ),
                )
                .await?;
            return Ok(accepted == 1);
        }
        let used = tx
            .execute(
                Query::update()
                    .table("mfa_recovery_codes")
                    .value("used_at", tx.now())
                    .and_where(Expr::col("code_hash").eq(self.recovery_mac(user, code)))
                    .and_where(Expr::col("user_id").eq(user))
                    .and_where(Expr::col("used_at").is_null()),
            )
            .await?;
        if used == 1 {
            // Only a valid code is recorded: the request proved to be the user's.
            record(
                tx,
                Some(user),
                AuditActor::User(user),
                SecurityEventKind::RecoveryCodeUsed,
                client,
                json!({}),
            )
            .await?;
        }
        Ok(used == 1)
    }

    /// How many unused recovery codes the user has.
    pub async fn recovery_codes_left(&self, user: UserId) -> Result<i64, IdentityError> {
        let left: Option<i64> = self
            .db
            .read_optional(
                Query::select()
                    .expr(sea_query::Func::count(Expr::col("code_hash")))
                    .from("mfa_recovery_codes")
                    .and_where(Expr::col("user_id").eq(user))
                    .and_where(Expr::col("used_at").is_null()),
            )
            .await?;
        Ok(left.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_readable_and_normalise() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert_eq!(
            normalise_recovery_code(&code.to_uppercase()),
            code.replace('-', "")
        );
        assert_eq!(normalise_recovery_code(" abcde fghij "), "abcdefghij");
    }

    #[test]
    fn totp_accepts_current_and_adjacent_steps_only() {
        let t = totp(vec![7u8; 20], "ada@example.com").unwrap();
        let now = 1_700_000_000u64;
        let code = t.generate(now).to_string();
        assert!(t.check(&code, now).is_some());
        assert!(t.check(&code, now + 30).is_some(), "skew 1");
        assert!(t.check(&code, now + 90).is_none());
        assert!(
            t.to_url()
                .unwrap()
                .starts_with("otpauth://totp/Tenantry:ada%40example.com?")
        );
    }
}
