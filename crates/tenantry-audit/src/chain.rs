//! Appending to and verifying the per-tenant hash chains.

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Order, Query};
use sha2::{Digest, Sha256};
use tenantry_core::{AuditId, Origin, TenantId};
use tenantry_db::{AdminScope, Db, DbError, FromRow, InsertRow, Row, Tx};
use uuid::Uuid;

use crate::{AuditActor, Chain, Entry, redact};

/// The `prev_hash` of a chain's first record.
const GENESIS: [u8; 32] = [0; 32];

/// Column order shared by inserts, verification reads and [`Fields`]'s decoding.
pub(crate) const COLUMNS: [&str; 19] = [
    "chain_id",
    "seq",
    "tenant_id",
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_user_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "ip",
    "user_agent",
    "summary",
    "project_id",
    "prev_hash",
    "hash",
];

/// Everything a record's hash covers, in storage form.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub chain: Uuid,
    pub seq: i64,
    pub tenant_id: Option<Uuid>,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The JSON text exactly as stored (the hash covers these bytes).
    pub summary: String,
    /// Added after the first records were written: covered by the hash only when present,
    /// so earlier records keep verifying.
    pub project_id: Option<Uuid>,
}

/// A stored record: its fields and its links.
pub(crate) struct Stored {
    pub fields: Fields,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl FromRow for Stored {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            fields: Fields {
                chain: row.uuid()?,
                seq: row.i64()?,
                tenant_id: row.opt_uuid()?,
                id: row.uuid()?,
                occurred_at: row.time()?,
                actor_type: row.string()?,
                actor_id: row.opt_uuid()?,
                actor_user_id: row.opt_uuid()?,
                action: row.string()?,
                target_type: row.string()?,
                target_id: row.opt_string()?,
                outcome: row.string()?,
                request_id: row.opt_string()?,
                ip: row.opt_string()?,
                user_agent: row.opt_string()?,
                summary: row.string()?,
                project_id: row.opt_uuid()?,
            },
            prev_hash: row.bytes()?,
            hash: row.bytes()?,
        })
    }
}

struct Head {
    seq: i64,
    hash: Vec<u8>,
}

impl FromRow for Head {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            seq: row.i64()?,
            hash: row.bytes()?,
        })
    }
}

/// SHA-256 over a version tag, the predecessor's hash and every field, each length-prefixed
/// (absent values have their own marker), so no two different records encode alike.
pub(crate) fn digest(prev: &[u8], f: &Fields) -> [u8; 32] {
    fn put(h: &mut Sha256, value: Option<&[u8]>) {
        match value {
            Some(bytes) => {
                h.update(u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
                h.update(bytes);
            }
            None => h.update(u32::MAX.to_be_bytes()),
        }
    }
    let mut h = Sha256::new();
    h.update(b"tenantry-audit-v1");
    put(&mut h, Some(prev));
    put(&mut h, Some(f.chain.as_bytes()));
    put(&mut h, Some(&f.seq.to_be_bytes()));
    put(
        &mut h,
        f.tenant_id.as_ref().map(|u| u.as_bytes().as_slice()),
    );
    put(&mut h, Some(f.id.as_bytes()));
    put(
        &mut h,
        Some(&f.occurred_at.timestamp_micros().to_be_bytes()),
    );
    put(&mut h, Some(f.actor_type.as_bytes()));
    put(&mut h, f.actor_id.as_ref().map(|u| u.as_bytes().as_slice()));
    put(
        &mut h,
        f.actor_user_id.as_ref().map(|u| u.as_bytes().as_slice()),
    );
    put(&mut h, Some(f.action.as_bytes()));
    put(&mut h, Some(f.target_type.as_bytes()));
    put(&mut h, f.target_id.as_deref().map(str::as_bytes));
    put(&mut h, Some(f.outcome.as_bytes()));
    put(&mut h, f.request_id.as_deref().map(str::as_bytes));
    put(&mut h, f.ip.as_deref().map(str::as_bytes));
    put(&mut h, f.user_agent.as_deref().map(str::as_bytes));
    put(&mut h, Some(f.summary.as_bytes()));
    // Every field is length-prefixed, so a record with a project never encodes like one
    // without.
    if let Some(project) = &f.project_id {
        put(&mut h, Some(project.as_bytes()));
    }
    h.finalize().into()
}

/// A PostgreSQL advisory-lock key per chain: appends to one chain serialise, appends to
/// different chains do not (a collision only serialises two chains).
fn lock_key(chain: Uuid) -> i64 {
    let bytes = chain.as_u128();
    // Namespaced so it never meets the migrator's lock.
    let folded = (bytes as u64) ^ ((bytes >> 64) as u64) ^ 0x6175_6469_745f_6c6b;
    i64::from_be_bytes(folded.to_be_bytes())
}

fn clip(value: Option<&str>, max: usize) -> Option<String> {
    value.map(|v| v.chars().take(max).collect())
}

pub(crate) async fn append(
    tx: &mut Tx,
    target: Chain,
    actor: AuditActor,
    origin: &Origin,
    mut entry: Entry,
) -> Result<(), DbError> {
    let chain = target.id();
    // Held to commit. The head is read by the next statement, whose snapshot (READ
    // COMMITTED) includes whatever the previous holder committed.
    tx.advisory_lock(lock_key(chain)).await?;
    let head: Option<Head> = tx
        .fetch_optional(
            Query::select()
                .columns(["seq", "hash"])
                .from("audit_logs")
                .and_where(Expr::col("chain_id").eq(chain))
                .order_by("seq", Order::Desc)
                .limit(1),
        )
        .await?;
    let (seq, prev) = head.map_or((1, GENESIS.to_vec()), |h| (h.seq + 1, h.hash));
    redact(&mut entry.summary);
    let fields = Fields {
        chain,
        seq,
        tenant_id: target.tenant().map(|t| t.as_uuid()),
        id: AuditId::new().as_uuid(),
        occurred_at: tx.now(),
        actor_type: actor.kind().to_owned(),
        actor_id: actor.id(),
        actor_user_id: actor.user_id().map(|u| u.as_uuid()),
        action: entry.action.to_owned(),
        target_type: entry.target_type.to_owned(),
        target_id: clip(entry.target_id.as_deref(), 200),
        outcome: entry.outcome.as_str().to_owned(),
        request_id: clip(origin.request_id.as_deref(), 128),
        ip: clip(origin.ip.as_deref(), 64),
        user_agent: clip(origin.user_agent.as_deref(), 256),
        summary: entry.summary.to_string(),
        project_id: entry.project_id.map(|p| p.as_uuid()),
    };
    let hash = digest(&prev, &fields);
    tx.execute(Query::insert().into_table("audit_logs").row_in(
        COLUMNS,
        [
            fields.chain.into(),
            fields.seq.into(),
            fields.tenant_id.into(),
            fields.id.into(),
            fields.occurred_at.into(),
            fields.actor_type.into(),
            fields.actor_id.into(),
            fields.actor_user_id.into(),
            fields.action.into(),
            fields.target_type.into(),
            fields.target_id.into(),
            fields.outcome.into(),
            fields.request_id.into(),
            fields.ip.into(),
            fields.user_agent.into(),
            fields.summary.into(),
            fields.project_id.into(),
            prev.into(),
            hash.to_vec().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The tenant's or user's id; nil for the platform chain.
    pub chain_id: Uuid,
    /// The tenant of the chain, for tenant chains.
    pub tenant_id: Option<TenantId>,
    pub seq: i64,
    pub reason: &'static str,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub chains: u64,
    pub records: u64,
    /// The first break of each broken chain.
    pub breaks: Vec<ChainBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

const BATCH: u64 = 1000;

/// Recomputes every chain: each record must follow its predecessor (`seq` + 1, `prev_hash`
/// equal to its hash; the first has `seq` 1 and the genesis link) and hash to what it stores.
/// Detects edited, deleted, inserted and reordered records; a chain cut off at its end
/// looks like a shorter chain.
pub async fn verify(db: &Db, scope: &AdminScope) -> Result<VerifyReport, DbError> {
    let mut report = VerifyReport::default();
    let mut after: Option<(Uuid, i64)> = None;
    // (chain, last seq, last hash, already broken)
    let mut current: Option<(Uuid, i64, Vec<u8>, bool)> = None;
    loop {
        let mut q = Query::select();
        q.columns(COLUMNS)
            .from("audit_logs")
            .order_by("chain_id", Order::Asc)
            .order_by("seq", Order::Asc)
            .limit(BATCH);
        if let Some((chain, seq)) = after {
            q.and_where(
                Expr::tuple([Expr::col("chain_id"), Expr::col("seq")])
                    .gt(Expr::tuple([Expr::value(chain), Expr::value(seq)])),
            );
        }
        let mut tx = db.begin_admin(scope).await?;
        let rows: Vec<Stored> = tx.fetch_all(&q).await?;
        tx.commit().await?;
        let done = (rows.len() as u64) < BATCH;
        for row in rows {
            report.records += 1;
            let f = &row.fields;
            after = Some((f.chain, f.seq));
            let (expected_seq, expected_prev, broken) = match &current {
                Some((chain, seq, hash, broken)) if *chain == f.chain => {
                    (seq + 1, hash.clone(), *broken)
                }
                _ => {
                    report.chains += 1;
                    (1, GENESIS.to_vec(), false)
                }
            };
            let reason = if f.seq != expected_seq {
                Some("a record is missing or out of sequence")
            } else if row.prev_hash != expected_prev {
                Some("the link to the previous record does not match")
            } else if digest(&row.prev_hash, f).as_slice() != row.hash.as_slice() {
                Some("the record's content does not match its hash")
            } else {
                None
            };
            let now_broken = match reason {
                Some(reason) if !broken => {
                    report.breaks.push(ChainBreak {
                        chain_id: f.chain,
                        tenant_id: f.tenant_id.map(TenantId::from_uuid),
                        seq: f.seq,
                        reason,
                    });
                    true
                }
                _ => broken,
            };
            current = Some((f.chain, f.seq, row.hash, now_broken));
        }
        if done {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            chain: Uuid::now_v7(),
            seq: 1,
            tenant_id: None,
            id: Uuid::now_v7(),
            occurred_at: tenantry_core::now(),
            actor_type: "user".into(),
            actor_id: None,
            actor_user_id: None,
            action: "project.created".into(),
            target_type: "project".into(),
            target_id: Some("x".into()),
            outcome: "success".into(),
            request_id: None,
            ip: None,
            user_agent: None,
            summary: "{}".into(),
            project_id: None,
        }
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let f = fields();
        let base = digest(&GENESIS, &f);
        assert_ne!(base, digest(&[1; 32], &f));
        let mut g = f.clone();
        g.summary = "{\"a\":1}".into();
        assert_ne!(base, digest(&GENESIS, &g));
        let mut g = f.clone();
        g.target_id = None;
        assert_ne!(base, digest(&GENESIS, &g));
        let mut g = f.clone();
        g.target_id = Some(String::new());
        assert_ne!(base, digest(&GENESIS, &g), "absent and empty differ");
        let mut g = f.clone();
        g.seq = 2;
        assert_ne!(base, digest(&GENESIS, &g));
        let mut g = f.clone();
        g.project_id = Some(Uuid::now_v7());
        assert_ne!(base, digest(&GENESIS, &g), "the project is covered");
        assert_eq!(base, digest(&GENESIS, &f.clone()));
    }

    #[test]
    fn lock_keys_differ_per_chain() {
        assert_ne!(lock_key(Uuid::now_v7()), lock_key(Uuid::now_v7()));
        assert_eq!(
            lock_key(crate::PLATFORM_CHAIN),
            lock_key(crate::PLATFORM_CHAIN)
        );
    }
}
