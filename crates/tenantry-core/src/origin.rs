//! Where a request came from, recorded with sessions and in the audit trail.

/// The request id, peer address and user agent of the request that caused a change.
/// Empty for work that no request caused (housekeeping, the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    /// Work no request caused.
    pub const NONE: Origin = Origin {
        request_id: None,
        ip: None,
        user_agent: None,
    };
}
