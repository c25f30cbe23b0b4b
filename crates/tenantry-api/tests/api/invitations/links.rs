//! The mailed link (read back from a real SMTP server): preview, accept once, and every way
//! it stops working.

use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_testkit::SmtpSink;

use super::{
    accept, audit_actions, invitations, invite, mailed_token, preview, stored_invitations, verified,
};
use crate::helpers::{TestApp, unique_email};

crate::mail_tests!(
    the_mailed_link_previews_and_accepts_once,
    only_the_invited_address_can_accept,
    expired_and_revoked_links_are_dead,
    re_inviting_replaces_the_pending_invitation,
    project_invitations_assign_the_role_in_the_project,
    accepting_as_an_existing_member_conflicts,
    allowed_email_domains_limit_who_joins,
);

async fn the_mailed_link_previews_and_accepts_once(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("invitee");
    let created = invite(&app, &w.tenant, &w.admin, &email.to_uppercase(), "member").await;
    created.assert(201);

    let mail = sink
        .wait_for(&email, 1)
        .await
        .into_iter()
        .find(|m| m.subject.starts_with("Invitation to join"))
        .unwrap();
    // Names the inviter chose stay out of the subject and are quoted in the body, beside the
    // inviter's verified address.
    assert_eq!(mail.subject, "Invitation to join a tenant on Tenantry");
    assert!(mail.text.contains("Tenant:      \"Acme\""), "{}", mail.text);
    assert!(
        mail.text
            .contains("Invited by:  \"Test User\" <admin@example.com>"),
        "{}",
        mail.text
    );
    assert!(
        mail.text
            .contains("https://app.example.test/invitations/accept?token="),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("\"member\""), "{}", mail.text);
    assert!(mail.text.contains("expires in 7 days"), "{}", mail.text);
    assert!(
        mail.html
            .contains("app.example.test&#x2f;invitations&#x2f;accept?token="),
        "{}",
        mail.html
    );
    let token = mail.link_token().unwrap();

    // Only the hash is stored.
    let stored = stored_invitations(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].email, email);
    assert_eq!(stored[0].role, "member");
    assert_eq!(
        stored[0].token_hash,
        tenantry_identity::link_token_digest(&token)
    );
    assert!(!stored[0].email.contains(&token) && !stored[0].role.contains(&token));
    assert!(!created.body.to_string().contains(&token));

    let p = preview(&app, &token).await;
    p.assert(200);
    assert_eq!(p.body["tenant_id"], w.tenant.as_str());
    assert_eq!(p.body["tenant_name"], "Acme");
    assert_eq!(p.body["role"], "member");
    assert_eq!(p.body["email"], email.as_str());
    assert_eq!(p.body["inviter_name"], "Test User");
    assert_eq!(p.body["expires_at"], created.body["expires_at"]);

    // The invitee registers with the invited address after the invitation was sent.
    let invitee = app.register(&email).await;
    let me = app.get("/api/v1/users/me", Some(&invitee.token)).await;
    assert_eq!(me.body["email_verified"], false);
    // An unverified account cannot accept; the invitation stays usable.
    accept(&app, &token, &invitee)
        .await
        .assert_problem(403, "email_not_verified");
    preview(&app, &token).await.assert(200);
    app.verify_email(&invitee).await;
    // Concurrent accepts: exactly one wins, the others find the link used.
    let attempts = tokio::join!(
        accept(&app, &token, &invitee),
        accept(&app, &token, &invitee),
        accept(&app, &token, &invitee),
        accept(&app, &token, &invitee),
    );
    let (won, lost): (Vec<_>, Vec<_>) = [attempts.0, attempts.1, attempts.2, attempts.3]
        .into_iter()
        .partition(|r| r.status == 200);
    assert_eq!(won.len(), 1, "{lost:?}");
    for r in &lost {
        r.assert_problem(400, "link_invalid");
    }
    let r = &won[0];
    assert_eq!(r.body["tenant"]["id"], w.tenant.as_str());
    assert_eq!(r.body["role"], "member");
    let member = app
        .get(
            &format!("/api/v1/tenants/{}/members/{}", w.tenant, invitee.id),
            Some(&invitee.token),
        )
        .await;
    member.assert(200);
    assert_eq!(member.body["role"], "member");

    // Single use: the link is dead, and the invitation is no longer pending.
    accept(&app, &token, &invitee)
        .await
        .assert_problem(400, "link_invalid");
    preview(&app, &token)
        .await
        .assert_problem(400, "link_invalid");
    let list = app.get(&invitations(&w.tenant), Some(&w.owner.token)).await;
    assert!(list.body["items"].as_array().unwrap().is_empty());

    let actions = audit_actions(&app, &w.tenant).await;
    let tail: Vec<&str> = actions.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        ["member.added", "invitation.accepted", "invitation.created"]
    );
}

async fn only_the_invited_address_can_accept(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("only");
    invite(&app, &w.tenant, &w.owner, &email, "viewer")
        .await
        .assert(201);
    let token = mailed_token(&sink, &email, &[]).await;

    for wrong in [&w.member, &w.outsider] {
        accept(&app, &token, wrong)
            .await
            .assert_problem(403, "email_mismatch");
    }
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    guest.assert(201);
    let guest_token = guest.body["access_token"].as_str().unwrap();
    app.post(
        &format!("/api/v1/invitations/{token}/accept"),
        Some(guest_token),
        json!({}),
    )
    .await
    .assert_problem(403, "email_mismatch");
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(404);

    // Refusals left the invitation usable for its addressee.
    let invitee = verified(&app, &email).await;
    accept(&app, &token, &invitee).await.assert(200);
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&invitee.token),
    )
    .await
    .assert(200);
}

async fn expired_and_revoked_links_are_dead(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let late = unique_email("late");
    let gone = unique_email("gone");
    invite(&app, &w.tenant, &w.owner, &late, "member")
        .await
        .assert(201);
    let revoked = invite(&app, &w.tenant, &w.owner, &gone, "member").await;
    revoked.assert(201);
    let late_token = mailed_token(&sink, &late, &[]).await;
    let gone_token = mailed_token(&sink, &gone, &[]).await;
    let late_user = verified(&app, &late).await;
    let gone_user = verified(&app, &gone).await;

    app.db()
        .await
        .execute_script(&format!(
            "UPDATE invitations SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE email = '{late}'"
        ))
        .await
        .unwrap();
    preview(&app, &late_token)
        .await
        .assert_problem(400, "link_invalid");
    accept(&app, &late_token, &late_user)
        .await
        .assert_problem(400, "link_invalid");

    app.delete(
        &format!(
            "{}/{}",
            invitations(&w.tenant),
            revoked.body["id"].as_str().unwrap()
        ),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    preview(&app, &gone_token)
        .await
        .assert_problem(400, "link_invalid");
    accept(&app, &gone_token, &gone_user)
        .await
        .assert_problem(400, "link_invalid");

    // A deleted tenant's invitations are dead too.
    let orphan = unique_email("orphan");
    invite(&app, &w.other_tenant, &w.outsider, &orphan, "member")
        .await
        .assert(201);
    let orphan_token = mailed_token(&sink, &orphan, &[]).await;
    preview(&app, &orphan_token).await.assert(200);
    app.delete(
        &format!("/api/v1/tenants/{}", w.other_tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(204);
    preview(&app, &orphan_token)
        .await
        .assert_problem(400, "link_invalid");
    let orphan_user = verified(&app, &orphan).await;
    accept(&app, &orphan_token, &orphan_user)
        .await
        .assert_problem(400, "link_invalid");

    let list = app.get(&invitations(&w.tenant), Some(&w.owner.token)).await;
    assert!(
        list.body["items"].as_array().unwrap().is_empty(),
        "expired and revoked are not pending: {}",
        list.body
    );
    for user in [&late_user, &gone_user] {
        app.get(&format!("/api/v1/tenants/{}", w.tenant), Some(&user.token))
            .await
            .assert(404);
    }
}

async fn re_inviting_replaces_the_pending_invitation(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("again");
    let first = invite(&app, &w.tenant, &w.owner, &email, "viewer").await;
    first.assert(201);
    let old = mailed_token(&sink, &email, &[]).await;
    let second = invite(&app, &w.tenant, &w.admin, &email.to_uppercase(), "member").await;
    second.assert(201);
    assert_ne!(first.body["id"], second.body["id"]);
    let new = mailed_token(&sink, &email, &[&old]).await;

    let list = app.get(&invitations(&w.tenant), Some(&w.owner.token)).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.body);
    assert_eq!(items[0]["id"], second.body["id"]);
    assert_eq!(items[0]["role"], "member");

    let invitee = verified(&app, &email).await;
    preview(&app, &old)
        .await
        .assert_problem(400, "link_invalid");
    accept(&app, &old, &invitee)
        .await
        .assert_problem(400, "link_invalid");
    let p = preview(&app, &new).await;
    p.assert(200);
    assert_eq!(p.body["role"], "member");
    let r = accept(&app, &new, &invitee).await;
    r.assert(200);
    assert_eq!(r.body["role"], "member");
    let actions = audit_actions(&app, &w.tenant).await;
    assert!(actions.contains(&"invitation.revoked".to_owned()));
}

async fn project_invitations_assign_the_role_in_the_project(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let project = app.create_project(&w.tenant, &w.owner, "Nairobi").await;
    let email = unique_email("project");
    let created = app
        .post(
            &invitations(&w.tenant),
            Some(&w.admin.token),
            json!({"email": email, "role": "member", "project_id": project}),
        )
        .await;
    created.assert(201);
    assert_eq!(created.body["project_id"], project.as_str());
    let token = mailed_token(&sink, &email, &[]).await;
    let p = preview(&app, &token).await;
    assert_eq!(p.body["project_id"], project.as_str());
    let invitee = verified(&app, &email).await;
    accept(&app, &token, &invitee).await.assert(200);

    let user_id: uuid::Uuid = invitee.id.parse().unwrap();
    let project_id: uuid::Uuid = project.parse().unwrap();
    let assigned: Vec<String> = app
        .db()
        .await
        .read_all(
            Query::select()
                .column("role")
                .from("project_members")
                .and_where(Expr::col("project_id").eq(project_id))
                .and_where(Expr::col("user_id").eq(user_id)),
        )
        .await
        .unwrap();
    assert_eq!(assigned, ["member"], "one project assignment with the role");
    app.get(
        &format!("/api/v1/tenants/{}/projects/{project}", w.tenant),
        Some(&invitee.token),
    )
    .await
    .assert(200);
}

async fn accepting_as_an_existing_member_conflicts(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("twice");
    invite(&app, &w.tenant, &w.owner, &email, "viewer")
        .await
        .assert(201);
    let token = mailed_token(&sink, &email, &[]).await;
    let invitee = verified(&app, &email).await;
    // A member by the time they accept (as after a race with another invitation: the API
    // itself keeps one pending invitation per address and invites no members).
    let (tenant_id, user_id): (uuid::Uuid, uuid::Uuid) =
        (w.tenant.parse().unwrap(), invitee.id.parse().unwrap());
    let now = tenantry_core::now();
    let mut tx = app.state.db.begin_write().await.unwrap();
    tx.execute(
        Query::insert()
            .into_table("memberships")
            .columns(["tenant_id", "user_id", "role", "created_at", "updated_at"])
            .values_panic([
                tenant_id.into(),
                user_id.into(),
                "member".into(),
                now.into(),
                now.into(),
            ]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    accept(&app, &token, &invitee)
        .await
        .assert_problem(409, "already_exists");
    let member = app
        .get(
            &format!("/api/v1/tenants/{}/members/{}", w.tenant, invitee.id),
            Some(&invitee.token),
        )
        .await;
    assert_eq!(member.body["role"], "member", "the membership is unchanged");
}

/// `allowed_email_domains` limits who can be invited or added, and an invitation sent before
/// the list was narrowed can no longer be accepted.
async fn allowed_email_domains_limit_who_joins(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("early");
    invite(&app, &w.tenant, &w.owner, &email, "viewer")
        .await
        .assert(201);
    let token = mailed_token(&sink, &email, &[]).await;
    let domain = email.rsplit_once('@').unwrap().1.to_owned();
    app.patch(
        &format!("/api/v1/tenants/{}/settings", w.tenant),
        Some(&w.owner.token),
        json!({"allowed_email_domains": ["acme.test"]}),
    )
    .await
    .assert(200);

    let refused = invite(&app, &w.tenant, &w.owner, &unique_email("late"), "viewer").await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(
        refused.body["errors"][0]["field"], "email",
        "{:?}",
        refused.body
    );
    let subdomain = invite(&app, &w.tenant, &w.owner, "x@eu.acme.test", "viewer").await;
    subdomain.assert_problem(422, "validation_failed");
    invite(&app, &w.tenant, &w.owner, "ok@ACME.test", "viewer")
        .await
        .assert(201);
    let outsider = app
        .post(
            &format!("/api/v1/tenants/{}/members", w.tenant),
            Some(&w.owner.token),
            json!({"email": w.outsider.email, "role": "viewer"}),
        )
        .await;
    outsider.assert_problem(422, "validation_failed");
    assert_eq!(outsider.body["errors"][0]["field"], "email");
    let by_id = app
        .post(
            &format!("/api/v1/tenants/{}/members", w.tenant),
            Some(&w.owner.token),
            json!({"user_id": w.outsider.id, "role": "viewer"}),
        )
        .await;
    by_id.assert_problem(422, "validation_failed");
    assert_eq!(by_id.body["errors"][0]["field"], "user_id");

    // The early invitation is refused now, and accepted once its domain is allowed again.
    let invitee = verified(&app, &email).await;
    accept(&app, &token, &invitee)
        .await
        .assert_problem(403, "forbidden");
    app.patch(
        &format!("/api/v1/tenants/{}/settings", w.tenant),
        Some(&w.owner.token),
        json!({"allowed_email_domains": ["acme.test", domain]}),
    )
    .await
    .assert(200);
    accept(&app, &token, &invitee).await.assert(200);
}
