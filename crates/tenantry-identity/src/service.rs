//! The identity service: accounts, credentials and authentication of requests.

use std::sync::Arc;

use anyhow::Context;
use chrono::TimeDelta;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Email, Origin, Password, PersonName, SessionId, UserId, crypto::MasterKey};
use tenantry_db::{Db, FromRow, InsertRow, Prepared, Tx};
use tenantry_events::{Event, EventType};
use tenantry_notify::Mailer;

use crate::{
    IdentityError, KeyRing, PasswordHasher, User, UserStatus, UserView,
    config::AuthConfig,
    keys::{self, Rotation},
    oidc::{ExternalProviders, peek_issuer},
    security::{record_account, user_subject},
    tokens::{self, Refusal, TokenSettings, VerifiedAccess},
};

/// The account behind a live session (every authenticated request runs it).
static LIVE_SESSION_USER: Prepared<(SessionId, UserId, chrono::DateTime<chrono::Utc>)> =
    Prepared::new(
        "live_session_user",
        |&(session, user, now)| {
            let mut q = Query::select();
            q.columns(User::qualified_columns())
                .from("sessions")
                .inner_join(
                    "users",
                    Expr::col(("users", "id")).equals(("sessions", "user_id")),
                )
                .and_where(Expr::col(("sessions", "id")).eq(session))
                .and_where(Expr::col(("sessions", "user_id")).eq(user))
                .and_where(Expr::col(("sessions", "revoked_at")).is_null())
                .and_where(Expr::col(("sessions", "expires_at")).gt(now));
            q
        },
        |&(session, user, now)| vec![session.into(), user.into(), now.into()],
    );

/// Who is calling, as the request layer knows it (request id, peer address, user agent).
pub type ClientInfo = tenantry_core::Origin;

/// A validated sign-up.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub first_name: PersonName,
    pub last_name: PersonName,
}

/// Tokens handed out at login, guest sign-in and refresh.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub session_id: SessionId,
}

/// A request whose bearer verified: our access token of a live session, or a token of a
/// configured external OIDC issuer.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub credential: Credential,
}

/// What the caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Our access token, bound to this session.
    Session(SessionId),
    /// A token of this external issuer: no session of ours (nothing to log out of here).
    External { issuer: Arc<str> },
}

impl Authenticated {
    /// The caller's session, if it has one of ours.
    pub fn session_id(&self) -> Option<SessionId> {
        match &self.credential {
            Credential::Session(id) => Some(*id),
            Credential::External { .. } => None,
        }
    }
}

/// A change to the caller's own profile.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub preferences: Option<serde_json::Value>,
}

/// The identity service; one pointer to clone (handlers take it per request).
#[derive(Clone, Debug)]
pub struct Identity(Arc<IdentityInner>);

impl std::ops::Deref for Identity {
    type Target = IdentityInner;
    fn deref(&self) -> &IdentityInner {
        &self.0
    }
}

#[derive(Debug)]
pub struct IdentityInner {
    pub(crate) db: Db,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) tokens: TokenSettings,
    pub(crate) refresh_ttl_secs: i64,
    pub(crate) guest_ttl_secs: i64,
    pub(crate) key: MasterKey,
    pub(crate) mailer: Mailer,
    /// Base of links in e-mails (no trailing slash).
    pub(crate) public_url: Arc<str>,
    /// Configured external OIDC issuers.
    pub(crate) external: ExternalProviders,
}

fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 2)
}

impl Identity {
    /// Loads (or on first start generates) the signing keys. `issuer` is the `iss` of our
    /// tokens ([`AuthConfig::effective_issuer`]); `public_url` the base of links in e-mails.
    pub async fn new(
        db: Db,
        auth: &AuthConfig,
        issuer: String,
        public_url: &str,
        key: MasterKey,
        mailer: Mailer,
    ) -> anyhow::Result<Self> {
        let keys = KeyRing::load_or_create(&db, key.clone()).await?;
        let external = ExternalProviders::from_config(auth, &issuer)?;
        Ok(Self(Arc::new(IdentityInner {
            db,
            keys: Arc::new(keys),
            hasher: PasswordHasher::new(
                auth.argon2_memory_kib,
                auth.argon2_iterations,
                auth.max_concurrent_hashes,
                auth.hash_scheduling,
            )?,
            tokens: TokenSettings {
                issuer,
                audience: auth.audience.clone(),
                access_ttl_secs: secs(auth.access_token_ttl_secs),
            },
            refresh_ttl_secs: secs(auth.refresh_token_ttl_secs),
            guest_ttl_secs: secs(auth.guest_ttl_secs),
            key,
            mailer,
            public_url: public_url.trim_end_matches('/').into(),
            external,
        })))
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The public keys that verify access tokens now, as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }

    /// Makes a new key the signer. The keys it replaces keep verifying until every token
    /// they may have signed has expired: the access-token lifetime, plus the verification
    /// leeway, plus one reload interval (other nodes sign with the old key until they
    /// reload). Keys past their retirement are deleted. This node switches at once; others
    /// within [`keys::RELOAD_INTERVAL`], or sooner when they see a token of the new key.
    pub async fn rotate_keys(&self) -> anyhow::Result<Rotation> {
        let grace = TimeDelta::seconds(self.tokens.access_ttl_secs)
            + TimeDelta::seconds(tokens::LEEWAY_SECS)
            + TimeDelta::from_std(keys::RELOAD_INTERVAL).context("reload interval")?;
        let rotation = keys::rotate(&self.db, grace, &self.key).await?;
        self.keys.reload(&self.db).await?;
        Ok(rotation)
    }

    /// Re-reads the signing keys now; returns whether they changed.
    pub async fn reload_keys(&self) -> anyhow::Result<bool> {
        self.keys.reload(&self.db).await
    }

    /// Keeps this node's keys current (see [`KeyRing::refresh_forever`]); run it as a task
    /// for as long as the server serves.
    pub fn refresh_keys_forever(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.keys.clone().refresh_forever(self.db.clone())
    }

    /// Fetches the keys of every configured external issuer once (best effort: an issuer
    /// that is down is logged and tried again on its first token).
    pub async fn prefetch_external_keys(&self) {
        self.external.prefetch().await;
    }

    /// Signature and claims of an access token, reloading the keys once (rate-limited) when
    /// it names a key this node does not know yet.
    async fn verify_access(&self, token: &str, now: i64) -> Result<VerifiedAccess, IdentityError> {
        let first = {
            let keys = self.keys.current();
            keys.memo.verify(&keys, &self.tokens, token, now)
        };
        match first {
            Ok(access) => Ok(access),
            Err(Refusal::Invalid) => Err(IdentityError::InvalidToken),
            Err(Refusal::UnknownKid) => {
                if !self.keys.reload_for_unknown_kid(&self.db).await {
                    return Err(IdentityError::InvalidToken);
                }
                let keys = self.keys.current();
                keys.memo
                    .verify(&keys, &self.tokens, token, now)
                    .map_err(|_| IdentityError::InvalidToken)
            }
        }
    }

    /// Hashes a new password (do this before opening the transaction that stores it).
    pub async fn hash_password(&self, password: &Password) -> Result<String, IdentityError> {
        Ok(self.hasher.hash(password.expose()).await?)
    }

    /// Inserts an account inside the caller's transaction.
    pub async fn insert_user(
        tx: &mut Tx,
        new: &NewUser,
        password_hash: String,
        platform_admin: bool,
    ) -> Result<User, IdentityError> {
        let row = UserRow {
            email: Some(new.email.as_str()),
            password_hash: Some(password_hash),
            first_name: new.first_name.as_str(),
            last_name: new.last_name.as_str(),
            is_platform_admin: platform_admin,
            ..UserRow::default()
        };
        let id = insert_user_row(tx, row, tx.now()).await.map_err(|e| {
            if e.is_unique_violation_on("email") {
                IdentityError::EmailTaken
            } else {
                e.into()
            }
        })?;
        Self::user_in(tx, id).await
    }

    pub(crate) async fn user_in(tx: &mut Tx, id: UserId) -> Result<User, IdentityError> {
        tx.fetch_optional(&User::select(Expr::col("id").eq(id)))
            .await?
            .ok_or(IdentityError::UserNotFound)
    }

    /// Records a sign-up (`user.registered`) in `tx`; callers that insert an account with
    /// [`Identity::insert_user`] for a sign-up call it in the same transaction, before the
    /// transaction enters a tenant.
    pub async fn record_registration(
        tx: &mut Tx,
        user: &User,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        tenantry_events::record_account_change(
            tx,
            user.id,
            AuditActor::User(user.id),
            client,
            Entry::new("user.registered", "user", user.id)
                .with_summary(json!({ "email": user.email })),
            Event::new(
                EventType::UserRegistered,
                user_subject(user.id),
                &UserView::from(user),
            ),
        )
        .await?;
        Ok(())
    }

    /// Creates an account (without a tenant).
    pub async fn register(&self, new: NewUser, client: &ClientInfo) -> Result<User, IdentityError> {
        let hash = self.hash_password(&new.password).await?;
        let mut tx = self.db.begin_write().await?;
        let user = Self::insert_user(&mut tx, &new, hash, false).await?;
        Self::record_registration(&mut tx, &user, client).await?;
        self.queue_verification(&mut tx, &user).await?;
        tx.commit().await?;
        self.mailer.wake();
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// Checks a bearer token and returns the caller. The token's unverified `iss` picks the
    /// verifier: a configured external issuer's keys (see [`crate::oidc`]), else ours — an
    /// access token whose session must be live (any other `iss` fails our verification).
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, IdentityError> {
        if !self.external.is_empty()
            && let Some(issuer) = peek_issuer(token)
            && let Some(provider) = self.external.get(&issuer)
        {
            // Boxed: the external path (key fetches) is far larger than ours.
            return Box::pin(self.authenticate_external(provider, token)).await;
        }
        // The token's own times are checked against the system clock (see
        // `tokens::token_time`), its session's against the deployment's.
        let claims = self
            .verify_access(token, crate::tokens::token_time())
            .await?;
        let now = self.db.now();
        let user: User = self
            .db
            .read_optional(&LIVE_SESSION_USER.bind((claims.session_id, claims.user_id, now)))
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        if user.status != UserStatus::Active {
            return Err(IdentityError::InvalidToken);
        }
        Ok(Authenticated {
            user,
            credential: Credential::Session(claims.session_id),
        })
    }

    pub(crate) async fn user_with_hash(
        &self,
        id: UserId,
    ) -> Result<(User, Option<String>), IdentityError> {
        let found: UserWithHash = self
            .db
            .read_optional(&UserWithHash::select(Expr::col("id").eq(id)))
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        Ok((found.user, found.password_hash))
    }

    pub async fn user(&self, id: UserId) -> Result<User, IdentityError> {
        self.db
            .read_optional(&User::select(Expr::col("id").eq(id)))
            .await?
            .ok_or(IdentityError::UserNotFound)
    }

    /// Finds the account with this e-mail address (any status).
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>, IdentityError> {
        Ok(self
            .db
            .read_optional(&User::select(Expr::col("email").eq(email.as_str())))
            .await?)
    }

    /// Changes the caller's own profile (`user.updated`; the summary holds the new values).
    pub async fn update_profile(
        &self,
        id: UserId,
        change: ProfileChange,
        client: &ClientInfo,
    ) -> Result<User, IdentityError> {
        let mut update = Query::update();
        update
            .table("users")
            .value("updated_at", self.db.now())
            .and_where(Expr::col("id").eq(id));
        let mut summary = serde_json::Map::new();
        if let Some(first) = change.first_name {
            summary.insert("first_name".into(), first.as_str().into());
            update.value("first_name", first.into_inner());
        }
        if let Some(last) = change.last_name {
            summary.insert("last_name".into(), last.as_str().into());
            update.value("last_name", last.into_inner());
        }
        if let Some(preferences) = change.preferences {
            summary.insert("preferences".into(), preferences.clone());
            update.value("preferences", preferences);
        }
        let mut tx = self.db.begin_write().await?;
        tx.execute(&update).await?;
        let user = Self::user_in(&mut tx, id).await?;
        let event = Event::updated(
            EventType::UserUpdated,
            user_subject(id),
            &UserView::from(&user),
            summary.keys().cloned(),
        );
        tenantry_events::record_account_change(
            &mut tx,
            id,
            AuditActor::User(id),
            client,
            Entry::new("user.updated", "user", id).with_summary(summary.into()),
            event,
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Creates a platform administrator, or promotes the existing account with that e-mail
    /// (its password is left unchanged; a disabled account is enabled again, since an
    /// operator naming it wants a working administrator). Returns the user and whether it
    /// was created.
    pub async fn create_superuser(
        &self,
        email: Email,
        password: Password,
    ) -> Result<(User, bool), IdentityError> {
        if let Some(existing) = self.user_by_email(&email).await? {
            let mut tx = self.db.begin_write().await?;
            tx.execute(
                Query::update()
                    .table("users")
                    .value("is_platform_admin", true)
                    .value("status", UserStatus::Active.as_str())
                    .value("updated_at", tx.now())
                    .and_where(Expr::col("id").eq(existing.id)),
            )
            .await?;
            let user = Self::user_in(&mut tx, existing.id).await?;
            record_account(
                &mut tx,
                user.id,
                AuditActor::System,
                &Origin::NONE,
                Entry::new("user.platform_admin_granted", "user", user.id),
                EventType::UserPlatformAdminGranted,
            )
            .await?;
            tx.commit().await?;
            return Ok((user, false));
        }
        let hash = self.hash_password(&password).await?;
        let new = NewUser {
            email,
            password,
            first_name: PersonName::parse("Platform").context("static name")?,
            last_name: PersonName::parse("Administrator").context("static name")?,
        };
        let mut tx = self.db.begin_write().await?;
        let user = Self::insert_user(&mut tx, &new, hash, true).await?;
        record_account(
            &mut tx,
            user.id,
            AuditActor::System,
            &Origin::NONE,
            Entry::new("user.created", "user", user.id)
                .with_summary(json!({ "email": user.email, "platform_admin": true })),
            EventType::UserCreated,
        )
        .await?;
        tx.commit().await?;
        Ok((user, true))
    }

    /// Whether any platform administrator exists (for the bootstrap at start).
    pub async fn has_platform_admin(&self) -> Result<bool, IdentityError> {
        let found: Option<uuid::Uuid> = self
            .db
            .read_optional(
                Query::select()
                    .column("id")
                    .from("users")
                    .and_where(Expr::col("is_platform_admin").eq(true))
                    .limit(1),
            )
            .await?;
        Ok(found.is_some())
    }
}

/// The fields of a new `users` row (accounts with a password, guests and external
/// identities all go through [`insert_user_row`]).
#[derive(Default)]
pub(crate) struct UserRow<'a> {
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub password_hash: Option<String>,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub display_name: Option<String>,
    pub is_guest: bool,
    pub is_platform_admin: bool,
}

/// Inserts `row` as a new user in `tx`; returns its id.
pub(crate) async fn insert_user_row(
    tx: &mut Tx,
    row: UserRow<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<UserId, tenantry_db::DbError> {
    let id = UserId::new();
    tx.execute(Query::insert().into_table("users").row([
        ("id", id.into()),
        ("email", row.email.map(str::to_owned).into()),
        ("email_verified", row.email_verified.into()),
        ("password_hash", row.password_hash.into()),
        ("first_name", row.first_name.into()),
        ("last_name", row.last_name.into()),
        ("display_name", row.display_name.into()),
        ("is_guest", row.is_guest.into()),
        ("is_platform_admin", row.is_platform_admin.into()),
        ("preferences", serde_json::json!({}).into()),
        ("created_at", now.into()),
        ("updated_at", now.into()),
    ]))
    .await?;
    Ok(id)
}

pub(crate) struct UserWithHash {
    pub user: User,
    pub password_hash: Option<String>,
}

impl UserWithHash {
    /// [`User::select`] plus the password hash (never leaves this crate).
    pub(crate) fn select(condition: sea_query::Expr) -> sea_query::SelectStatement {
        User::select(condition).column("password_hash").to_owned()
    }
}

impl FromRow for UserWithHash {
    fn from_row(row: &mut tenantry_db::Row<'_>) -> Result<Self, tenantry_db::DbError> {
        Ok(Self {
            user: User::from_row(row)?,
            password_hash: row.opt_string()?,
        })
    }
}
