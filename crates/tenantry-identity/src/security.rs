//! Security events of an account (login failures, lockouts, refresh-token reuse, password
//! and MFA changes), written in the same transaction as what they describe, together with
//! their audit record in the account's chain. Users see their own events.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde::Serialize;
use tenantry_audit::{AuditActor, Chain, Entry, Outcome};
use tenantry_core::{Origin, Page, PageRequest, UserId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};
use utoipa::ToSchema;
use uuid::Uuid;

use tenantry_events::{Event, EventType};

use crate::{ClientInfo, Identity, IdentityError, User, UserView};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    LoginFailed,
    LoginLocked,
    MfaFailed,
    RefreshTokenReused,
    PasswordChanged,
    PasswordReset,
    PasswordResetRequested,
    EmailVerified,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    ExternalIdentityLinked,
    AccountDisabled,
    AccountEnabled,
}

impl SecurityEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginFailed => "login_failed",
            Self::LoginLocked => "login_locked",
            Self::MfaFailed => "mfa_failed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::EmailVerified => "email_verified",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::ExternalIdentityLinked => "external_identity_linked",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
        }
    }

    /// The audit action: `user.<kind>`.
    pub fn action(self) -> &'static str {
        match self {
            Self::LoginFailed => "user.login_failed",
            Self::LoginLocked => "user.login_locked",
            Self::MfaFailed => "user.mfa_failed",
            Self::RefreshTokenReused => "user.refresh_token_reused",
            Self::PasswordChanged => "user.password_changed",
            Self::PasswordReset => "user.password_reset",
            Self::PasswordResetRequested => "user.password_reset_requested",
            Self::EmailVerified => "user.email_verified",
            Self::MfaEnabled => "user.mfa_enabled",
            Self::MfaDisabled => "user.mfa_disabled",
            Self::RecoveryCodeUsed => "user.recovery_code_used",
            Self::ExternalIdentityLinked => "user.external_identity_linked",
            Self::AccountDisabled => "user.disabled",
            Self::AccountEnabled => "user.enabled",
        }
    }

    /// The domain event of an account change, if this kind is one (refused attempts and
    /// requests change no account state).
    pub fn event(self) -> Option<EventType> {
        match self {
            Self::PasswordChanged | Self::PasswordReset => Some(EventType::UserPasswordChanged),
            Self::EmailVerified => Some(EventType::UserEmailVerified),
            Self::MfaEnabled => Some(EventType::UserMfaEnabled),
            Self::MfaDisabled => Some(EventType::UserMfaDisabled),
            Self::AccountDisabled => Some(EventType::UserDisabled),
            Self::AccountEnabled => Some(EventType::UserEnabled),
            Self::LoginFailed
            | Self::LoginLocked
            | Self::MfaFailed
            | Self::RefreshTokenReused
            | Self::PasswordResetRequested
            | Self::RecoveryCodeUsed
            | Self::ExternalIdentityLinked => None,
        }
    }

    /// Refused attempts are failures; everything else records something that happened.
    pub fn outcome(self) -> Outcome {
        match self {
            Self::LoginFailed | Self::LoginLocked | Self::MfaFailed | Self::RefreshTokenReused => {
                Outcome::Failure
            }
            Self::PasswordChanged
            | Self::PasswordReset
            | Self::PasswordResetRequested
            | Self::EmailVerified
            | Self::MfaEnabled
            | Self::MfaDisabled
            | Self::RecoveryCodeUsed
            | Self::ExternalIdentityLinked
            | Self::AccountDisabled
            | Self::AccountEnabled => Outcome::Success,
        }
    }
}

/// Appends `entry` to `user`'s audit chain inside `tx` (a platform transaction: account
/// records carry no tenant).
pub(crate) async fn audit(
    tx: &mut Tx,
    user: UserId,
    actor: AuditActor,
    client: &ClientInfo,
    entry: Entry,
) -> Result<(), DbError> {
    tenantry_audit::record_in(tx, Chain::User(user), actor, client, entry).await
}

/// Writes one event in `tx`, and its audit record: in the user's chain, or the platform
/// chain when no account is known. `actor` is the user when the request carried a valid
/// credential of theirs (an access token, the password, a refresh token, an e-mailed link),
/// [`AuditActor::Anonymous`] when it carried none or a wrong one.
pub(crate) async fn record(
    tx: &mut Tx,
    user_id: Option<UserId>,
    actor: AuditActor,
    kind: SecurityEventKind,
    client: &ClientInfo,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    tracing::info!(event = kind.as_str(), user_id = ?user_id.map(|u| u.to_string()), "security event");
    tx.execute(
        Query::insert().into_table("security_events").row([
            ("id", Uuid::now_v7().into()),
            ("user_id", user_id.into()),
            ("kind", kind.as_str().into()),
            ("ip", client.ip.clone().into()),
            (
                "user_agent",
                client
                    .user_agent
                    .as_deref()
                    .map(|ua| ua.chars().take(256).collect::<String>())
                    .into(),
            ),
            ("detail", detail.clone().into()),
            ("created_at", tx.now().into()),
        ]),
    )
    .await?;
    let entry = Entry {
        action: kind.action(),
        target_type: "user",
        target_id: user_id.map(|u| u.to_string()),
        outcome: kind.outcome(),
        summary: detail,
        project_id: None,
    };
    match (user_id, kind.event()) {
        (Some(user_id), Some(event_type)) => {
            record_account(tx, user_id, actor, client, entry, event_type).await
        }
        _ => {
            let chain = user_id.map_or(Chain::Platform, Chain::User);
            tenantry_audit::record_in(tx, chain, actor, client, entry).await
        }
    }
}

/// Records a change of account `user` inside `tx`: `entry` in its audit chain and an
/// `event_type` event whose `data` is the account as it is now, as `GET /users/me` shows it.
pub(crate) async fn record_account(
    tx: &mut Tx,
    user: UserId,
    actor: AuditActor,
    origin: &Origin,
    entry: Entry,
    event_type: EventType,
) -> Result<(), DbError> {
    let account: User = tx
        .fetch_optional(&User::select(Expr::col("id").eq(user)))
        .await?
        .ok_or(DbError::RowNotFound)?;
    let event = Event::new(event_type, user_subject(user), &UserView::from(&account));
    tenantry_events::record_account_change(tx, user, actor, origin, entry, event).await?;
    Ok(())
}

/// The subject of an account's events.
pub(crate) fn user_subject(id: UserId) -> String {
    format!("users/{id}")
}

/// A security event as its user sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityEvent {
    pub id: Uuid,
    /// `login_failed`, `login_locked`, `mfa_failed`, `refresh_token_reused`,
    /// `password_changed`, `password_reset`, `password_reset_requested`, `email_verified`,
    /// `mfa_enabled`, `mfa_disabled`, `recovery_code_used`, `external_identity_linked`,
    /// `account_disabled`, `account_enabled` (by a platform administrator).
    pub kind: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl FromRow for SecurityEvent {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.uuid()?,
            kind: row.string()?,
            ip: row.opt_string()?,
            user_agent: row.opt_string()?,
            detail: row.json()?,
            created_at: row.time()?,
        })
    }
}

impl Identity {
    /// The user's own security events, newest first.
    pub async fn security_events(
        &self,
        user_id: UserId,
        page: &PageRequest,
    ) -> Result<Page<SecurityEvent>, IdentityError> {
        let mut query = Query::select();
        query
            .columns(["id", "kind", "ip", "user_agent", "detail", "created_at"])
            .from("security_events")
            .and_where(Expr::col("user_id").eq(user_id))
            .order_by("id", Order::Desc)
            .limit(page.fetch_limit());
        if let Some(after) = page.after {
            query.and_where(Expr::col("id").lt(after.0));
        }
        let rows: Vec<SecurityEvent> = self.db.read_all(&query).await?;
        Ok(Page::from_rows(rows, page, |e| e.id))
    }
}
