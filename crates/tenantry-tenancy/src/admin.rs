//! Platform administration of tenants (`/api/v1/admin/tenants…`): every tenant, whatever its
//! status, through administration transactions; suspension and reactivation are audited in
//! the tenant's own chain.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Func, Order, Query, SelectStatement};
use serde::Serialize;
use tenantry_audit::{AuditActor, Entry};
use tenantry_core::{Page, PageRequest, TenantId};
use tenantry_db::{AdminScope, Db, DbError, FromRow, Row, Tx, contains_pattern};
use utoipa::ToSchema;

use crate::{TenancyError, Tenant, TenantStatus};

/// Which tenants to list.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    pub status: Option<TenantStatus>,
    /// Case-insensitive substring of the name or the slug.
    pub q: Option<String>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
}

/// A tenant as platform administrators see it: whatever its status (`active`, `suspended`
/// or `deleted` — soft-deleted, purged after the retention window), with its member count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminTenant {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub member_count: i64,
    /// When it was soft-deleted; `null` otherwise.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl FromRow for AdminTenant {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant: Tenant::from_row(row)?,
            deleted_at: row.opt_time()?,
            member_count: row.i64()?,
        })
    }
}

/// `SELECT` of [`AdminTenant`]s (member count as a correlated subquery on the
/// `(tenant_id, user_id)` primary key).
fn select() -> SelectStatement {
    let members = Query::select()
        .expr(Func::count(Expr::col(("memberships", "user_id"))))
        .from("memberships")
        .and_where(Expr::col(("memberships", "tenant_id")).equals(("tenants", "id")))
        .to_owned();
    Query::select()
        .columns(Tenant::qualified())
        .column(("tenants", "deleted_at"))
        .expr(Expr::SubQuery(None, Box::new(members.into())))
        .from("tenants")
        .to_owned()
}

/// Every tenant matching `filter`, newest first.
pub async fn list_tenants(
    db: &Db,
    scope: &AdminScope,
    filter: &TenantFilter,
    page: &PageRequest,
) -> Result<Page<AdminTenant>, TenancyError> {
    let mut query = select();
    if let Some(status) = filter.status {
        query.and_where(Expr::col(("tenants", "status")).eq(status.as_str()));
    }
    if let Some(q) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        query.cond_where(
            Expr::expr(Func::lower(Expr::col(("tenants", "name"))))
                .like(contains_pattern(q))
                .or(Expr::expr(Func::lower(Expr::col(("tenants", "slug"))))
                    .like(contains_pattern(q))),
        );
    }
    if let Some(from) = filter.created_from {
        query.and_where(Expr::col(("tenants", "created_at")).gte(from));
    }
    if let Some(to) = filter.created_to {
        query.and_where(Expr::col(("tenants", "created_at")).lt(to));
    }
    if let Some(after) = page.after {
        query.and_where(Expr::col(("tenants", "id")).lt(after.0));
    }
    query
        .order_by(("tenants", "id"), Order::Desc)
        .limit(page.fetch_limit());
    let mut tx = db.begin_admin(scope).await?;
    let rows: Vec<AdminTenant> = tx.fetch_all(&query).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |t| t.tenant.id.as_uuid()))
}

async fn fetch(tx: &mut Tx, id: TenantId) -> Result<Option<AdminTenant>, TenancyError> {
    let mut query = select();
    query.and_where(Expr::col(("tenants", "id")).eq(id));
    Ok(tx.fetch_optional(&query).await?)
}

/// One tenant, whatever its status (deleted ones until they are purged).
pub async fn get_tenant(
    db: &Db,
    scope: &AdminScope,
    id: TenantId,
) -> Result<AdminTenant, TenancyError> {
    let mut tx = db.begin_admin(scope).await?;
    let tenant = fetch(&mut tx, id).await?;
    tx.commit().await?;
    tenant.ok_or(TenancyError::NotFound)
}

/// Who the audit trail names for an administration scope.
pub(crate) fn actor(scope: &AdminScope) -> AuditActor {
    scope.actor().map_or(AuditActor::System, AuditActor::User)
}

/// Moves a live tenant from `from` to `to`, recording `event` (audit action and domain
/// event) in the tenant's chain and outbox.
async fn transition(
    db: &Db,
    scope: &AdminScope,
    id: TenantId,
    (from, to): (TenantStatus, TenantStatus),
    event: tenantry_events::EventType,
    reason: Option<&str>,
) -> Result<AdminTenant, TenancyError> {
    let mut tx = db.begin_admin(scope).await?;
    let mut current = Query::select();
    current
        .column("status")
        .from("tenants")
        .and_where(Expr::col("id").eq(id));
    tx.for_update(&mut current);
    let status: Option<String> = tx.fetch_optional(&current).await?;
    match status.as_deref().map(TenantStatus::parse).transpose()? {
        None | Some(TenantStatus::Deleted) => return Err(TenancyError::NotFound),
        Some(status) if status == from => {}
        Some(_) if to == TenantStatus::Suspended => return Err(TenancyError::AlreadySuspended),
        Some(_) => return Err(TenancyError::NotSuspended),
    }
    tx.execute(
        Query::update()
            .table("tenants")
            .value("status", to.as_str())
            .value("updated_at", tx.now())
            .and_where(Expr::col("id").eq(id)),
    )
    .await?;
    let changed = crate::tenants::fetch(&mut tx, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    tenantry_events::record_change_in(
        &mut tx,
        id,
        actor(scope),
        scope.origin(),
        Entry::new(event.as_str(), "tenant", id)
            .with_summary(serde_json::json!({ "reason": reason })),
        tenantry_events::Event::new(event, crate::tenants::subject(id), &changed),
    )
    .await?;
    let tenant = fetch(&mut tx, id).await?.ok_or(TenancyError::NotFound)?;
    tx.commit().await?;
    tracing::info!(tenant_id = %id, action = event.as_str(), "tenant status changed by an administrator");
    Ok(tenant)
}

/// Suspends an active tenant: its members get 403 `tenant_suspended` on every tenant path
/// until it is reactivated. Already suspended → `AlreadySuspended`; unknown or deleted →
/// `NotFound`.
pub async fn suspend_tenant(
    db: &Db,
    scope: &AdminScope,
    id: TenantId,
    reason: Option<&str>,
) -> Result<AdminTenant, TenancyError> {
    transition(
        db,
        scope,
        id,
        (TenantStatus::Active, TenantStatus::Suspended),
        tenantry_events::EventType::TenantSuspended,
        reason,
    )
    .await
}

/// Reactivates a suspended tenant. Not suspended → `NotSuspended`; unknown or deleted →
/// `NotFound`.
pub async fn reactivate_tenant(
    db: &Db,
    scope: &AdminScope,
    id: TenantId,
    reason: Option<&str>,
) -> Result<AdminTenant, TenancyError> {
    transition(
        db,
        scope,
        id,
        (TenantStatus::Suspended, TenantStatus::Active),
        tenantry_events::EventType::TenantReactivated,
        reason,
    )
    .await
}
