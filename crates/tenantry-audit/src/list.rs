//! Reading the trail: a tenant's records (`audit:read`) and, for platform administrators,
//! every chain's.

use chrono::{DateTime, Utc};
use sea_query::{Condition, Expr, ExprTrait, LikeExpr, Order, Query, SelectStatement};
use serde::Serialize;
use serde_json::value::RawValue;
use tenantry_core::{Page, PageRequest, Permission, Problem, TenantId, UserId, values::Invalid};
use tenantry_db::{AdminScope, Db, DbError, ProjectFilter, TenantScope};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    Outcome, PLATFORM_CHAIN,
    chain::{COLUMNS, Stored},
};

/// Why a read of the trail failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("requires permission {0}")]
    Forbidden(Permission),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<AuditError> for Problem {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Forbidden(permission) => {
                Problem::forbidden().with_detail(format!("requires permission {permission}"))
            }
            AuditError::Db(e) => e.into(),
        }
    }
}

/// Who acted, as a record shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActorView {
    /// `user`, `api_key`, `system` (housekeeping, the command line) or `anonymous` (a request
    /// without valid credentials, e.g. a failed sign-in).
    #[serde(rename = "type")]
    #[schema(example = "user")]
    pub kind: String,
    /// The user's or API key's id.
    pub id: Option<Uuid>,
    /// The person behind the action: the user, or the member who created the API key.
    pub user_id: Option<Uuid>,
}

/// What the action was done to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetView {
    #[serde(rename = "type")]
    #[schema(example = "project")]
    pub kind: String,
    pub id: Option<String>,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    /// The tenant the record belongs to; `null` for account and platform records.
    pub tenant_id: Option<Uuid>,
    /// The hash chain it is linked into: the tenant's id, the user's id for account records,
    /// or the nil UUID for the platform chain.
    pub chain_id: Uuid,
    /// Position in its chain (1, 2, …).
    pub seq: i64,
    #[serde(serialize_with = "tenantry_core::time::serialize")]
    pub occurred_at: DateTime<Utc>,
    pub actor: ActorView,
    /// `<target type>.<verb>`, e.g. `project.created`, `user.login_failed`.
    #[schema(example = "project.created")]
    pub action: String,
    pub target: TargetView,
    /// `success`, `failure` or `denied`.
    #[schema(example = "success")]
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What changed; values of keys naming secrets (passwords, tokens, keys, codes) are
    /// replaced by `"[redacted]"` before they are stored.
    #[schema(value_type = Object)]
    pub summary: Box<RawValue>,
    /// SHA-256 of this record and its predecessor's hash (hex).
    pub hash: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl From<Stored> for AuditRecord {
    fn from(row: Stored) -> Self {
        let f = row.fields;
        // Stored by serde_json, so valid JSON; a hand-edited row is shown as a string
        // (`verify` reports it).
        let summary = RawValue::from_string(f.summary.clone()).unwrap_or_else(|_| {
            serde_json::value::to_raw_value(&f.summary)
                .unwrap_or_else(|_| RawValue::NULL.to_owned())
        });
        Self {
            id: f.id,
            tenant_id: f.tenant_id,
            chain_id: f.chain,
            seq: f.seq,
            occurred_at: f.occurred_at,
            actor: ActorView {
                kind: f.actor_type,
                id: f.actor_id,
                user_id: f.actor_user_id,
            },
            action: f.action,
            target: TargetView {
                kind: f.target_type,
                id: f.target_id,
            },
            outcome: f.outcome,
            request_id: f.request_id,
            ip: f.ip,
            user_agent: f.user_agent,
            summary,
            hash: hex(&row.hash),
        }
    }
}

/// `?action=`: one action, or every action with a prefix (`project.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionFilter {
    Exact(String),
    /// The part before `.*`, e.g. `project` matches `project.created` and `project.deleted`.
    Prefix(String),
}

impl ActionFilter {
    /// `name` or `prefix.*`, made of lower-case letters, digits, `_` and `.`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let (name, prefix) = match raw.strip_suffix(".*") {
            Some(prefix) => (prefix, true),
            None => (raw, false),
        };
        let valid = !name.is_empty()
            && name.len() <= 100
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !valid {
            return Err(Invalid(
                "must be an action name such as project.created, or a prefix such as project.*",
            ));
        }
        Ok(if prefix {
            Self::Prefix(name.to_owned())
        } else {
            Self::Exact(name.to_owned())
        })
    }
}

impl Outcome {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "denied" => Ok(Self::Denied),
            _ => Err(Invalid("must be success, failure or denied")),
        }
    }
}

/// Which records a list returns (all present conditions hold).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<ActionFilter>,
    /// The user or API key that acted; a user's id also matches the actions of the API keys
    /// they created.
    pub actor_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Occurred at or after.
    pub from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub to: Option<DateTime<Utc>>,
}

/// The kinds of chain (`?chain=` of the administrators' list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    Tenant,
    User,
    Platform,
}

impl ChainKind {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "tenant" => Ok(Self::Tenant),
            "user" => Ok(Self::User),
            "platform" => Ok(Self::Platform),
            _ => Err(Invalid("must be tenant, user or platform")),
        }
    }
}

/// The administrators' filters: [`AuditFilter`] and which chains to read.
#[derive(Debug, Clone, Default)]
pub struct AdminAuditFilter {
    pub common: AuditFilter,
    /// One tenant's records.
    pub tenant_id: Option<TenantId>,
    /// One account's records (its chain: sign-ins, security changes).
    pub user_id: Option<UserId>,
    pub chain: Option<ChainKind>,
}

/// `%`, `_` and the escape character itself are literal in the prefix.
fn like_prefix(prefix: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(prefix.len() + 3);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(".%");
    LikeExpr::new(pattern).escape('\\')
}

fn apply(q: &mut SelectStatement, f: &AuditFilter) {
    match &f.action {
        Some(ActionFilter::Exact(action)) => {
            q.and_where(Expr::col("action").eq(action.as_str()));
        }
        Some(ActionFilter::Prefix(prefix)) => {
            q.and_where(Expr::col("action").like(like_prefix(prefix)));
        }
        None => {}
    }
    if let Some(actor) = f.actor_id {
        q.and_where(
            Expr::col("actor_id")
                .eq(actor)
                .or(Expr::col("actor_user_id").eq(actor)),
        );
    }
    if let Some(kind) = &f.target_type {
        q.and_where(Expr::col("target_type").eq(kind.as_str()));
    }
    if let Some(id) = &f.target_id {
        q.and_where(Expr::col("target_id").eq(id.as_str()));
    }
    if let Some(outcome) = f.outcome {
        q.and_where(Expr::col("outcome").eq(outcome.as_str()));
    }
    if let Some(from) = f.from {
        q.and_where(Expr::col("occurred_at").gte(from));
    }
    if let Some(to) = f.to {
        q.and_where(Expr::col("occurred_at").lt(to));
    }
}

/// The page's query: newest first (ids are UUIDv7), keyset after the cursor.
fn page_query(filter: &AuditFilter, page: &PageRequest) -> SelectStatement {
    let mut q = Query::select();
    q.columns(COLUMNS)
        .from("audit_logs")
        .order_by("id", Order::Desc)
        .limit(page.fetch_limit());
    if let Some(after) = page.after {
        q.and_where(Expr::col("id").lt(after.0));
    }
    apply(&mut q, filter);
    q
}

fn to_page(rows: Vec<Stored>, page: &PageRequest) -> Page<AuditRecord> {
    Page::from_rows(rows, page, |r| r.fields.id).map(AuditRecord::from)
}

/// Target types whose records describe a project's resources, with the permission that reads
/// such a target. A reader sees these records only where they hold that permission: in the
/// record's project (`project_id`), or tenant-wide for records outside projects.
const PROJECT_TARGETS: [(&str, Permission); 3] = [
    ("project", Permission::ProjectsRead),
    ("project_member", Permission::ProjectsRead),
    ("document", Permission::DocumentsRead),
];

/// Confines `q` to the records whose target the caller may read (see [`PROJECT_TARGETS`]),
/// in SQL so that pages stay full and cursors stay right. Adds nothing for a caller who
/// reads every project.
fn confine(q: &mut SelectStatement, scope: &TenantScope) {
    let project = || Expr::col("project_id");
    let mut guarded = Vec::new();
    let mut visible = Condition::any();
    for (kind, permission) in PROJECT_TARGETS {
        let outside = scope.can(permission);
        let inside = scope.projects().filter(permission);
        if outside && inside == ProjectFilter::All {
            continue;
        }
        guarded.push(kind);
        let mut allowed = Vec::new();
        if outside {
            allowed.push(Condition::all().add(project().is_null()));
        }
        match inside {
            ProjectFilter::All => allowed.push(Condition::all().add(project().is_not_null())),
            ProjectFilter::AllExcept(ids) => allowed.push(
                Condition::all()
                    .add(project().is_not_null())
                    .add(project().is_not_in(ids)),
            ),
            ProjectFilter::Only(ids) => allowed.push(Condition::all().add(project().is_in(ids))),
            ProjectFilter::None => {}
        }
        if allowed.is_empty() {
            continue;
        }
        let allowed = allowed.into_iter().fold(Condition::any(), Condition::add);
        visible = visible.add(
            Condition::all()
                .add(Expr::col("target_type").eq(kind))
                .add(allowed),
        );
    }
    if !guarded.is_empty() {
        q.cond_where(visible.add(Expr::col("target_type").is_not_in(guarded)));
    }
}

/// The scope's tenant's records, newest first (`audit:read`), without those about projects
/// and documents the caller cannot read.
pub async fn list_tenant(
    db: &Db,
    scope: &TenantScope,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditRecord>, AuditError> {
    if !scope.can(Permission::AuditRead) {
        return Err(AuditError::Forbidden(Permission::AuditRead));
    }
    let mut q = page_query(filter, page);
    q.and_where(Expr::col("tenant_id").eq(scope.tenant_id()));
    confine(&mut q, scope);
    let mut tx = db.begin_tenant_read(scope).await?;
    let rows: Vec<Stored> = tx.fetch_all(&q).await?;
    tx.commit().await?;
    Ok(to_page(rows, page))
}

/// Every chain's records, newest first, for platform administrators.
pub async fn list_admin(
    db: &Db,
    scope: &AdminScope,
    filter: &AdminAuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditRecord>, AuditError> {
    let mut q = page_query(&filter.common, page);
    if let Some(tenant) = filter.tenant_id {
        q.and_where(Expr::col("tenant_id").eq(tenant));
    }
    if let Some(user) = filter.user_id {
        q.and_where(Expr::col("chain_id").eq(user))
            .and_where(Expr::col("tenant_id").is_null());
    }
    match filter.chain {
        Some(ChainKind::Tenant) => {
            q.and_where(Expr::col("tenant_id").is_not_null());
        }
        Some(ChainKind::User) => {
            q.and_where(Expr::col("tenant_id").is_null())
                .and_where(Expr::col("chain_id").ne(PLATFORM_CHAIN));
        }
        Some(ChainKind::Platform) => {
            q.and_where(Expr::col("chain_id").eq(PLATFORM_CHAIN));
        }
        None => {}
    }
    let mut tx = db.begin_admin(scope).await?;
    let rows: Vec<Stored> = tx.fetch_all(&q).await?;
    tx.commit().await?;
    Ok(to_page(rows, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_filters_parse() {
        assert_eq!(
            ActionFilter::parse("project.created"),
            Ok(ActionFilter::Exact("project.created".into()))
        );
        assert_eq!(
            ActionFilter::parse("user.*"),
            Ok(ActionFilter::Prefix("user".into()))
        );
        for bad in ["", ".*", "Project.created", "a b", "x%", "project.*.*"] {
            assert!(ActionFilter::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_escape_like_wildcards() {
        let (sql, values) = Query::select()
            .column("id")
            .from("audit_logs")
            .and_where(Expr::col("action").like(like_prefix("api_key")))
            .build(sea_query::SqliteQueryBuilder);
        assert!(sql.contains("ESCAPE"), "{sql}");
        assert_eq!(
            values.0[0],
            sea_query::Value::String(Some("api\\_key.%".into()))
        );
    }

    #[test]
    fn hashes_print_as_hex() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
