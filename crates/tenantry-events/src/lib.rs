//! Domain events, recorded in the transaction of the change they describe.
//!
//! A service records a change with [`record_change`]: the audit record and the event in one
//! call, inside the transaction of the change, so neither exists without the other and neither
//! outlives a rollback. The event types and their `data` schemas are the [`EventType`] catalog.
//!
//! Each event is a CloudEvents 1.0 event (`specversion`, `id`, `source`, `type`, `time`,
//! `subject`, `tenantid`, `userid`, `data`) appended to the `domain_events` table inside the
//! tenant transaction of the change: an event exists exactly when its change committed. The table is the
//! outbox of the asynchronous backbone, whose relay will deliver unpublished rows
//! (`published_at IS NULL`) to in-process subscribers and Kafka and mark them; until then the
//! rows wait there, in order of their time-ordered ids.

mod catalog;
pub mod migrations;

pub use catalog::{EventScope, EventType};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde::Serialize;
use serde_json::Value;
use tenantry_audit::{AuditActor, Chain, Entry};
use tenantry_core::{Origin, TenantId, UserId};
use tenantry_db::{DbError, FromRow, InsertRow, Row, TenantScope, Tx};
use uuid::Uuid;

/// The CloudEvents specification version of every event.
pub const SPEC_VERSION: &str = "1.0";

/// A domain event as CloudEvents 1.0 JSON.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CloudEvent {
    pub specversion: &'static str,
    pub id: Uuid,
    /// Where it happened: `/tenants/{tenant_id}`.
    pub source: String,
    /// What happened: `document.uploaded`, `document.deleted`, …
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub time: DateTime<Utc>,
    /// What it happened to: `documents/{id}`.
    pub subject: String,
    /// The tenant that changed; absent for an account's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenantid: Option<Uuid>,
    /// The person who caused it (an API key's creator), if any.
    pub userid: Option<Uuid>,
    pub data: Value,
}

/// The stored columns of an event, in [`FromRow`] order.
const COLUMNS: [&str; 8] = [
    "tenant_id",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "user_id",
    "data",
];

/// The source of every event of `tenant`.
pub fn source_of(tenant: TenantId) -> String {
    format!("/tenants/{tenant}")
}

/// The event half of a change: its type, subject and `data`.
#[derive(Debug)]
pub struct Event {
    event_type: EventType,
    subject: String,
    data: Result<Value, serde_json::Error>,
}

impl Event {
    /// `event_type` about `subject` (relative to the tenant, e.g. `projects/{id}`) with
    /// `data`, the resource as its GET returns it.
    pub fn new(event_type: EventType, subject: String, data: &impl Serialize) -> Self {
        Self {
            event_type,
            subject,
            data: serde_json::to_value(data),
        }
    }

    /// An update: the resource after it plus `changes`, the names of the fields it set.
    pub fn updated(
        event_type: EventType,
        subject: String,
        data: &impl Serialize,
        changes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let mut event = Self::new(event_type, subject, data);
        if let Ok(Value::Object(map)) = &mut event.data {
            let changes: Vec<Value> = changes
                .into_iter()
                .map(|c| Value::String(c.into()))
                .collect();
            map.insert("changes".to_owned(), changes.into());
        }
        event
    }
}

/// Records a change of `scope`'s tenant inside `tx`: the audit record `audit` (as the scope's
/// actor and origin) and the domain event `event`. Returns the event.
pub async fn record_change(
    tx: &mut Tx,
    scope: &TenantScope,
    audit: Entry,
    event: Event,
) -> Result<CloudEvent, DbError> {
    record_change_in(
        tx,
        scope.tenant_id(),
        scope.actor().into(),
        scope.origin(),
        audit,
        event,
    )
    .await
}

/// [`record_change`] for a change of `tenant` made outside a tenant scope (platform
/// administration). `tx` must be able to write the tenant's rows.
pub async fn record_change_in(
    tx: &mut Tx,
    tenant: TenantId,
    actor: AuditActor,
    origin: &Origin,
    audit: Entry,
    event: Event,
) -> Result<CloudEvent, DbError> {
    let event = cloud_event(
        event,
        EventScope::Tenant,
        source_of(tenant),
        Some(tenant),
        actor,
        tx.now(),
    )?;
    tx.execute(&outbox_insert("domain_events", &event)).await?;
    tenantry_audit::record_in(tx, Chain::Tenant(tenant), actor, origin, audit).await?;
    Ok(event)
}

/// The insert of `event` into an outbox table, each column beside its value: a tenant's
/// outbox (`domain_events`) leads with `tenant_id`, the platform outbox has none.
fn outbox_insert(table: &'static str, event: &CloudEvent) -> sea_query::InsertStatement {
    let mut pairs: Vec<(&str, sea_query::Value)> = vec![
        ("id", event.id.into()),
        ("type", event.event_type.clone().into()),
        ("source", event.source.clone().into()),
        ("subject", event.subject.clone().into()),
        ("time", event.time.into()),
        ("user_id", event.userid.into()),
        ("data", event.data.clone().into()),
    ];
    if let Some(tenant) = event.tenantid {
        pairs.insert(0, ("tenant_id", tenant.into()));
    }
    Query::insert()
        .into_table(table)
        .row_of(
            pairs
                .into_iter()
                .map(|(column, value)| (column, value.into()))
                .collect(),
        )
        .to_owned()
}

/// Records a change of `user`'s account inside `tx`, a platform transaction (accounts
/// belong to no tenant): the audit record in the account's chain and the event in
/// `platform_events`, source `/users/{user}`, without `tenantid`. Returns the event.
pub async fn record_account_change(
    tx: &mut Tx,
    user: UserId,
    actor: AuditActor,
    origin: &Origin,
    audit: Entry,
    event: Event,
) -> Result<CloudEvent, DbError> {
    let event = cloud_event(
        event,
        EventScope::Account,
        format!("/users/{user}"),
        None,
        actor,
        tx.now(),
    )?;
    tx.execute(&outbox_insert("platform_events", &event))
        .await?;
    tenantry_audit::record_in(tx, Chain::User(user), actor, origin, audit).await?;
    Ok(event)
}

/// The CloudEvent of `event` as `actor` caused it; refused when the type belongs to the
/// other `scope` (a tenant's type in the platform outbox or the reverse).
fn cloud_event(
    event: Event,
    scope: EventScope,
    source: String,
    tenant: Option<TenantId>,
    actor: AuditActor,
    time: DateTime<Utc>,
) -> Result<CloudEvent, DbError> {
    if event.event_type.scope() != scope {
        return Err(anyhow::anyhow!(
            "{} is not an event of this outbox",
            event.event_type.as_str()
        )
        .into());
    }
    let data = event
        .data
        .with_context(|| format!("serialising the data of {}", event.event_type.as_str()))?;
    if !data.is_object() {
        return Err(
            anyhow::anyhow!("the data of {} is not an object", event.event_type.as_str()).into(),
        );
    }
    Ok(CloudEvent {
        specversion: SPEC_VERSION,
        id: Uuid::now_v7(),
        source,
        event_type: event.event_type.as_str().to_owned(),
        time,
        subject: event.subject,
        tenantid: tenant.map(|t| t.as_uuid()),
        userid: actor.user_id().map(|u| u.as_uuid()),
        data,
    })
}

impl FromRow for CloudEvent {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            specversion: SPEC_VERSION,
            tenantid: Some(row.uuid()?),
            id: row.uuid()?,
            event_type: row.string()?,
            source: row.string()?,
            subject: row.string()?,
            time: row.time()?,
            userid: row.opt_uuid()?,
            data: row.json()?,
        })
    }
}

/// The events of `scope`'s tenant not yet published, oldest first (at most `limit`), read
/// inside `tx`.
pub async fn unpublished(
    tx: &mut Tx,
    scope: &TenantScope,
    limit: u64,
) -> Result<Vec<CloudEvent>, DbError> {
    tx.fetch_all(
        Query::select()
            .columns(COLUMNS)
            .from("domain_events")
            .and_where(Expr::col("tenant_id").eq(scope.tenant_id()))
            .and_where(Expr::col("published_at").is_null())
            .order_by("id", Order::Asc)
            .limit(limit),
    )
    .await
}
