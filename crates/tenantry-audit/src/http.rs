//! The audit trail's HTTP surface: `GET /api/v1/tenants/{tenant_id}/audit-logs` and
//! `GET /api/v1/admin/audit-logs`.

use axum::extract::{FromRef, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenantry_core::{
    Page, PageRequest, Problem, TenantId, UserId, page::PageParams, problem::Validator,
    values::Invalid,
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use tenantry_db::Db;
use tenantry_http::{AdminCtx, Gate, Json, Query, TenantCtx};

use crate::{ActionFilter, AdminAuditFilter, AuditFilter, AuditRecord, ChainKind, Outcome};

/// The audit trail's routes, for any state that authorizes ([`Gate`]) and holds the database.
pub fn router<S: Gate>() -> OpenApiRouter<S>
where
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_tenant_audit_logs))
        .routes(routes!(list_admin_audit_logs))
}

/// Filters of the tenant's audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// An action (`project.created`), or every action with a prefix (`project.*`).
    pub action: Option<String>,
    /// The user or API key that acted; a user's id also finds the actions of the API keys
    /// they created.
    #[param(format = Uuid)]
    pub actor_id: Option<String>,
    /// e.g. `project`, `member`, `tenant`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// RFC 3339; records at or after this instant.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; records before this instant.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters of the platform-wide audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminAuditListParams {
    /// One tenant's records.
    #[param(format = Uuid)]
    pub tenant_id: Option<String>,
    /// One account's records (sign-ins, sessions, password and MFA changes).
    #[param(format = Uuid)]
    pub user_id: Option<String>,
    /// `tenant`, `user` (account records) or `platform` (neither).
    pub chain: Option<String>,
    /// An action (`user.login_failed`), or every action with a prefix (`user.*`).
    pub action: Option<String>,
    /// The user or API key that acted (a user's id also finds their API keys' actions).
    #[param(format = Uuid)]
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// RFC 3339; records at or after this instant.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; records before this instant.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Items per page (1–200, default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn uuid(raw: &str) -> Result<Uuid, Invalid> {
    raw.trim().parse().map_err(|_| Invalid("must be a UUID"))
}

fn time(raw: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Invalid("must be an RFC 3339 timestamp, e.g. 2026-01-31T00:00:00Z"))
}

fn text(raw: &str) -> Result<String, Invalid> {
    if raw.is_empty() || raw.len() > 200 {
        Err(Invalid("must be 1 to 200 characters"))
    } else {
        Ok(raw.to_owned())
    }
}

/// The filters both lists share, as they arrive in the query string.
struct Common<'a> {
    action: Option<&'a str>,
    actor_id: Option<&'a str>,
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    outcome: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
}

impl Common<'_> {
    fn parse(self, v: &mut Validator) -> AuditFilter {
        let filter = AuditFilter {
            action: self
                .action
                .and_then(|a| v.field("action", ActionFilter::parse(a))),
            actor_id: self.actor_id.and_then(|a| v.field("actor_id", uuid(a))),
            target_type: self
                .target_type
                .and_then(|t| v.field("target_type", text(t))),
            target_id: self.target_id.and_then(|t| v.field("target_id", text(t))),
            outcome: self
                .outcome
                .and_then(|o| v.field("outcome", Outcome::parse(o))),
            from: self.from.and_then(|t| v.field("from", time(t))),
            to: self.to.and_then(|t| v.field("to", time(t))),
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            v.error("to", "must be later than from");
        }
        filter
    }
}

fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, Problem> {
    PageParams { limit, cursor }.try_into()
}

impl AuditListParams {
    fn parse(self) -> Result<(AuditFilter, PageRequest), Problem> {
        let mut v = Validator::new();
        let filter = Common {
            action: self.action.as_deref(),
            actor_id: self.actor_id.as_deref(),
            target_type: self.target_type.as_deref(),
            target_id: self.target_id.as_deref(),
            outcome: self.outcome.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
        }
        .parse(&mut v);
        v.finish()?;
        Ok((filter, page(self.limit, self.cursor)?))
    }
}

impl AdminAuditListParams {
    fn parse(self) -> Result<(AdminAuditFilter, PageRequest), Problem> {
        let mut v = Validator::new();
        let common = Common {
            action: self.action.as_deref(),
            actor_id: self.actor_id.as_deref(),
            target_type: self.target_type.as_deref(),
            target_id: self.target_id.as_deref(),
            outcome: self.outcome.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
        }
        .parse(&mut v);
        let filter = AdminAuditFilter {
            common,
            tenant_id: self
                .tenant_id
                .as_deref()
                .and_then(|t| v.field("tenant_id", uuid(t)))
                .map(TenantId::from_uuid),
            user_id: self
                .user_id
                .as_deref()
                .and_then(|u| v.field("user_id", uuid(u)))
                .map(UserId::from_uuid),
            chain: self
                .chain
                .as_deref()
                .and_then(|c| v.field("chain", ChainKind::parse(c))),
        };
        v.finish()?;
        Ok((filter, page(self.limit, self.cursor)?))
    }
}

/// The tenant's audit trail, newest first (`audit:read`): every change made in the tenant,
/// with who made it, from where, and a redacted summary.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/audit-logs", tag = "audit",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), AuditListParams),
    responses((status = 200, body = Page<AuditRecord>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, description = "Invalid filter, limit or cursor", body = Problem)))]
pub async fn list_tenant_audit_logs(
    State(db): State<Db>,
    ctx: TenantCtx,
    Query(params): Query<AuditListParams>,
) -> Result<Json<Page<AuditRecord>>, Problem> {
    let (filter, page) = params.parse()?;
    Ok(Json(
        crate::list_tenant(&db, &ctx.scope, &filter, &page).await?,
    ))
}

/// Every audit record of the platform — all tenants, account records (sign-ins, security
/// changes) and platform records — newest first (platform administrators).
#[utoipa::path(get, path = "/api/v1/admin/audit-logs", tag = "audit",
    security(("bearer" = [])),
    params(AdminAuditListParams),
    responses((status = 200, body = Page<AuditRecord>), (status = 401, body = Problem),
        (status = 403, description = "Not a platform administrator", body = Problem),
        (status = 422, description = "Invalid filter, limit or cursor", body = Problem)))]
pub async fn list_admin_audit_logs(
    State(db): State<Db>,
    ctx: AdminCtx,
    Query(params): Query<AdminAuditListParams>,
) -> Result<Json<Page<AuditRecord>>, Problem> {
    let (filter, page) = params.parse()?;
    Ok(Json(
        crate::list_admin(&db, &ctx.scope, &filter, &page).await?,
    ))
}
