//! Sessions: opening, refresh-token rotation with reuse detection, logout and revocation.

use chrono::{DateTime, TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Page, PageRequest, SessionId, UserId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, Tx};

use crate::{
    ClientInfo, Identity, IdentityError, SessionView, TokenPair, UserStatus,
    model::SessionRow,
    security::audit,
    tokens::{self, digest},
};

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 256;

struct RefreshLookup {
    session_id: SessionId,
    user_id: UserId,
    token_expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    session_revoked_at: Option<DateTime<Utc>>,
    session_expires_at: DateTime<Utc>,
    user_status: String,
    is_guest: bool,
}

impl FromRow for RefreshLookup {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            session_id: row.id()?,
            user_id: row.id()?,
            token_expires_at: row.time()?,
            used_at: row.opt_time()?,
            session_revoked_at: row.opt_time()?,
            session_expires_at: row.time()?,
            user_status: row.string()?,
            is_guest: row.bool()?,
        })
    }
}

async fn insert_refresh_token(
    tx: &mut Tx,
    session_id: SessionId,
    expires_at: DateTime<Utc>,
) -> Result<String, DbError> {
    let (token, token_digest) = tokens::new_refresh_token();
    tx.execute(Query::insert().into_table("refresh_tokens").row([
        ("token_hash", token_digest.into()),
        ("session_id", session_id.into()),
        ("created_at", tx.now().into()),
        ("expires_at", expires_at.into()),
    ]))
    .await?;
    Ok(token)
}

async fn revoke(tx: &mut Tx, session_id: SessionId, reason: &str) -> Result<u64, DbError> {
    tx.execute(
        Query::update()
            .table("sessions")
            .value("revoked_at", tx.now())
            .value("revoked_reason", reason)
            .and_where(Expr::col("id").eq(session_id))
            .and_where(Expr::col("revoked_at").is_null()),
    )
    .await
}

/// Revokes every live session of `user_id` except `keep`.
pub(crate) async fn revoke_all(
    tx: &mut Tx,
    user_id: UserId,
    keep: Option<SessionId>,
    reason: &str,
) -> Result<u64, DbError> {
    let mut update = Query::update();
    update
        .table("sessions")
        .value("revoked_at", tx.now())
        .value("revoked_reason", reason)
        .and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("revoked_at").is_null());
    if let Some(keep) = keep {
        update.and_where(Expr::col("id").ne(keep));
    }
    tx.execute(&update).await
}

impl Identity {
    /// Opens a session signed in by `method` (`password`, `guest`), with its audit record.
    pub(crate) async fn open_session(
        &self,
        user_id: UserId,
        client: &ClientInfo,
        ttl_secs: i64,
        method: &'static str,
    ) -> Result<TokenPair, IdentityError> {
        let now = self.db.now();
        let expires_at = now + TimeDelta::seconds(ttl_secs);
        let session_id = SessionId::new();
        let user_agent = client
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
        let mut tx = self.db.begin_write().await?;
        tx.execute(Query::insert().into_table("sessions").row([
            ("id", session_id.into()),
            ("user_id", user_id.into()),
            ("created_at", now.into()),
            ("last_used_at", now.into()),
            ("expires_at", expires_at.into()),
            ("user_agent", user_agent.into()),
            ("ip", client.ip.clone().into()),
        ]))
        .await?;
        let refresh_token = insert_refresh_token(&mut tx, session_id, expires_at).await?;
        audit(
            &mut tx,
            user_id,
            AuditActor::User(user_id),
            client,
            Entry::new("session.created", "session", session_id)
                .with_summary(json!({ "method": method, "expires_at": expires_at })),
        )
        .await?;
        tx.commit().await?;
        self.token_pair(user_id, session_id, refresh_token)
    }

    fn token_pair(
        &self,
        user_id: UserId,
        session_id: SessionId,
        refresh_token: String,
    ) -> Result<TokenPair, IdentityError> {
        let access_token = tokens::issue_access(
            &self.keys.current(),
            &self.tokens,
            user_id,
            session_id,
            tokens::token_time(),
        )?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.tokens.access_ttl_secs,
            session_id,
        })
    }

    /// Exchanges a refresh token for a new pair. Each token works once: presenting one that
    /// was already used (stolen, or replayed) revokes its whole session.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair, IdentityError> {
        if !refresh_token.starts_with(tokens::REFRESH_PREFIX) {
            return Err(IdentityError::InvalidToken);
        }
        let token_digest = digest(refresh_token);
        let now = self.db.now();
        let mut tx = self.db.begin_write().await?;
        let found: Option<RefreshLookup> = tx
            .fetch_optional(
                Query::select()
                    .columns([
                        ("refresh_tokens", "session_id"),
                        ("sessions", "user_id"),
                        ("refresh_tokens", "expires_at"),
                        ("refresh_tokens", "used_at"),
                        ("sessions", "revoked_at"),
                        ("sessions", "expires_at"),
                        ("users", "status"),
                        ("users", "is_guest"),
                    ])
                    .from("refresh_tokens")
                    .inner_join(
                        "sessions",
                        Expr::col(("sessions", "id")).equals(("refresh_tokens", "session_id")),
                    )
                    .inner_join(
                        "users",
                        Expr::col(("users", "id")).equals(("sessions", "user_id")),
                    )
                    .and_where(
                        Expr::col(("refresh_tokens", "token_hash")).eq(token_digest.clone()),
                    ),
            )
            .await?;
        let Some(found) = found else {
            return Err(IdentityError::InvalidToken);
        };
        if found.used_at.is_some() {
            self.on_reuse(tx, found.session_id, found.user_id, client)
                .await?;
            return Err(IdentityError::InvalidToken);
        }
        if found.session_revoked_at.is_some()
            || found.session_expires_at <= now
            || found.token_expires_at <= now
            || found.user_status != UserStatus::Active.as_str()
        {
            return Err(IdentityError::InvalidToken);
        }
        // Claims the token; under concurrency exactly one transaction sees one row updated.
        let claimed = tx
            .execute(
                Query::update()
                    .table("refresh_tokens")
                    .value("used_at", now)
                    .and_where(Expr::col("token_hash").eq(token_digest))
                    .and_where(Expr::col("used_at").is_null()),
            )
            .await?;
        if claimed != 1 {
            self.on_reuse(tx, found.session_id, found.user_id, client)
                .await?;
            return Err(IdentityError::InvalidToken);
        }
        let ttl = if found.is_guest {
            self.guest_ttl_secs
        } else {
            self.refresh_ttl_secs
        };
        let expires_at = now + TimeDelta::seconds(ttl);
        tx.execute(
            Query::update()
                .table("sessions")
                .value("last_used_at", now)
                .value("expires_at", expires_at)
                .and_where(Expr::col("id").eq(found.session_id)),
        )
        .await?;
        let refresh_token = insert_refresh_token(&mut tx, found.session_id, expires_at).await?;
        audit(
            &mut tx,
            found.user_id,
            AuditActor::User(found.user_id),
            client,
            Entry::new("session.refreshed", "session", found.session_id)
                .with_summary(json!({ "expires_at": expires_at })),
        )
        .await?;
        tx.commit().await?;
        self.token_pair(found.user_id, found.session_id, refresh_token)
    }

    async fn on_reuse(
        &self,
        mut tx: Tx,
        session_id: SessionId,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        revoke(&mut tx, session_id, "refresh_token_reuse").await?;
        crate::security::record(
            &mut tx,
            Some(user_id),
            AuditActor::Anonymous,
            crate::SecurityEventKind::RefreshTokenReused,
            client,
            json!({ "session_id": session_id }),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(
            event = "refresh_token_reuse",
            session_id = %session_id,
            "refresh token reused; session revoked"
        );
        Ok(())
    }

    /// Ends `user_id`'s session: its access and refresh tokens stop working at once.
    pub async fn logout(
        &self,
        user_id: UserId,
        session_id: SessionId,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let mut tx = self.db.begin_write().await?;
        if revoke(&mut tx, session_id, "logout").await? == 1 {
            audit(
                &mut tx,
                user_id,
                AuditActor::User(user_id),
                client,
                Entry::new("session.revoked", "session", session_id)
                    .with_summary(json!({ "reason": "logout" })),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn list_sessions(
        &self,
        user_id: UserId,
        current: Option<SessionId>,
        page: &PageRequest,
    ) -> Result<Page<SessionView>, IdentityError> {
        let mut query = Query::select();
        query
            .columns(SessionRow::COLUMNS)
            .from("sessions")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("revoked_at").is_null())
            .and_where(Expr::col("expires_at").gt(self.db.now()))
            .order_by("id", Order::Desc)
            .limit(page.fetch_limit());
        if let Some(after) = page.after {
            query.and_where(Expr::col("id").lt(after.0));
        }
        let rows: Vec<SessionRow> = self.db.read_all(&query).await?;
        Ok(
            Page::from_rows(rows, page, |r| r.id.as_uuid()).map(|r| SessionView {
                current: Some(r.id) == current,
                id: r.id,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
                expires_at: r.expires_at,
                user_agent: r.user_agent,
                ip: r.ip,
            }),
        )
    }

    /// Revokes one of the user's own sessions; another user's session is "not found".
    pub async fn revoke_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let mut tx = self.db.begin_write().await?;
        let revoked = tx
            .execute(
                Query::update()
                    .table("sessions")
                    .value("revoked_at", tx.now())
                    .value("revoked_reason", "revoked_by_user")
                    .and_where(Expr::col("id").eq(session_id))
                    .and_where(Expr::col("user_id").eq(user_id))
                    .and_where(Expr::col("revoked_at").is_null()),
            )
            .await?;
        if revoked == 0 {
            return Err(IdentityError::SessionNotFound);
        }
        audit(
            &mut tx,
            user_id,
            AuditActor::User(user_id),
            client,
            Entry::new("session.revoked", "session", session_id)
                .with_summary(json!({ "reason": "revoked_by_user" })),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
