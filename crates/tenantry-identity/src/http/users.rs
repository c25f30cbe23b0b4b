//! `/api/v1/users/me*`: the caller's profile and sessions. (Their tenants,
//! `/users/me/tenants`, are tenancy's.)

use axum::{
    extract::{FromRef, State},
    http::StatusCode,
};
use serde::Deserialize;
use tenantry_core::{
    JsonObject, Page, PersonName, Problem, SessionId, page::PageParams, problem::Validator,
};
use tenantry_http::{Caller, Client, Gate, Ids, Json, Query};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Authenticated, Identity, ProfileChange, SessionView, UserView};

pub(super) fn router<S>() -> OpenApiRouter<S>
where
    S: Gate<Authn = Identity>,
    Identity: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me, put_me))
        .routes(routes!(my_sessions))
        .routes(routes!(revoke_session))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = Problem)))]
pub async fn get_me(Caller(caller): Caller<Authenticated>) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Replaces the preferences object.
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMe {
    pub first_name: String,
    pub last_name: String,
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<serde_json::Value>,
}

fn profile_change(
    first_name: Option<&str>,
    last_name: Option<&str>,
    preferences: Option<serde_json::Value>,
) -> Result<ProfileChange, Problem> {
    let mut v = Validator::new();
    let change = ProfileChange {
        first_name: first_name.and_then(|n| v.field("first_name", PersonName::parse(n))),
        last_name: last_name.and_then(|n| v.field("last_name", PersonName::parse(n))),
        preferences: preferences
            .and_then(|p| v.field("preferences", JsonObject::parse(p)))
            .map(JsonObject::into_inner),
    };
    v.finish()?;
    Ok(change)
}

/// Change names and preferences (the e-mail address cannot be changed here).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "identity", security(("bearer" = [])),
    request_body = PatchMe,
    responses((status = 200, body = UserView), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_me(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<PatchMe>,
) -> Result<Json<UserView>, Problem> {
    let change = profile_change(
        body.first_name.as_deref(),
        body.last_name.as_deref(),
        body.preferences,
    )?;
    let user = identity
        .update_profile(caller.user.id, change, &client)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// Replace names and preferences.
#[utoipa::path(put, path = "/api/v1/users/me", tag = "identity", security(("bearer" = [])),
    request_body = PutMe,
    responses((status = 200, body = UserView), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn put_me(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Json(body): Json<PutMe>,
) -> Result<Json<UserView>, Problem> {
    let preferences = Some(body.preferences.unwrap_or_else(|| serde_json::json!({})));
    let change = profile_change(Some(&body.first_name), Some(&body.last_name), preferences)?;
    let user = identity
        .update_profile(caller.user.id, change, &client)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// The caller's live sessions; `current` marks this one (none is current for a token of an
/// external identity provider).
#[utoipa::path(get, path = "/api/v1/users/me/sessions", tag = "identity", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<SessionView>), (status = 401, body = Problem)))]
pub async fn my_sessions(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<SessionView>>, Problem> {
    let page = page.try_into()?;
    Ok(Json(
        identity
            .list_sessions(caller.user.id, caller.session_id(), &page)
            .await?,
    ))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{session_id}", tag = "identity",
    security(("bearer" = [])),
    params(("session_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(identity): State<Identity>,
    Caller(caller): Caller<Authenticated>,
    Client(client): Client,
    Ids(session_id): Ids<SessionId>,
) -> Result<StatusCode, Problem> {
    identity
        .revoke_session(caller.user.id, session_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
