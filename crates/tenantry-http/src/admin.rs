//! What the platform-administration routes of every context share: the optional body that
//! gives an action's reason, and the paging and search of their lists. Identity's user
//! administration and tenancy's tenant administration answer alike because they use these.

use serde::Deserialize;
use tenantry_core::{PageRequest, Problem, page::PageParams, problem::Validator};
use utoipa::ToSchema;

/// Longest `q` accepted by the administration lists (tenants, users).
pub const MAX_QUERY_CHARS: usize = 100;

/// Longest reason an administrator may give.
const MAX_REASON_CHARS: usize = 500;

/// Why an administrator acts; kept in the audit trail.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAction {
    /// At most 500 characters.
    #[schema(example = "unpaid invoices since March")]
    pub reason: Option<String>,
}

impl AdminAction {
    /// The trimmed reason of an optional body; blank is none, too long is 422 on `reason`.
    pub fn reason(body: Option<Self>) -> Result<Option<String>, Problem> {
        let reason = body
            .and_then(|b| b.reason)
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(Problem::validation_failed()
                .with_detail("The request has invalid fields.")
                .with_field("reason", "must be at most 500 characters"));
        }
        Ok(reason)
    }
}

/// The page of an administration list and its trimmed search `q` (blank is none); a `q`
/// longer than [`MAX_QUERY_CHARS`] is an error on `q` in `v`. A bad `limit` or `cursor`
/// answers 422 at once.
pub fn page_and_query(
    limit: Option<u32>,
    cursor: Option<String>,
    q: Option<String>,
    v: &mut Validator,
) -> Result<(PageRequest, Option<String>), Problem> {
    let page = PageRequest::try_from(PageParams { limit, cursor })?;
    let q = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    if q.as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        v.error("q", "must be at most 100 characters");
    }
    Ok((page, q))
}
