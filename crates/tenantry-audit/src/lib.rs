//! The audit trail: who did what, from where, with what outcome.
//!
//! A record is written by the service that makes the change, in the same transaction
//! ([`record`] for a tenant's changes, [`record_in`] for platform records and for
//! administrators acting on a tenant), so a change without its record — or a record of a
//! change that rolled back — cannot exist. Records are append-only and hash-chained per
//! tenant: each stores the SHA-256 of its predecessor's hash and its own fields, so editing,
//! deleting or reordering a record breaks every later link ([`verify`]).

mod chain;
mod erase;
pub mod http;
mod list;
pub mod migrations;

use serde_json::Value;
use tenantry_core::{ApiKeyId, Origin, ProjectId, TenantId, UserId};
use tenantry_db::{Actor, DbError, TenantScope, Tx};

pub use chain::{ChainBreak, VerifyReport, verify};
pub use erase::erase_tenant_trail;
pub use list::{
    ActionFilter, ActorView, AdminAuditFilter, AuditError, AuditFilter, AuditRecord, ChainKind,
    TargetView, list_admin, list_tenant,
};
pub use migrations::PLATFORM_CHAIN;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditActor {
    User(UserId),
    ApiKey {
        key_id: ApiKeyId,
        owner: UserId,
    },
    /// Housekeeping, the command line.
    System,
    /// An unauthenticated request (a failed sign-in, a password-reset request).
    Anonymous,
}

impl AuditActor {
    pub fn kind(self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::ApiKey { .. } => "api_key",
            Self::System => "system",
            Self::Anonymous => "anonymous",
        }
    }

    /// The user or key id.
    pub fn id(self) -> Option<uuid::Uuid> {
        match self {
            Self::User(id) => Some(id.as_uuid()),
            Self::ApiKey { key_id, .. } => Some(key_id.as_uuid()),
            Self::System | Self::Anonymous => None,
        }
    }

    /// The person behind the action (the key's creator for an API key).
    pub fn user_id(self) -> Option<UserId> {
        match self {
            Self::User(id) | Self::ApiKey { owner: id, .. } => Some(id),
            Self::System | Self::Anonymous => None,
        }
    }
}

impl From<Actor> for AuditActor {
    fn from(actor: Actor) -> Self {
        match actor {
            Actor::User(id) => Self::User(id),
            Actor::ApiKey { key_id, owner } => Self::ApiKey { key_id, owner },
        }
    }
}

/// How the attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused for a reason of the request (bad credentials, a locked account).
    Failure,
    /// Refused for lack of permission.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One auditable action. `action` is `<target_type>.<verb>` in the past tense
/// (`project.created`, `member.role_changed`, `api_key.revoked`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    /// What changed. Redacted before it is stored (see [`redact`]).
    pub summary: Value,
    /// The project the target belongs to (a project, a document in it, a project role): the
    /// tenant's list shows the record only to callers who may read that project's target.
    pub project_id: Option<ProjectId>,
}

impl Entry {
    /// A successful action on `target_type` `target_id`.
    pub fn new(action: &'static str, target_type: &'static str, target_id: impl ToString) -> Self {
        Self {
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            outcome: Outcome::Success,
            summary: Value::Object(Default::default()),
            project_id: None,
        }
    }

    /// The record concerns a resource of `project` (`None`: outside projects).
    pub fn in_project(mut self, project: Option<ProjectId>) -> Self {
        self.project_id = project;
        self
    }

    pub fn with_summary(mut self, summary: Value) -> Self {
        self.summary = summary;
        self
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// Which chain a record joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// A tenant's changes; listed by `GET /tenants/{id}/audit-logs`.
    Tenant(TenantId),
    /// One account's records (sign-ins, security changes, administrators acting on it).
    User(UserId),
    /// Neither.
    Platform,
}

impl Chain {
    pub(crate) fn id(self) -> uuid::Uuid {
        match self {
            Self::Tenant(id) => id.as_uuid(),
            Self::User(id) => id.as_uuid(),
            Self::Platform => PLATFORM_CHAIN,
        }
    }

    pub(crate) fn tenant(self) -> Option<TenantId> {
        match self {
            Self::Tenant(id) => Some(id),
            Self::User(_) | Self::Platform => None,
        }
    }
}

/// Appends `entry` to the scope's tenant chain inside `tx`, as the scope's actor and origin.
pub async fn record(tx: &mut Tx, scope: &TenantScope, entry: Entry) -> Result<(), DbError> {
    record_in(
        tx,
        Chain::Tenant(scope.tenant_id()),
        scope.actor().into(),
        scope.origin(),
        entry,
    )
    .await
}

/// Appends `entry` to `chain` inside `tx`.
///
/// On PostgreSQL `tx` must be able to write that chain: for a tenant chain a tenant
/// transaction of that tenant or an administration transaction; for the others any
/// transaction with no tenant set.
pub async fn record_in(
    tx: &mut Tx,
    chain: Chain,
    actor: AuditActor,
    origin: &Origin,
    entry: Entry,
) -> Result<(), DbError> {
    chain::append(tx, chain, actor, origin, entry).await
}

/// Keys whose values never reach the audit trail, matched case-insensitively as substrings.
const SECRET_KEYS: [&str; 6] = ["password", "secret", "token", "key", "code", "hash"];

/// Replaces the value of every key that names a secret (at any depth) with `"[redacted]"`.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                    *value = Value::String("[redacted]".to_owned());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({
            "name": "ci",
            "new_password": "hunter22",
            "nested": {"API_KEY": "tnt_x", "items": [{"token": "t", "ok": 1}]},
        });
        redact(&mut v);
        assert_eq!(v["name"], "ci");
        assert_eq!(v["new_password"], "[redacted]");
        assert_eq!(v["nested"]["API_KEY"], "[redacted]");
        assert_eq!(v["nested"]["items"][0]["token"], "[redacted]");
        assert_eq!(v["nested"]["items"][0]["ok"], 1);
    }
}
