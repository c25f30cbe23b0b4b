//! Tenantry's shared vocabulary: identifiers, parsed value types, the permission catalog,
//! the one `Problem` error type every layer maps into, pagination, and the conventions
//! every configuration section follows (each context defines its own section).
//!
//! Nothing here touches I/O; every other crate depends on this one.

pub mod clock;
pub mod config;
pub mod crypto;
pub mod id;
pub mod origin;
pub mod page;
pub mod permission;
pub mod problem;
pub mod text;
pub mod time;
pub mod values;

pub use clock::{Clock, ManualClock};
pub use id::{
    ApiKeyId, AuditId, DocumentId, FileId, InvitationId, ProjectId, RoleId, SessionId, TenantId,
    UserId,
};
pub use origin::Origin;
pub use page::{Cursor, Page, PageRequest};
pub use permission::{Permission, SystemRole};
pub use problem::{FieldError, Problem};
pub use values::{
    Description, Email, JsonObject, Password, PersonName, ResourceName, RoleName, Slug,
};

/// The system time, truncated to microseconds so values round-trip through both databases
/// unchanged (PostgreSQL stores microseconds). Services read [`Clock::now`] instead (through
/// `tenantry_db::Db::now`), so tests can advance it.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
