//! Tenant settings: a typed schema over the tenant's `settings` column.
//!
//! The column stores only the keys a tenant set explicitly; reads fill the rest with
//! defaults, so a default that changes later reaches every tenant that never chose. A change
//! is a merge (RFC 7396 style): keys present are set, `null` resets a key to its default,
//! keys absent stay as they are. Values are checked field by field and every invalid or
//! unknown key is reported at once.

use sea_query::{Expr, ExprTrait, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tenantry_audit::Entry;
use tenantry_core::{Permission, TenantId, problem::Validator};
use tenantry_db::{Db, DbError, FromRow, Row, TenantScope, Tx};
use utoipa::ToSchema;

use crate::{TenancyError, model::TenantStatus, tenants::require};

mod values;

use values::{Refusal, domains, idle_minutes, is_valid, locale, nullable, retention_days};
pub use values::{parse_domain, parse_locale};

pub const EVENT_RETENTION_DAYS: (u64, u64) = (1, 3650);
pub const SESSION_IDLE_TIMEOUT_MINUTES: (u64, u64) = (5, 43_200);
pub const MAX_EMAIL_DOMAINS: usize = 50;

const KEYS: [&str; 4] = [
    "event_retention_days",
    "default_locale",
    "session_idle_timeout_minutes",
    "allowed_email_domains",
];

/// A tenant's settings, every key filled (explicit values, else defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Days edge events are kept before they are deleted (1–3650).
    #[schema(minimum = 1, maximum = 3650, example = 30)]
    pub event_retention_days: u32,
    /// Language of e-mails and user-interface defaults: a BCP 47 tag of language, optional
    /// script and region (`en`, `en-GB`, `pt-BR`, `zh-Hant-TW`, `es-419`).
    #[schema(example = "en-GB")]
    pub default_locale: String,
    /// Minutes without activity after which members' sessions should end (5–43200);
    /// `null`: no idle timeout.
    #[schema(minimum = 5, maximum = 43200, example = 480)]
    pub session_idle_timeout_minutes: Option<u32>,
    /// Domains that invitations to this tenant are limited to (lower-case, e.g.
    /// `example.com`; at most 50). Empty: any domain.
    #[schema(example = json!(["example.com"]))]
    pub allowed_email_domains: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            event_retention_days: 30,
            default_locale: "en".to_owned(),
            session_idle_timeout_minutes: None,
            allowed_email_domains: Vec::new(),
        }
    }
}

impl TenantSettings {
    /// Whether `allowed_email_domains` admits an account with `email`: anyone when the list
    /// is empty, else an address whose domain (after the last `@`, case-insensitive) is
    /// listed exactly — `example.com` does not admit `eu.example.com` — and never an account
    /// without an address.
    pub fn admits_email(&self, email: Option<&str>) -> bool {
        if self.allowed_email_domains.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.and_then(|e| e.rsplit_once('@')) else {
            return false;
        };
        self.allowed_email_domains
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(domain))
    }

    /// The settings a stored `settings` object describes. Keys that are unknown or invalid
    /// (written before the schema existed) are ignored: their defaults apply.
    pub fn from_stored(stored: &Value) -> Self {
        let mut settings = Self::default();
        let Some(map) = stored.as_object() else {
            return settings;
        };
        if let Some(Ok(days)) = map.get(KEYS[0]).map(retention_days) {
            settings.event_retention_days = days;
        }
        if let Some(Ok(locale)) = map.get(KEYS[1]).map(locale) {
            settings.default_locale = locale;
        }
        if let Some(Ok(minutes)) = map.get(KEYS[2]).map(idle_minutes) {
            settings.session_idle_timeout_minutes = minutes;
        }
        if let Some(Ok(domains)) = map.get(KEYS[3]).map(domains) {
            settings.allowed_email_domains = domains;
        }
        settings
    }
}

/// A validated change to settings: for each key, `None` leaves it, `Some(None)` resets it to
/// its default, `Some(Some(v))` sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, ToSchema)]
pub struct TenantSettingsPatch {
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub event_retention_days: Option<Option<u32>>,
    #[schema(value_type = Option<String>)]
    pub default_locale: Option<Option<String>>,
    #[schema(value_type = Option<u32>, minimum = 5, maximum = 43200)]
    pub session_idle_timeout_minutes: Option<Option<u32>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_email_domains: Option<Option<Vec<String>>>,
}

/// Joins a field name to its prefix (`settings.event_retention_days`).
fn field(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

impl TenantSettingsPatch {
    /// Parses a JSON object of settings; each invalid value or unknown key is recorded in `v`
    /// under `prefix` (e.g. `settings`, or empty for a body that is the settings object).
    /// `None` when anything was invalid.
    pub fn parse(value: &Value, prefix: &str, v: &mut Validator) -> Option<Self> {
        let Some(map) = value.as_object() else {
            v.error(
                if prefix.is_empty() {
                    "settings".to_owned()
                } else {
                    prefix.to_owned()
                },
                "must be a JSON object",
            );
            return None;
        };
        let mut patch = Self::default();
        let mut ok = true;
        for (key, value) in map {
            let result = match key.as_str() {
                "event_retention_days" => {
                    nullable(value, retention_days).map(|x| patch.event_retention_days = Some(x))
                }
                "default_locale" => nullable(value, locale).map(|x| patch.default_locale = Some(x)),
                "session_idle_timeout_minutes" => nullable(value, idle_minutes)
                    .map(|x| patch.session_idle_timeout_minutes = Some(x.flatten())),
                "allowed_email_domains" => {
                    nullable(value, domains).map(|x| patch.allowed_email_domains = Some(x))
                }
                _ => Err(Refusal::Field("is not a known setting")),
            };
            match result {
                Ok(()) => {}
                Err(Refusal::Field(message)) => {
                    ok = false;
                    v.error(field(prefix, key), message);
                }
                Err(Refusal::Item(index, message)) => {
                    ok = false;
                    v.error(format!("{}[{index}]", field(prefix, key)), message);
                }
            }
        }
        ok.then_some(patch)
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the patch to a stored settings object (keeping only valid known keys);
    /// returns the keys whose stored value changed.
    fn apply(&self, stored: &mut Map<String, Value>) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut set = |key: &'static str, value: Option<Value>| {
            let before = stored.get(key).cloned();
            match value {
                Some(value) => {
                    stored.insert(key.to_owned(), value);
                }
                None => {
                    stored.remove(key);
                }
            }
            if stored.get(key) != before.as_ref() {
                changed.push(key);
            }
        };
        if let Some(x) = &self.event_retention_days {
            set(KEYS[0], x.map(Value::from));
        }
        if let Some(x) = &self.default_locale {
            set(KEYS[1], x.clone().map(Value::from));
        }
        if let Some(x) = &self.session_idle_timeout_minutes {
            set(KEYS[2], x.map(Value::from));
        }
        if let Some(x) = &self.allowed_email_domains {
            set(KEYS[3], x.clone().map(Value::from));
        }
        changed
    }
}

/// The stored `settings` object of a tenant.
struct Stored(Value);

impl FromRow for Stored {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        row.json().map(Self)
    }
}

/// Applies `patch` to the scope's tenant inside `tx` and audits the change (only when a key
/// changed). Returns the changed keys; `NotFound` for a deleted tenant.
pub(crate) async fn apply_in(
    tx: &mut Tx,
    scope: &TenantScope,
    patch: &TenantSettingsPatch,
) -> Result<Vec<&'static str>, TenancyError> {
    let id: TenantId = scope.tenant_id();
    let mut select = Query::select();
    select
        .column("settings")
        .from("tenants")
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("status").ne(TenantStatus::Deleted.as_str()));
    // Read-modify-write: concurrent changes of different keys must not lose each other
    // (SQLite serialises writers already).
    tx.for_update(&mut select);
    let Stored(raw) = tx
        .fetch_optional(&select)
        .await?
        .ok_or(TenancyError::NotFound)?;
    // Only valid, known keys survive a write: anything stored before the schema is dropped.
    let mut stored: Map<String, Value> = raw
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(key, value)| is_valid(key, value))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let changed = patch.apply(&mut stored);
    let stored = Value::Object(stored);
    if stored != raw {
        tx.execute(
            Query::update()
                .table("tenants")
                .value("settings", stored)
                .value("updated_at", tx.now())
                .and_where(Expr::col("id").eq(id)),
        )
        .await?;
    }
    if !changed.is_empty() {
        let tenant = crate::tenants::fetch(tx, id)
            .await?
            .ok_or(TenancyError::NotFound)?;
        tenantry_events::record_change(
            tx,
            scope,
            Entry::new("tenant.settings_updated", "tenant", id)
                .with_summary(serde_json::json!({ "changed": changed })),
            tenantry_events::Event::updated(
                tenantry_events::EventType::TenantUpdated,
                crate::tenants::subject(id),
                &tenant,
                ["settings"],
            ),
        )
        .await?;
    }
    Ok(changed)
}

/// Why an address is refused: the tenant's `allowed_email_domains` does not list its domain.
pub(crate) const NOT_ADMITTED: &str = "is not at one of the tenant's allowed_email_domains";

/// The settings of the scope's tenant, read inside `tx` (defaults filled; `NotFound` for a
/// deleted tenant).
pub(crate) async fn settings_in(
    tx: &mut Tx,
    scope: &TenantScope,
) -> Result<TenantSettings, TenancyError> {
    let Stored(raw) = tx
        .fetch_optional(
            Query::select()
                .column("settings")
                .from("tenants")
                .and_where(Expr::col("id").eq(scope.tenant_id()))
                .and_where(Expr::col("status").ne(TenantStatus::Deleted.as_str())),
        )
        .await?
        .ok_or(TenancyError::NotFound)?;
    Ok(TenantSettings::from_stored(&raw))
}

/// The tenant's settings with defaults filled (`tenant:read`).
pub async fn get_settings(db: &Db, scope: &TenantScope) -> Result<TenantSettings, TenancyError> {
    require(scope, Permission::TenantRead)?;
    let mut tx = db.begin_tenant_read(scope).await?;
    let settings = settings_in(&mut tx, scope).await?;
    tx.commit().await?;
    Ok(settings)
}

/// Changes settings (`tenant:update`); answers the settings after the change.
pub async fn update_settings(
    db: &Db,
    scope: &TenantScope,
    patch: &TenantSettingsPatch,
) -> Result<TenantSettings, TenancyError> {
    require(scope, Permission::TenantUpdate)?;
    let mut tx = db.begin_tenant(scope).await?;
    apply_in(&mut tx, scope, patch).await?;
    let Stored(raw) = tx
        .fetch_one(
            Query::select()
                .column("settings")
                .from("tenants")
                .and_where(Expr::col("id").eq(scope.tenant_id())),
        )
        .await?;
    tx.commit().await?;
    Ok(TenantSettings::from_stored(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<TenantSettingsPatch, Vec<String>> {
        let mut v = Validator::new();
        let patch = TenantSettingsPatch::parse(&value, "settings", &mut v);
        match v.finish() {
            Ok(()) => Ok(patch.unwrap()),
            Err(p) => Err(p.errors.iter().map(|e| e.field.to_string()).collect()),
        }
    }

    #[test]
    fn patches_report_every_bad_key() {
        let errors = parse(json!({
            "event_retention_days": 0,
            "default_locale": "english",
            "session_idle_timeout_minutes": 2.5,
            "allowed_email_domains": ["ok.com", "bad"],
            "theme": "dark",
        }))
        .unwrap_err();
        let mut errors = errors;
        errors.sort();
        assert_eq!(
            errors,
            [
                "settings.allowed_email_domains[1]",
                "settings.default_locale",
                "settings.event_retention_days",
                "settings.session_idle_timeout_minutes",
                "settings.theme",
            ]
        );
        assert!(parse(json!([1])).is_err());
        assert!(parse(json!({"event_retention_days": 3651})).is_err());
        assert!(parse(json!({"event_retention_days": "30"})).is_err());
        assert!(parse(json!({"allowed_email_domains": vec!["a.com"; 51]})).is_err());
    }

    #[test]
    fn merge_sets_resets_and_reports_changes() {
        let mut stored = Map::new();
        let patch =
            parse(json!({"event_retention_days": 90, "allowed_email_domains": ["A.com", "a.com"]}))
                .unwrap();
        assert_eq!(
            patch.apply(&mut stored),
            ["event_retention_days", "allowed_email_domains"]
        );
        let settings = TenantSettings::from_stored(&Value::Object(stored.clone()));
        assert_eq!(settings.event_retention_days, 90);
        assert_eq!(settings.allowed_email_domains, ["a.com"]);
        assert_eq!(settings.default_locale, "en");
        // The same values again change nothing; null resets.
        assert!(patch.apply(&mut stored).is_empty());
        let reset = parse(json!({"event_retention_days": null, "default_locale": null})).unwrap();
        assert_eq!(reset.apply(&mut stored), ["event_retention_days"]);
        assert_eq!(
            TenantSettings::from_stored(&Value::Object(stored)).event_retention_days,
            30
        );
    }

    #[test]
    fn stored_junk_falls_back_to_defaults() {
        let settings = TenantSettings::from_stored(&json!({
            "event_retention_days": -4, "default_locale": 7, "theme": "dark",
            "session_idle_timeout_minutes": 60,
        }));
        assert_eq!(
            settings,
            TenantSettings {
                session_idle_timeout_minutes: Some(60),
                ..TenantSettings::default()
            }
        );
        assert_eq!(
            TenantSettings::from_stored(&json!("x")),
            TenantSettings::default()
        );
    }

    #[test]
    fn an_empty_list_admits_everyone_and_a_list_only_its_domains() {
        let open = TenantSettings::default();
        assert!(open.admits_email(Some("a@anywhere.test")));
        assert!(open.admits_email(None), "accounts without an address too");
        let closed = TenantSettings {
            allowed_email_domains: vec!["acme.test".into()],
            ..TenantSettings::default()
        };
        assert!(closed.admits_email(Some("ann@ACME.test")));
        assert!(closed.admits_email(Some("odd@name@acme.test")));
        assert!(!closed.admits_email(Some("ann@eu.acme.test")));
        assert!(!closed.admits_email(Some("ann@acme.test.evil")));
        assert!(!closed.admits_email(Some("acme.test")));
        assert!(!closed.admits_email(None));
    }
}
