//! Invitations: sent by mail (read back from a real SMTP server), previewed and accepted with
//! the link's token; listed and revoked by the tenant.

use std::time::{Duration, Instant};

use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};
use tenantry_testkit::SmtpSink;

use crate::helpers::{Resp, TestApp, TestUser, unique_email};

crate::backend_tests!(
    invitations_are_listed_and_revoked_by_managers_only,
    inviting_is_validated_and_permissioned,
    malformed_tokens_are_invalid_links,
);

crate::mail_tests!(
    the_mailed_link_previews_and_accepts_once,
    only_the_invited_address_can_accept,
    expired_and_revoked_links_are_dead,
    re_inviting_replaces_the_pending_invitation,
    project_invitations_assign_the_role_in_the_project,
    accepting_as_an_existing_member_conflicts,
);

fn invitations(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/invitations")
}

async fn invite(app: &TestApp, tenant: &str, by: &TestUser, email: &str, role: &str) -> Resp {
    app.post(
        &invitations(tenant),
        Some(&by.token),
        json!({"email": email, "role": role}),
    )
    .await
}

/// The token of the newest invitation mail to `email` that is not in `seen`.
async fn mailed_token(sink: &SmtpSink, email: &str, seen: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = sink
            .messages(email)
            .into_iter()
            .filter(|m| m.subject.contains("invited you"))
            .filter_map(|m| m.link_token())
            .find(|t| !seen.contains(&t.as_str()));
        if let Some(token) = fresh {
            return token;
        }
        assert!(Instant::now() < deadline, "no invitation mail to {email}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn accept(app: &TestApp, token: &str, user: &TestUser) -> Resp {
    app.post(
        &format!("/api/v1/invitations/{token}/accept"),
        Some(&user.token),
        json!({}),
    )
    .await
}

async fn preview(app: &TestApp, token: &str) -> Resp {
    app.get(&format!("/api/v1/invitations/{token}"), None).await
}

/// The tenant's audit actions, oldest first (read as the database owner).
async fn audit_actions(app: &TestApp, tenant: &str) -> Vec<String> {
    let tenant: uuid::Uuid = tenant.parse().unwrap();
    app.db()
        .await
        .read_all(
            Query::select()
                .column("action")
                .from("audit_logs")
                .and_where(Expr::col("tenant_id").eq(tenant))
                .order_by("seq", Order::Asc),
        )
        .await
        .unwrap()
}

struct Stored {
    email: String,
    role: String,
    token_hash: Vec<u8>,
}

impl FromRow for Stored {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            email: row.string()?,
            role: row.string()?,
            token_hash: row.bytes()?,
        })
    }
}

async fn stored_invitations(app: &TestApp) -> Vec<Stored> {
    app.db()
        .await
        .read_all(
            Query::select()
                .columns(["email", "role", "token_hash"])
                .from("invitations"),
        )
        .await
        .unwrap()
}

async fn invitations_are_listed_and_revoked_by_managers_only(app: TestApp) {
    let w = app.world().await;
    let path = invitations(&w.tenant);
    let first = invite(&app, &w.tenant, &w.owner, "first@example.com", "member").await;
    first.assert(201);
    assert_eq!(first.body["email"], "first@example.com");
    assert_eq!(first.body["role"], "member");
    assert_eq!(first.body["invited_by"], w.owner.id.as_str());
    assert_eq!(first.body["tenant_id"], w.tenant.as_str());
    assert_eq!(first.body["project_id"], Value::Null);
    assert!(first.body.get("token").is_none() && first.body.get("token_hash").is_none());
    let second = invite(&app, &w.tenant, &w.admin, "Second@Example.com", "viewer").await;
    second.assert(201);
    assert_eq!(
        second.body["email"], "second@example.com",
        "stored canonical"
    );
    let foreign = invite(
        &app,
        &w.other_tenant,
        &w.outsider,
        "third@example.com",
        "viewer",
    )
    .await;
    foreign.assert(201);

    // Admins and owners list (invitations:read), newest first, paged, never with a secret.
    let list = app.get(&path, Some(&w.admin.token)).await;
    list.assert(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "only this tenant's: {}", list.body);
    assert_eq!(items[0]["id"], second.body["id"]);
    assert_eq!(items[1]["id"], first.body["id"]);
    assert!(!list.body.to_string().contains("token"));
    let page = app
        .get(&format!("{path}?limit=1"), Some(&w.owner.token))
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("{path}?limit=1&cursor={cursor}"),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(rest.body["items"][0]["id"], first.body["id"]);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    for user in [&w.member, &w.viewer] {
        app.get(&path, Some(&user.token))
            .await
            .assert_problem(403, "forbidden");
    }
    app.get(&path, Some(&w.outsider.token)).await.assert(404);
    app.get(&path, None)
        .await
        .assert_problem(401, "unauthenticated");

    // Revoking needs members:manage; unknown, foreign and finished ids are 404.
    let first_id = first.body["id"].as_str().unwrap();
    let foreign_id = foreign.body["id"].as_str().unwrap();
    for user in [&w.member, &w.viewer] {
        app.delete(&format!("{path}/{first_id}"), Some(&user.token))
            .await
            .assert_problem(403, "forbidden");
    }
    app.delete(&format!("{path}/{first_id}"), Some(&w.outsider.token))
        .await
        .assert(404);
    app.delete(&format!("{path}/{first_id}"), None)
        .await
        .assert(401);
    app.delete(&format!("{path}/{foreign_id}"), Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
    app.delete(
        &format!("{path}/01a20000-0000-7000-8000-000000000000"),
        Some(&w.owner.token),
    )
    .await
    .assert_problem(404, "not_found");
    app.delete(&format!("{path}/not-a-uuid"), Some(&w.owner.token))
        .await
        .assert(404);
    app.delete(&format!("{path}/{first_id}"), Some(&w.admin.token))
        .await
        .assert(204);
    app.delete(&format!("{path}/{first_id}"), Some(&w.admin.token))
        .await
        .assert(404);
    let list = app.get(&path, Some(&w.owner.token)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let theirs = app
        .get(&invitations(&w.other_tenant), Some(&w.outsider.token))
        .await;
    assert_eq!(
        theirs.body["items"][0]["id"], foreign.body["id"],
        "the foreign invitation was not touched"
    );

    // An admin cannot revoke an invitation that grants more than an admin holds.
    let owner_invite = invite(&app, &w.tenant, &w.owner, "boss@example.com", "owner").await;
    owner_invite.assert(201);
    let owner_invite_id = owner_invite.body["id"].as_str().unwrap();
    app.delete(&format!("{path}/{owner_invite_id}"), Some(&w.admin.token))
        .await
        .assert_problem(403, "forbidden");

    let actions = audit_actions(&app, &w.tenant).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation.created")
            .count(),
        3
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation.revoked")
            .count(),
        1
    );
}

async fn inviting_is_validated_and_permissioned(app: TestApp) {
    let w = app.world().await;
    let path = invitations(&w.tenant);
    let r = app
        .post(
            &path,
            Some(&w.owner.token),
            json!({"email": "not an address", "role": "member", "project_id": "nope"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "project_id"]);
    let r = invite(&app, &w.tenant, &w.owner, "new@example.com", "superuser").await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "role");
    let foreign_project = app
        .create_project(&w.other_tenant, &w.outsider, "Theirs")
        .await;
    let r = app
        .post(
            &path,
            Some(&w.owner.token),
            json!({"email": "new@example.com", "role": "member", "project_id": foreign_project}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "project_id");
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"email": "new@example.com"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"email": "new@example.com", "role": "member", "token": "mine"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Members of the tenant already: 409, whatever the case of the address.
    invite(&app, &w.tenant, &w.owner, "MEMBER@example.com", "viewer")
        .await
        .assert_problem(409, "already_exists");

    // Permissions: members:manage, and no role beyond one's own.
    for user in [&w.member, &w.viewer] {
        invite(&app, &w.tenant, user, "new@example.com", "viewer")
            .await
            .assert_problem(403, "forbidden");
    }
    invite(&app, &w.tenant, &w.admin, "new@example.com", "owner")
        .await
        .assert_problem(403, "forbidden");
    invite(&app, &w.tenant, &w.outsider, "new@example.com", "viewer")
        .await
        .assert(404);
    app.post(
        &path,
        None,
        json!({"email": "new@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(401, "unauthenticated");
    assert!(
        stored_invitations(&app).await.is_empty(),
        "no refused invitation was written"
    );
    invite(&app, &w.tenant, &w.admin, "new@example.com", "admin")
        .await
        .assert(201);
    invite(&app, &w.tenant, &w.owner, "boss@example.com", "owner")
        .await
        .assert(201);
}

async fn malformed_tokens_are_invalid_links(app: TestApp) {
    let user = app.register("someone@example.com").await;
    let unknown = "A".repeat(43);
    for token in ["nope", unknown.as_str()] {
        preview(&app, token)
            .await
            .assert_problem(400, "link_invalid");
        accept(&app, token, &user)
            .await
            .assert_problem(400, "link_invalid");
    }
    app.post(
        &format!("/api/v1/invitations/{unknown}/accept"),
        None,
        json!({}),
    )
    .await
    .assert_problem(401, "unauthenticated");
}

async fn the_mailed_link_previews_and_accepts_once(app: TestApp, sink: SmtpSink) {
    let w = app.world().await;
    let email = unique_email("invitee");
    let created = invite(&app, &w.tenant, &w.admin, &email.to_uppercase(), "member").await;
    created.assert(201);

    let mail = sink
        .wait_for(&email, 1)
        .await
        .into_iter()
        .find(|m| m.subject.contains("invited you"))
        .unwrap();
    assert_eq!(mail.subject, "Test User invited you to Acme on Tenantry");
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
    let me = app.get("/api/v1/users/me", Some(&invitee.token)).await;
    assert_eq!(
        me.body["email_verified"], true,
        "the link proved the address"
    );

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
    let invitee = app.register(&email).await;
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
    let late_user = app.register(&late).await;
    let gone_user = app.register(&gone).await;

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
    let orphan_user = app.register(&orphan).await;
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

    let invitee = app.register(&email).await;
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
    let invitee = app.register(&email).await;
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
    let invitee = app.register(&email).await;
    // Added directly before accepting.
    app.add_member(&w.tenant, &w.owner, &invitee, "member")
        .await;
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
