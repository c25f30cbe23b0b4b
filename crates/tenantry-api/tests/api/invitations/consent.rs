//! Who may invite and join: verified addresses only, invitations that die with their
//! sender's rights, and limits on how many are sent.

use serde_json::json;
use tenantry_api::config::Config;

use super::{accept, invitations, invite, preview, stored_invitations, verified};
use crate::helpers::{Backend, TestApp, spawn_app_with};

crate::backend_tests!(
    pre_registered_addresses_get_no_access,
    invitations_die_with_their_senders_rights,
    unverified_senders_cannot_invite,
);

fn members(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/members")
}

/// Someone registers `newhire@corp.example` before the real new hire and never verifies it.
/// Neither the domain policy nor an invitation to that address lets the account in; once
/// verified (that is, by whoever reads the mailbox), the same invitation works.
async fn pre_registered_addresses_get_no_access(app: TestApp) {
    let w = app.world().await;
    app.patch(
        &format!("/api/v1/tenants/{}/settings", w.tenant),
        Some(&w.owner.token),
        json!({"allowed_email_domains": ["corp.example"]}),
    )
    .await
    .assert(200);
    let squatter = app.register("newhire@corp.example").await;

    // By id, the domain policy does not admit anyone, verified or not: same answer as an
    // id without an account.
    let by_id = app
        .post(
            &members(&w.tenant),
            Some(&w.owner.token),
            json!({"user_id": squatter.id, "role": "admin"}),
        )
        .await;
    by_id.assert_problem(422, "validation_failed");
    let unknown = app
        .post(
            &members(&w.tenant),
            Some(&w.owner.token),
            json!({"user_id": "01a20000-0000-7000-8000-000000000000", "role": "admin"}),
        )
        .await;
    assert_eq!(by_id.body, unknown.body);

    // By address it becomes an invitation, which the unverified account cannot accept.
    app.post(
        &members(&w.tenant),
        Some(&w.owner.token),
        json!({"email": "newhire@corp.example", "role": "admin"}),
    )
    .await
    .assert(202);
    let token = app
        .invitation_token(&w.tenant, "newhire@corp.example")
        .await;
    accept(&app, &token, &squatter)
        .await
        .assert_problem(403, "email_not_verified");
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&squatter.token),
    )
    .await
    .assert_problem(404, "not_found");
    let pending = app.get(&invitations(&w.tenant), Some(&w.owner.token)).await;
    assert_eq!(
        pending.body["items"].as_array().unwrap().len(),
        1,
        "still pending: {}",
        pending.body
    );
    preview(&app, &token).await.assert(200);

    app.verify_email(&squatter).await;
    let joined = accept(&app, &token, &squatter).await;
    joined.assert(200);
    assert_eq!(joined.body["role"], "admin");
}

/// An invitation carries its sender's authority only while the sender still has it.
async fn invitations_die_with_their_senders_rights(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let removed_admins = verified(&app, "removed@example.com").await;
    let demoted_admins = verified(&app, "demoted@example.com").await;
    let recruiters = verified(&app, "recruited@example.com").await;
    let second_admin = verified(&app, "admin2@example.com").await;
    app.add_member(t, &w.owner, &second_admin, "admin").await;

    // 1. The admin is removed: what they sent is revoked, and could not be accepted anyway.
    invite(&app, t, &w.admin, &removed_admins.email, "admin")
        .await
        .assert(201);
    let removed_token = app.invitation_token(t, &removed_admins.email).await;
    app.delete(
        &format!("{}/{}", members(t), w.admin.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    accept(&app, &removed_token, &removed_admins)
        .await
        .assert_problem(400, "link_invalid");
    preview(&app, &removed_token)
        .await
        .assert_problem(400, "link_invalid");

    // 2. The admin is demoted to member: an admin invitation is revoked.
    invite(&app, t, &second_admin, &demoted_admins.email, "admin")
        .await
        .assert(201);
    let demoted_token = app.invitation_token(t, &demoted_admins.email).await;
    app.patch(
        &format!("{}/{}", members(t), second_admin.id),
        Some(&w.owner.token),
        json!({"role": "member"}),
    )
    .await
    .assert(200);
    accept(&app, &demoted_token, &demoted_admins)
        .await
        .assert_problem(400, "link_invalid");

    // 3. The sender's role loses members:manage after the invitation was sent (no hook
    // revokes it): accepting re-checks and refuses.
    let role = app
        .post(
            &format!("/api/v1/tenants/{t}/roles"),
            Some(&w.owner.token),
            json!({"name": "recruiter", "permissions": ["members:manage", "tenant:read"]}),
        )
        .await;
    role.assert(201);
    let role_id = role.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/tenants/{t}/roles"),
        Some(&w.owner.token),
        json!({"name": "reader", "permissions": ["tenant:read"]}),
    )
    .await
    .assert(201);
    let recruiter = verified(&app, "recruiter@example.com").await;
    app.add_member(t, &w.owner, &recruiter, "recruiter").await;
    invite(&app, t, &recruiter, &recruiters.email, "reader")
        .await
        .assert(201);
    let recruited_token = app.invitation_token(t, &recruiters.email).await;
    app.patch(
        &format!("/api/v1/tenants/{t}/roles/{role_id}"),
        Some(&w.owner.token),
        json!({"permissions": ["tenant:read"]}),
    )
    .await
    .assert(200);
    accept(&app, &recruited_token, &recruiters)
        .await
        .assert_problem(400, "link_invalid");

    for user in [&removed_admins, &demoted_admins, &recruiters] {
        app.get(&format!("/api/v1/tenants/{t}"), Some(&user.token))
            .await
            .assert_problem(404, "not_found");
    }
    // The owner's invitations are untouched by all this.
    invite(&app, t, &w.owner, &recruiters.email, "viewer")
        .await
        .assert(201);
    let token = app.invitation_token(t, &recruiters.email).await;
    accept(&app, &token, &recruiters).await.assert(200);
}

/// Inviting needs a verified address of one's own — through either endpoint, in person or
/// with an API key.
async fn unverified_senders_cannot_invite(app: TestApp) {
    let fresh = app.register("fresh@example.com").await;
    let tenant = app.create_tenant(&fresh, "Fresh").await;
    let key = app
        .post(
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            Some(&fresh.token),
            json!({"name": "k", "role": "admin"}),
        )
        .await;
    key.assert(201);
    let key = key.body["key"].as_str().unwrap().to_owned();
    for token in [fresh.token.as_str(), key.as_str()] {
        app.post(
            &invitations(&tenant),
            Some(token),
            json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await
        .assert_problem(403, "email_not_verified");
        app.post(
            &members(&tenant),
            Some(token),
            json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await
        .assert_problem(403, "email_not_verified");
    }
    assert!(
        stored_invitations(&app).await.is_empty(),
        "nothing was sent"
    );
    app.verify_email(&fresh).await;
    invite(&app, &tenant, &fresh, "x@example.com", "viewer")
        .await
        .assert(201);
}

fn limited(config: &mut Config) {
    config.tenancy.invitations_per_sender_per_hour = 3;
    config.tenancy.invitations_per_tenant_per_hour = 4;
    config.tenancy.max_pending_invitations = 0;
}

/// The hourly limits per sender (over all their tenants) and per tenant, counted in the
/// database: a restarted server still knows them.
async fn hourly_invitation_limits_hold(backend: Backend, test: &str) {
    let Some(app) = spawn_app_with(backend, test, limited).await else {
        return;
    };
    let w = app.world().await;
    let t = &w.tenant;
    // world() sent 3 invitations from the owner in this hour: the owner is at the limit.
    let refused = invite(&app, t, &w.owner, "o1@example.com", "viewer").await;
    refused.assert_problem(429, "rate_limited");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    // The sender's limit spans tenants.
    let own = app.create_tenant(&w.owner, "Owner's second").await;
    invite(&app, &own, &w.owner, "o2@example.com", "viewer")
        .await
        .assert_problem(429, "rate_limited");
    // The tenant has room for one more (3 of 4), from another sender.
    invite(&app, t, &w.admin, "a1@example.com", "viewer")
        .await
        .assert(201);
    app.post(
        &members(t),
        Some(&w.admin.token),
        json!({"email": "a2@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(429, "rate_limited");
    // After a restart, the counts are still there.
    let restarted = app.sibling(limited).await;
    invite(&restarted, t, &w.admin, "a3@example.com", "viewer")
        .await
        .assert_problem(429, "rate_limited");
    // Another tenant's sender is unaffected.
    invite(
        &restarted,
        &w.other_tenant,
        &w.outsider,
        "b1@example.com",
        "viewer",
    )
    .await
    .assert(201);
}

/// The cap on a tenant's pending invitations: 409 once reached; re-inviting a pending
/// address replaces its invitation and still works; revoking makes room.
async fn pending_invitations_are_capped(backend: Backend, test: &str) {
    let Some(app) = spawn_app_with(backend, test, |c| {
        c.tenancy.max_pending_invitations = 2;
    })
    .await
    else {
        return;
    };
    let w = app.world().await;
    let t = &w.tenant;
    let first = invite(&app, t, &w.owner, "p1@example.com", "viewer").await;
    first.assert(201);
    invite(&app, t, &w.owner, "p2@example.com", "viewer")
        .await
        .assert(201);
    invite(&app, t, &w.owner, "p3@example.com", "viewer")
        .await
        .assert_problem(409, "too_many_pending_invitations");
    invite(&app, t, &w.owner, "p2@example.com", "member")
        .await
        .assert(201);
    app.delete(
        &format!("{}/{}", invitations(t), first.body["id"].as_str().unwrap()),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    invite(&app, t, &w.owner, "p3@example.com", "viewer")
        .await
        .assert(201);
}

macro_rules! config_tests {
    ($($name:ident),*) => {
        mod configured {
            $(
                mod $name {
                    use crate::helpers::Backend;
                    #[tokio::test]
                    async fn sqlite() {
                        super::super::$name(Backend::Sqlite, concat!(stringify!($name), "_sqlite")).await;
                    }
                    #[tokio::test]
                    async fn postgres() {
                        super::super::$name(Backend::Postgres, concat!(stringify!($name), "_pg")).await;
                    }
                }
            )*
        }
    };
}

config_tests!(
    hourly_invitation_limits_hold,
    pending_invitations_are_capped
);
