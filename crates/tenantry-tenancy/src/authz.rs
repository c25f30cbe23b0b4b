//! The authorization layer: the only issuer of [`TenantScope`]s and [`AdminScope`]s.
//!
//! A scope is issued when the caller is a member of a live tenant (or holds a live API key
//! of it); it carries the tenant-wide permissions of their role and the per-project grants
//! of their project-scoped assignments. Permission checks on individual operations happen
//! in the services (`tenants::require`, `TenantScope::can_in_project`), so every entry
//! point gets them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, JoinType, Query};
use sha2::{Digest, Sha256};
use tenantry_core::{
    ApiKeyId, Origin, Permission, ProjectId, SystemRole, TenantId, UserId,
    permission::PermissionSet,
};
use tenantry_db::{
    Actor, AdminScope, Db, DbError, FromRow, Prepared, ProjectAccess, Row, TenantScope, Tx,
    UserScope,
};
use tenantry_identity::directory::{AccountColumn, account_column, join_accounts};
use tenantry_identity::{User, UserStatus};

use crate::{
    TenancyError,
    model::{TenantStatus, parse_names},
};

/// API keys are `tnt_` and 43 URL-safe base64 characters (32 random bytes).
pub(crate) const API_KEY_PREFIX: &str = "tnt_";
pub(crate) const API_KEY_LEN: usize = API_KEY_PREFIX.len() + 43;

/// `last_used_at` is written at most this often per key (it costs a write per request
/// otherwise).
const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// One row of the grant query: the membership, and one project assignment if any.
struct GrantRow {
    role: String,
    role_permissions: Option<Vec<String>>,
    status: String,
    user_status: String,
    project: Option<ProjectId>,
    project_role: Option<String>,
    project_role_permissions: Option<Vec<String>>,
}

impl FromRow for GrantRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            role: row.string()?,
            role_permissions: row.opt_json()?,
            status: row.string()?,
            user_status: row.string()?,
            project: row.opt_id()?,
            project_role: row.opt_string()?,
            project_role_permissions: row.opt_json()?,
        })
    }
}

/// What a member may do in a tenant, before any API-key narrowing.
struct MemberAccess {
    status: TenantStatus,
    user_active: bool,
    tenant: PermissionSet,
    projects: ProjectAccess,
}

fn role_permissions(name: &str, custom: Option<&[String]>) -> PermissionSet {
    match (SystemRole::parse(name), custom) {
        (Some(system), _) => system.permissions(),
        (None, Some(names)) => parse_names(names),
        (None, None) => {
            // Deleting an assigned role is refused, so this is a bug or a manual edit:
            // grant nothing rather than guess.
            tracing::warn!(role = name, "assignment names a role that does not exist");
            PermissionSet::EMPTY
        }
    }
}

/// The grant query: membership, tenant status, the role's permissions and every project
/// assignment with its role's permissions, in one round trip (every tenant request runs it,
/// so its SQL is rendered once).
static GRANTS: Prepared<(TenantId, UserId)> = Prepared::new(
    "grants",
    |&(tenant_id, user_id)| grant_query(tenant_id, user_id),
    |&(tenant_id, user_id)| vec![tenant_id.into(), user_id.into()],
);

fn grant_query(tenant_id: TenantId, user_id: UserId) -> sea_query::SelectStatement {
    let mut q = Query::select();
    q.column(("memberships", "role"))
        .expr(Expr::col(("r", "permissions")))
        .column(("tenants", "status"))
        .column(account_column(AccountColumn::Status))
        .column(("pm", "project_id"))
        .column(("pm", "role"))
        .expr(Expr::col(("pr", "permissions")))
        .from("memberships")
        .inner_join(
            "tenants",
            Expr::col(("tenants", "id")).equals(("memberships", "tenant_id")),
        );
    join_accounts(&mut q, ("memberships", "user_id"));
    q.join_as(
        JoinType::LeftJoin,
        "roles",
        "r",
        Expr::col(("r", "tenant_id"))
            .equals(("memberships", "tenant_id"))
            .and(Expr::col(("r", "name")).equals(("memberships", "role"))),
    )
    .join_as(
        JoinType::LeftJoin,
        "project_members",
        "pm",
        Expr::col(("pm", "tenant_id"))
            .equals(("memberships", "tenant_id"))
            .and(Expr::col(("pm", "user_id")).equals(("memberships", "user_id"))),
    )
    .join_as(
        JoinType::LeftJoin,
        "roles",
        "pr",
        Expr::col(("pr", "tenant_id"))
            .equals(("pm", "tenant_id"))
            .and(Expr::col(("pr", "name")).equals(("pm", "role"))),
    )
    .and_where(Expr::col(("memberships", "tenant_id")).eq(tenant_id))
    .and_where(Expr::col(("memberships", "user_id")).eq(user_id));
    q
}

fn member_access(rows: Vec<GrantRow>) -> Result<Option<MemberAccess>, TenancyError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let tenant = role_permissions(&first.role, first.role_permissions.as_deref());
    let status = TenantStatus::parse(&first.status)?;
    let user_active = first.user_status == UserStatus::Active.as_str();
    let overrides = rows
        .iter()
        .filter_map(|r| {
            let project = r.project?;
            let role = r.project_role.as_deref()?;
            Some((
                project,
                role_permissions(role, r.project_role_permissions.as_deref())
                    .intersection(Permission::PROJECT_SCOPED),
            ))
        })
        .collect::<Vec<_>>();
    Ok(Some(MemberAccess {
        status,
        user_active,
        tenant,
        projects: ProjectAccess {
            default: tenant.intersection(Permission::PROJECT_SCOPED),
            overrides: overrides.into(),
        },
    }))
}

/// A scope that only reads the authorization rows of one tenant (never handed out).
fn lookup_scope(tenant_id: TenantId, actor: Actor) -> TenantScope {
    TenantScope::issue_after_authorization(
        tenant_id,
        actor,
        PermissionSet::EMPTY,
        ProjectAccess::default(),
        Arc::new(Origin::NONE),
    )
}

fn check_status(status: TenantStatus) -> Result<(), TenancyError> {
    match status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(TenancyError::Suspended),
        TenantStatus::Deleted => Err(TenancyError::NotFound),
    }
}

/// Issues a scope for `user_id` in `tenant_id`.
///
/// Not a member, or a deleted tenant → `NotFound` (indistinguishable from a tenant that does
/// not exist); a suspended tenant → `Suspended`.
pub async fn authorize(
    db: &Db,
    user_id: UserId,
    tenant_id: TenantId,
    origin: Arc<Origin>,
) -> Result<TenantScope, TenancyError> {
    let rows: Vec<GrantRow> = db
        .read_tenant_all(
            &lookup_scope(tenant_id, Actor::User(user_id)),
            &GRANTS.bind((tenant_id, user_id)),
        )
        .await?;
    let access = member_access(rows)?.ok_or(TenancyError::NotFound)?;
    check_status(access.status)?;
    Ok(TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(user_id),
        access.tenant,
        access.projects,
        origin,
    ))
}

/// What `user_id` may do tenant-wide in the tenant `tx` is confined to, *now*: `None` when
/// they are no member or their account is disabled. Used where a past grant is acted on
/// later, such as an invitation being accepted (the inviter must still hold what they gave).
pub(crate) async fn current_permissions(
    tx: &mut Tx,
    tenant_id: TenantId,
    user_id: UserId,
) -> Result<Option<PermissionSet>, TenancyError> {
    let rows: Vec<GrantRow> = tx.fetch_all(&GRANTS.bind((tenant_id, user_id))).await?;
    Ok(member_access(rows)?
        .filter(|access| access.user_active)
        .map(|access| access.tenant))
}

/// An API key as the authorization layer reads it.
struct KeyRow {
    tenant_id: TenantId,
    id: ApiKeyId,
    role: Option<String>,
    permissions: Option<Vec<String>>,
    project_id: Option<ProjectId>,
    created_by: UserId,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl FromRow for KeyRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant_id: row.id()?,
            id: row.id()?,
            role: row.opt_string()?,
            permissions: row.opt_json()?,
            project_id: row.opt_id()?,
            created_by: row.id()?,
            expires_at: row.opt_time()?,
            last_used_at: row.opt_time()?,
            revoked_at: row.opt_time()?,
        })
    }
}

/// SHA-256 of an API key: keys carry 256 random bits, so a fast hash is as strong as a slow
/// one and lookups stay an index probe.
pub(crate) fn api_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether a bearer token is shaped like one of our API keys.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(API_KEY_PREFIX)
}

async fn custom_role_permissions(
    tx: &mut Tx,
    tenant_id: TenantId,
    name: &str,
) -> Result<PermissionSet, TenancyError> {
    struct Names(Vec<String>);
    impl FromRow for Names {
        fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
            row.json().map(Names)
        }
    }
    let names: Option<Names> = tx
        .fetch_optional(
            Query::select()
                .column("permissions")
                .from("roles")
                .and_where(Expr::col("tenant_id").eq(tenant_id))
                .and_where(Expr::col("name").eq(name)),
        )
        .await?;
    Ok(role_permissions(
        name,
        names.as_ref().map(|n| n.0.as_slice()),
    ))
}

/// Issues a scope for the API key `token` in `tenant_id` (the tenant of the request path).
///
/// The key's permissions are intersected with what its creator holds *now*, so demoting or
/// removing the creator narrows or kills their keys at once. A key bound to a project acts
/// only in that project, with its project-scoped permissions: nothing tenant-wide (the
/// tenant's profile and settings, members, roles, keys, files, the audit trail, creating
/// projects). Unknown, malformed, expired or revoked keys, and keys whose creator left or was
/// disabled → `InvalidApiKey`; a key of another tenant → `NotFound`.
pub async fn authorize_api_key(
    db: &Db,
    token: &str,
    tenant_id: TenantId,
    origin: Arc<Origin>,
) -> Result<TenantScope, TenancyError> {
    let well_formed = token.len() == API_KEY_LEN
        && is_api_key(token)
        && token[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(TenancyError::InvalidApiKey);
    }
    let hash = api_key_hash(token);
    let mut tx = db.begin_secret_lookup(&hash, false).await?;
    let key: KeyRow = tx
        .fetch_optional(key_query().and_where(Expr::col("key_hash").eq(hash.to_vec())))
        .await?
        .ok_or(TenancyError::InvalidApiKey)?;
    let now = tx.now();
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
        return Err(TenancyError::InvalidApiKey);
    }
    if key.tenant_id != tenant_id {
        return Err(TenancyError::NotFound);
    }
    let actor = Actor::ApiKey {
        key_id: key.id,
        owner: key.created_by,
    };
    tx.enter_tenant(&lookup_scope(tenant_id, actor)).await?;
    let (tenant, projects) = key_grant(&mut tx, &key).await?;
    tx.commit().await?;
    if key
        .last_used_at
        .is_none_or(|t| (now - t).num_seconds() >= LAST_USED_GRANULARITY_SECS)
    {
        touch_last_used(db.clone(), lookup_scope(tenant_id, actor), key.id);
    }
    Ok(TenantScope::issue_after_authorization(
        tenant_id, actor, tenant, projects, origin,
    ))
}

/// The columns of an API key that authorization reads.
fn key_query() -> sea_query::SelectStatement {
    Query::select()
        .columns([
            "tenant_id",
            "id",
            "role",
            "permissions",
            "project_id",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ])
        .from("api_keys")
        .to_owned()
}

/// What a live key of the transaction's tenant may do now: its permissions ∩ its creator's
/// current grant, confined to its project. A creator who left or was disabled →
/// `InvalidApiKey`; a suspended or deleted tenant → `Suspended` / `NotFound`.
async fn key_grant(
    tx: &mut Tx,
    key: &KeyRow,
) -> Result<(PermissionSet, ProjectAccess), TenancyError> {
    let rows: Vec<GrantRow> = tx
        .fetch_all(&GRANTS.bind((key.tenant_id, key.created_by)))
        .await?;
    let key_permissions = match (&key.role, &key.permissions) {
        (Some(role), _) if SystemRole::parse(role).is_some() => role_permissions(role, None),
        (Some(role), _) => custom_role_permissions(tx, key.tenant_id, role).await?,
        (None, Some(names)) => parse_names(names),
        (None, None) => PermissionSet::EMPTY,
    };
    let creator = member_access(rows)?.ok_or(TenancyError::InvalidApiKey)?;
    if !creator.user_active {
        return Err(TenancyError::InvalidApiKey);
    }
    check_status(creator.status)?;
    Ok(narrow_to_key(&creator, key_permissions, key.project_id))
}

/// A key's grant: its own permissions, never beyond its creator's, confined to its project
/// when it has one. A project-bound key holds no tenant-wide permission at all (not even
/// reads such as `members:read` or `audit:read`): it acts on its project's resources only,
/// whatever role it was given.
fn narrow_to_key(
    creator: &MemberAccess,
    key: PermissionSet,
    project: Option<ProjectId>,
) -> (PermissionSet, ProjectAccess) {
    let tenant = key.intersection(creator.tenant);
    match project {
        Some(project) => (
            PermissionSet::EMPTY,
            ProjectAccess {
                default: PermissionSet::EMPTY,
                overrides: Arc::new([(
                    project,
                    key.intersection(creator.projects.in_project(project)),
                )]),
            },
        ),
        None => (
            tenant,
            ProjectAccess {
                default: key.intersection(creator.projects.default),
                overrides: creator
                    .projects
                    .overrides
                    .iter()
                    .map(|(p, set)| (*p, key.intersection(*set)))
                    .collect::<Vec<_>>()
                    .into(),
            },
        ),
    }
}

/// Records the key's use off the request path (best effort: a lost update only makes
/// `last_used_at` a minute staler).
fn touch_last_used(db: Db, scope: TenantScope, key_id: ApiKeyId) {
    tokio::spawn(async move {
        let result = async {
            let mut tx = db.begin_tenant(&scope).await?;
            tx.execute(
                Query::update()
                    .table("api_keys")
                    .value("last_used_at", tx.now())
                    .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                    .and_where(Expr::col("id").eq(key_id)),
            )
            .await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%key_id, error = %error, "recording API key use failed");
        }
    });
}

/// The scope of a tenant that `creator` is creating (and will own).
pub(crate) fn scope_for_new_tenant(
    tenant_id: TenantId,
    creator: UserId,
    origin: &Origin,
) -> TenantScope {
    let all = SystemRole::Owner.permissions();
    TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(creator),
        all,
        ProjectAccess {
            default: all.intersection(Permission::PROJECT_SCOPED),
            overrides: Arc::new([]),
        },
        Arc::new(origin.clone()),
    )
}

/// Issues the scope of `user`'s own rows across tenants (their memberships) to the user an
/// access token, an API key or a login authenticated: every `User` a handler holds is one.
pub fn authorize_user(user: &User) -> UserScope {
    UserScope::for_authenticated(user.id)
}

/// Issues an administration scope (`/api/v1/admin/…`) to an active platform administrator;
/// anyone else → `NotPlatformAdmin`.
pub fn authorize_admin(user: &User, origin: Arc<Origin>) -> Result<AdminScope, TenancyError> {
    if user.is_platform_admin && user.status == UserStatus::Active && !user.is_guest {
        Ok(AdminScope::issue_for_platform_admin(user.id, origin))
    } else {
        Err(TenancyError::NotPlatformAdmin)
    }
}

/// The scope in which `user_id` accepts an invitation to `tenant_id`, before they are a
/// member. It grants no permission: it only confines the accepting transaction to the
/// invitation's tenant and attributes its audit records to the user. Issue it only after
/// the invitation's token was found valid for this user (see `invitations::accept`).
pub(crate) fn scope_for_invitation(
    tenant_id: TenantId,
    user_id: UserId,
    origin: &Origin,
) -> TenantScope {
    permissionless(tenant_id, user_id, origin)
}

/// A scope that confines a transaction to `tenant_id` and names `user_id`, granting nothing.
fn permissionless(tenant_id: TenantId, user_id: UserId, origin: &Origin) -> TenantScope {
    TenantScope::issue_after_authorization(
        tenant_id,
        Actor::User(user_id),
        tenantry_core::permission::PermissionSet::EMPTY,
        ProjectAccess::default(),
        Arc::new(origin.clone()),
    )
}

/// The scope in which a download link is served: the grant its requester holds *now*.
///
/// A link names who asked for it (a user, or an API key and its creator) and is re-checked
/// on every use, in the same statements an ordinary request costs: the user must be active
/// and still a member, the key live (not revoked or expired), the tenant active. Any of these
/// failing → `NotFound` (a link holder learns nothing about why; a suspended tenant too).
/// Whether the grant still reads the document is the files context's check. Issue it only
/// after the link's signature was verified (`tenantry_files::Files::verify_download`).
pub async fn authorize_download_link(
    db: &Db,
    tenant_id: TenantId,
    requester: Actor,
    origin: Arc<Origin>,
) -> Result<TenantScope, TenancyError> {
    let (tenant, projects) = match requester {
        Actor::User(user_id) => {
            let rows: Vec<GrantRow> = db
                .read_tenant_all(
                    &lookup_scope(tenant_id, requester),
                    &GRANTS.bind((tenant_id, user_id)),
                )
                .await?;
            let access = member_access(rows)?.ok_or(TenancyError::NotFound)?;
            if !access.user_active || access.status != TenantStatus::Active {
                return Err(TenancyError::NotFound);
            }
            (access.tenant, access.projects)
        }
        Actor::ApiKey { key_id, owner } => {
            let mut tx = db
                .begin_tenant_read(&lookup_scope(tenant_id, requester))
                .await?;
            let key: KeyRow = tx
                .fetch_optional(
                    key_query()
                        .and_where(Expr::col("tenant_id").eq(tenant_id))
                        .and_where(Expr::col("id").eq(key_id)),
                )
                .await?
                .ok_or(TenancyError::NotFound)?;
            let now = tx.now();
            if key.created_by != owner
                || key.revoked_at.is_some()
                || key.expires_at.is_some_and(|t| t <= now)
            {
                return Err(TenancyError::NotFound);
            }
            let grant = key_grant(&mut tx, &key).await.map_err(|e| match e {
                TenancyError::Db(e) => TenancyError::Db(e),
                _ => TenancyError::NotFound,
            })?;
            tx.commit().await?;
            grant
        }
    };
    Ok(TenantScope::issue_after_authorization(
        tenant_id, requester, tenant, projects, origin,
    ))
}
