//! Typed path ids: no handler parses a raw path segment.

use std::str::FromStr;

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::request::Parts,
};
use tenantry_core::Problem;

/// The ids at the end of the request path, parsed: `Ids<ProjectId>` is the last segment
/// parameter, `Ids<(ProjectId, UserId)>` the last two, in path order. The tenant id, always
/// first, is the business of [`TenantCtx`](crate::TenantCtx). A malformed id names no object,
/// so it answers 404 exactly like an unknown one.
#[derive(Debug, Clone, Copy)]
pub struct Ids<T>(pub T);

/// What [`Ids`] parses: one id, or a pair of them.
pub trait PathIds: Sized {
    /// How many trailing path parameters this takes.
    const COUNT: usize;
    /// Parses exactly `COUNT` raw values, in path order.
    fn parse(raw: &[&str]) -> Option<Self>;
}

/// A value one path parameter holds: a typed id, or an opaque token (`String`).
pub trait PathId: FromStr {}

macro_rules! path_ids {
    ($($id:ty),* $(,)?) => {$(impl PathId for $id {})*};
}

path_ids!(
    tenantry_core::TenantId,
    tenantry_core::UserId,
    tenantry_core::SessionId,
    tenantry_core::ProjectId,
    tenantry_core::RoleId,
    tenantry_core::ApiKeyId,
    tenantry_core::InvitationId,
    tenantry_core::AuditId,
    tenantry_core::DocumentId,
    tenantry_core::FileId,
    String,
);

impl<T: PathId> PathIds for T {
    const COUNT: usize = 1;
    fn parse(raw: &[&str]) -> Option<Self> {
        raw.first()?.parse().ok()
    }
}

impl<A: PathId, B: PathId> PathIds for (A, B) {
    const COUNT: usize = 2;
    fn parse(raw: &[&str]) -> Option<Self> {
        Some((raw.first()?.parse().ok()?, raw.get(1)?.parse().ok()?))
    }
}

impl<S, T: PathIds> FromRequestParts<S> for Ids<T>
where
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found())?;
        let values: Vec<&str> = params.iter().map(|(_, value)| value).collect();
        let from = values
            .len()
            .checked_sub(T::COUNT)
            .ok_or_else(Problem::not_found)?;
        T::parse(&values[from..])
            .map(Self)
            .ok_or_else(Problem::not_found)
    }
}
