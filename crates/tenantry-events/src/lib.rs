//! Domain events, recorded in the transaction of the change they describe.
//!
//! [`emit`] appends a CloudEvents 1.0 event (`specversion`, `id`, `source`, `type`, `time`,
//! `subject`, `tenantid`, `userid`, `data`) to the `domain_events` table inside the caller's
//! tenant transaction: an event exists exactly when its change committed. The table is the
//! outbox of the asynchronous backbone, whose relay will deliver unpublished rows
//! (`published_at IS NULL`) to in-process subscribers and Kafka and mark them; until then the
//! rows wait there, in order of their time-ordered ids.

pub mod migrations;

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde::Serialize;
use serde_json::Value;
use tenantry_core::TenantId;
use tenantry_db::{DbError, FromRow, Row, TenantScope, Tx};
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
    pub tenantid: Uuid,
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

/// Appends `event_type` about `subject` with `data` to the outbox inside `tx`, a transaction
/// of `scope`'s tenant. Returns the event.
pub async fn emit(
    tx: &mut Tx,
    scope: &TenantScope,
    event_type: &str,
    subject: String,
    data: Value,
) -> Result<CloudEvent, DbError> {
    let event = CloudEvent {
        specversion: SPEC_VERSION,
        id: Uuid::now_v7(),
        source: source_of(scope.tenant_id()),
        event_type: event_type.to_owned(),
        time: tenantry_core::now(),
        subject,
        tenantid: scope.tenant_id().as_uuid(),
        userid: scope.actor().user_id().map(|u| u.as_uuid()),
        data,
    };
    tx.execute(
        Query::insert()
            .into_table("domain_events")
            .columns(COLUMNS)
            .values_panic([
                event.tenantid.into(),
                event.id.into(),
                event.event_type.clone().into(),
                event.source.clone().into(),
                event.subject.clone().into(),
                event.time.into(),
                event.userid.into(),
                event.data.clone().into(),
            ]),
    )
    .await?;
    Ok(event)
}

impl FromRow for CloudEvent {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            specversion: SPEC_VERSION,
            tenantid: row.uuid()?,
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
