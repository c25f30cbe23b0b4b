//! Tenant API keys: `tnt_…` bearer credentials for automation, bound to one tenant, with a
//! role or an explicit permission subset, optionally one project and an expiry.
//!
//! The secret is shown once at creation; only its SHA-256 is stored. A key acts for the
//! member who created it and never beyond what that member holds at the time of each
//! request (`authz::authorize_api_key`).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_query::{Expr, ExprTrait, Order, Query};
use serde::Serialize;
use tenantry_audit::Entry;
use tenantry_core::{
    ApiKeyId, Page, PageRequest, Permission, ProjectId, ResourceName, UserId,
    permission::PermissionSet,
};
use tenantry_db::{Db, DbError, FromRow, InsertRow, Row, TenantScope, Tx};
use tenantry_events::{Event, EventType, record_change};
use utoipa::ToSchema;

use crate::{
    TenancyError,
    authz::{API_KEY_PREFIX, api_key_hash},
    model::{names, parse_names},
    projects::project_exists,
    roles::resolve,
    tenants::require,
};

/// How many characters of a key identify it in lists (`tnt_` and 8 more).
const DISPLAYED_PREFIX: usize = API_KEY_PREFIX.len() + 8;

/// What a new key may do: a role of the tenant, or an explicit permission subset.
#[derive(Debug, Clone)]
pub enum KeyGrant {
    Role(String),
    Permissions(PermissionSet),
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: ResourceName,
    pub grant: KeyGrant,
    pub project_id: Option<ProjectId>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    /// The key's first characters, to recognise it (`tnt_AbCd1234`).
    pub prefix: String,
    /// The role the key acts with, when it was given one.
    pub role: Option<String>,
    /// The explicit permissions, when it was given a subset instead of a role.
    pub permissions: Option<Vec<String>>,
    pub project_id: Option<ProjectId>,
    /// The member the key acts for; it never exceeds their permissions.
    pub created_by: UserId,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "tenantry_core::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "tenantry_core::time::serialize_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    const COLUMNS: [&'static str; 10] = [
        "id",
        "name",
        "prefix",
        "role",
        "permissions",
        "project_id",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
    ];
}

impl FromRow for ApiKey {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id()?,
            name: row.string()?,
            prefix: row.string()?,
            role: row.opt_string()?,
            permissions: row
                .opt_json::<Vec<String>>()?
                .map(|n| names(parse_names(&n))),
            project_id: row.opt_id()?,
            created_by: row.id()?,
            created_at: row.time()?,
            expires_at: row.opt_time()?,
            last_used_at: row.opt_time()?,
        })
    }
}

/// A new key with its secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret: send it as `Authorization: Bearer <key>`. It cannot be shown again.
    #[serde(rename = "key")]
    pub secret: String,
}

fn live(q: &mut sea_query::SelectStatement) {
    q.and_where(Expr::col("revoked_at").is_null());
}

/// The subject of a key's events.
fn subject(id: ApiKeyId) -> String {
    format!("api-keys/{id}")
}

async fn fetch(tx: &mut Tx, scope: &TenantScope, id: ApiKeyId) -> Result<Option<ApiKey>, DbError> {
    let mut q = Query::select();
    q.columns(ApiKey::COLUMNS)
        .from("api_keys")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .and_where(Expr::col("id").eq(id));
    live(&mut q);
    tx.fetch_optional(&q).await
}

/// What the caller may hand to a key: everything they hold tenant-wide or, for a
/// project-bound key, in that project.
fn grantable(scope: &TenantScope, project: Option<ProjectId>) -> PermissionSet {
    match project {
        Some(project) => scope
            .permissions()
            .difference(Permission::PROJECT_SCOPED)
            .union(scope.projects().in_project(project)),
        None => scope.permissions().union(scope.projects().default),
    }
}

/// Creates a key (`api_keys:manage`) acting for the caller's member account.
pub async fn create_api_key(
    db: &Db,
    scope: &TenantScope,
    new: NewApiKey,
) -> Result<CreatedApiKey, TenancyError> {
    require(scope, Permission::ApiKeysManage)?;
    let creator = scope
        .actor()
        .user_id()
        .ok_or(TenancyError::Forbidden(Permission::ApiKeysManage))?;
    let now = db.now();
    if new.expires_at.is_some_and(|t| t <= now) {
        return Err(TenancyError::Invalid {
            field: "expires_at",
            message: "must be in the future",
        });
    }
    let mut tx = db.begin_tenant(scope).await?;
    if let Some(project) = new.project_id
        && (!project_exists(&mut tx, scope, project).await?
            || !scope.can_in_project(project, Permission::ProjectsRead))
    {
        return Err(TenancyError::UnknownProject);
    }
    let (role, permissions) = match &new.grant {
        KeyGrant::Role(name) => {
            let role = resolve(&mut tx, scope, name).await?;
            (Some(role.name), role.permissions)
        }
        KeyGrant::Permissions(set) => (None, *set),
    };
    if !permissions.is_subset_of(grantable(scope, new.project_id)) {
        return Err(TenancyError::RoleTooPowerful);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let id = ApiKeyId::new();
    let explicit = match new.grant {
        KeyGrant::Permissions(set) => Some(serde_json::json!(names(set))),
        KeyGrant::Role(_) => None,
    };
    tx.execute(Query::insert().into_table("api_keys").row([
        ("tenant_id", scope.tenant_id().into()),
        ("id", id.into()),
        ("name", new.name.as_str().into()),
        ("prefix", secret[..DISPLAYED_PREFIX].into()),
        ("key_hash", api_key_hash(&secret).to_vec().into()),
        ("role", role.clone().into()),
        ("permissions", explicit.into()),
        ("project_id", new.project_id.into()),
        ("created_by", creator.into()),
        ("created_at", now.into()),
        ("expires_at", new.expires_at.into()),
    ]))
    .await?;
    let key = fetch(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    record_change(
        &mut tx,
        scope,
        Entry::new("api_key.created", "api_key", id).with_summary(serde_json::json!({
            "name": key.name,
            "prefix": key.prefix,
            "role": role,
            "permissions": names(permissions),
            "project_id": new.project_id,
            "expires_at": new.expires_at,
        })),
        Event::new(EventType::ApiKeyCreated, subject(id), &key),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), api_key_id = %id, "API key created");
    Ok(CreatedApiKey { key, secret })
}

/// The tenant's live keys, newest first (`api_keys:read`); never their secrets.
pub async fn list_api_keys(
    db: &Db,
    scope: &TenantScope,
    page: &PageRequest,
) -> Result<Page<ApiKey>, TenancyError> {
    require(scope, Permission::ApiKeysRead)?;
    let mut q = Query::select();
    q.columns(ApiKey::COLUMNS)
        .from("api_keys")
        .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
        .order_by("id", Order::Desc)
        .limit(page.fetch_limit());
    live(&mut q);
    if let Some(after) = page.after {
        q.and_where(Expr::col("id").lt(after.0));
    }
    let rows: Vec<ApiKey> = db.read_tenant_all(scope, &q).await?;
    Ok(Page::from_rows(rows, page, |k| k.id.as_uuid()))
}

/// One live key (`api_keys:read`).
pub async fn get_api_key(
    db: &Db,
    scope: &TenantScope,
    id: ApiKeyId,
) -> Result<ApiKey, TenancyError> {
    require(scope, Permission::ApiKeysRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    let key = fetch(&mut tx, scope, id).await?;
    tx.commit().await?;
    key.ok_or(TenancyError::NotFound)
}

/// Revokes a key (`api_keys:manage`); it stops working with the next request.
pub async fn revoke_api_key(
    db: &Db,
    scope: &TenantScope,
    id: ApiKeyId,
) -> Result<(), TenancyError> {
    require(scope, Permission::ApiKeysManage)?;
    let mut tx = db.begin_tenant(scope).await?;
    let key = fetch(&mut tx, scope, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    let revoked = tx
        .execute(
            Query::update()
                .table("api_keys")
                .value("revoked_at", tx.now())
                .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await?;
    if revoked == 0 {
        return Err(TenancyError::NotFound);
    }
    record_change(
        &mut tx,
        scope,
        Entry::new("api_key.revoked", "api_key", id),
        Event::new(EventType::ApiKeyRevoked, subject(id), &key),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), api_key_id = %id, "API key revoked");
    Ok(())
}
