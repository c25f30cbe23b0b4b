//! Tenants: creation (the creator becomes owner), listing, profile and soft deletion.

use sea_query::{Expr, ExprTrait, Order, Query};
use tenantry_audit::Entry;
use tenantry_core::{
    Origin, Page, PageRequest, Permission, ResourceName, Slug, SystemRole, TenantId, UserId,
};
use tenantry_db::{Db, InsertRow, TenantScope, Tx, UserScope};
use tenantry_events::{Event, EventType, record_change};
use tenantry_identity::User;

use crate::{
    TenancyError, Tenant, TenantMembership, TenantSettingsPatch, authz::scope_for_new_tenant,
    members::insert_membership, model::TenantStatus, settings,
};

/// How many numbered variants of a derived slug are tried before giving up.
const SLUG_ATTEMPTS: u32 = 20;

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: ResourceName,
    /// Chosen by the client; `None` derives one from the name.
    pub slug: Option<Slug>,
}

/// A change to a tenant's profile.
#[derive(Debug, Default)]
pub struct TenantChange {
    pub name: Option<ResourceName>,
    /// Merged into the current settings (see [`crate::settings`]).
    pub settings: Option<TenantSettingsPatch>,
}

/// Inserts a tenant and its owner membership inside `tx`, which is left confined to the new
/// tenant. Returns `SlugTaken` on a slug collision (the caller decides whether to retry).
pub async fn create_tenant_in(
    tx: &mut Tx,
    creator: UserId,
    name: &ResourceName,
    slug: &Slug,
    origin: &Origin,
) -> Result<Tenant, TenancyError> {
    let id = TenantId::new();
    let scope = scope_for_new_tenant(id, creator, origin);
    tx.enter_tenant(&scope).await?;
    let now = tx.now();
    tx.execute(Query::insert().into_table("tenants").row([
        ("id", id.into()),
        ("name", name.as_str().into()),
        ("slug", slug.as_str().into()),
        ("status", TenantStatus::Active.as_str().into()),
        ("settings", serde_json::json!({}).into()),
        ("created_at", now.into()),
        ("updated_at", now.into()),
    ]))
    .await
    .map_err(|e| {
        if e.is_unique_violation_on("slug") {
            TenancyError::SlugTaken
        } else {
            e.into()
        }
    })?;
    insert_membership(tx, id, creator, SystemRole::Owner.as_str(), now).await?;
    let tenant = fetch(tx, id).await?.ok_or(TenancyError::NotFound)?;
    record_change(
        tx,
        &scope,
        Entry::new("tenant.created", "tenant", id)
            .with_summary(serde_json::json!({"name": tenant.name, "slug": tenant.slug})),
        Event::new(EventType::TenantCreated, subject(id), &tenant),
    )
    .await?;
    Ok(tenant)
}

/// Creates a tenant owned by `creator`. A derived slug that is taken gets a numeric suffix;
/// a slug the client chose answers `SlugTaken`. Guests cannot create tenants
/// (`GuestNotAllowed`): a throw-away account owning a tenant could invite and add people
/// with nothing to answer for.
pub async fn create_tenant(
    db: &Db,
    creator: &User,
    new: NewTenant,
    origin: &Origin,
) -> Result<Tenant, TenancyError> {
    if creator.is_guest {
        return Err(TenancyError::GuestNotAllowed);
    }
    let creator = creator.id;
    let (base, explicit) = match new.slug {
        Some(slug) => (slug, true),
        None => (Slug::from_name(new.name.as_str()), false),
    };
    for attempt in 0..SLUG_ATTEMPTS {
        let slug = if attempt == 0 {
            base.clone()
        } else {
            base.with_suffix(attempt + 1)
        };
        let mut tx = db.begin_write().await?;
        match create_tenant_in(&mut tx, creator, &new.name, &slug, origin).await {
            Ok(tenant) => {
                tx.commit().await?;
                tracing::info!(tenant_id = %tenant.id, "tenant created");
                return Ok(tenant);
            }
            Err(TenancyError::SlugTaken) if !explicit => continue,
            Err(e) => return Err(e),
        }
    }
    Err(TenancyError::SlugTaken)
}

/// The subject of a tenant's events.
pub(crate) fn subject(id: TenantId) -> String {
    format!("tenants/{id}")
}

pub(crate) async fn fetch(tx: &mut Tx, id: TenantId) -> Result<Option<Tenant>, TenancyError> {
    Ok(tx
        .fetch_optional(
            Query::select()
                .columns(Tenant::COLUMNS)
                .from("tenants")
                .and_where(Expr::col("id").eq(id))
                .and_where(Expr::col("status").ne(TenantStatus::Deleted.as_str())),
        )
        .await?)
}

/// The tenants the scope's user belongs to, with their role, newest first.
pub async fn list_my_tenants(
    db: &Db,
    scope: &UserScope,
    page: &PageRequest,
) -> Result<Page<TenantMembership>, TenancyError> {
    let mut query = Query::select();
    query
        .columns(Tenant::qualified())
        .column(("memberships", "role"))
        .from("memberships")
        .inner_join(
            "tenants",
            Expr::col(("tenants", "id")).equals(("memberships", "tenant_id")),
        )
        .and_where(Expr::col(("memberships", "user_id")).eq(scope.user_id()))
        .and_where(Expr::col(("tenants", "status")).ne(TenantStatus::Deleted.as_str()))
        .order_by(("tenants", "id"), Order::Desc)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        query.and_where(Expr::col(("tenants", "id")).lt(after.0));
    }
    let mut tx = db.begin_user(scope, false).await?;
    let rows: Vec<TenantMembership> = tx.fetch_all(&query).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |m| m.tenant.id.as_uuid()))
}

pub async fn get_tenant(db: &Db, scope: &TenantScope) -> Result<Tenant, TenancyError> {
    require(scope, Permission::TenantRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    let tenant = fetch(&mut tx, scope.tenant_id()).await?;
    tx.commit().await?;
    tenant.ok_or(TenancyError::NotFound)
}

pub async fn update_tenant(
    db: &Db,
    scope: &TenantScope,
    change: TenantChange,
) -> Result<Tenant, TenancyError> {
    require(scope, Permission::TenantUpdate)?;
    let mut tx = db.begin_tenant(scope).await?;
    if let Some(patch) = &change.settings {
        settings::apply_in(&mut tx, scope, patch).await?;
    }
    if let Some(name) = change.name {
        let renamed = tx
            .execute(
                Query::update()
                    .table("tenants")
                    .value("name", name.as_str())
                    .value("updated_at", tx.now())
                    .and_where(Expr::col("id").eq(scope.tenant_id()))
                    .and_where(Expr::col("name").ne(name.as_str())),
            )
            .await?;
        if renamed > 0 {
            let tenant = fetch(&mut tx, scope.tenant_id())
                .await?
                .ok_or(TenancyError::NotFound)?;
            record_change(
                &mut tx,
                scope,
                Entry::new("tenant.updated", "tenant", scope.tenant_id())
                    .with_summary(serde_json::json!({ "name": name.as_str() })),
                Event::updated(
                    EventType::TenantUpdated,
                    subject(scope.tenant_id()),
                    &tenant,
                    ["name"],
                ),
            )
            .await?;
        }
    }
    let tenant = fetch(&mut tx, scope.tenant_id())
        .await?
        .ok_or(TenancyError::NotFound)?;
    tx.commit().await?;
    Ok(tenant)
}

/// Soft delete: the tenant disappears for everyone; its rows stay for the retention window.
pub async fn delete_tenant(db: &Db, scope: &TenantScope) -> Result<(), TenancyError> {
    require(scope, Permission::TenantDelete)?;
    let now = db.now();
    let mut tx = db.begin_tenant(scope).await?;
    let tenant = fetch(&mut tx, scope.tenant_id())
        .await?
        .ok_or(TenancyError::NotFound)?;
    let changed = tx
        .execute(
            Query::update()
                .table("tenants")
                .value("status", TenantStatus::Deleted.as_str())
                .value("deleted_at", now)
                .value("updated_at", now)
                .and_where(Expr::col("id").eq(scope.tenant_id()))
                .and_where(Expr::col("status").ne(TenantStatus::Deleted.as_str())),
        )
        .await?;
    if changed == 0 {
        return Err(TenancyError::NotFound);
    }
    record_change(
        &mut tx,
        scope,
        Entry::new("tenant.deleted", "tenant", scope.tenant_id()),
        Event::new(
            EventType::TenantDeleted,
            subject(scope.tenant_id()),
            &tenant,
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %scope.tenant_id(), "tenant deleted");
    Ok(())
}

pub(crate) fn require(scope: &TenantScope, permission: Permission) -> Result<(), TenancyError> {
    if scope.can(permission) {
        Ok(())
    } else {
        Err(TenancyError::Forbidden(permission))
    }
}
