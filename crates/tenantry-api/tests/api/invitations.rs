//! Invitations: listed and revoked by the tenant, validated and permissioned; the mailed
//! link's preview and accept are in `links`.

mod consent;
mod links;

use std::time::{Duration, Instant};

use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};
use tenantry_testkit::SmtpSink;

use crate::helpers::{Backend, Resp, TestApp, TestUser, spawn_app};

crate::backend_tests!(
    invitations_are_listed_and_revoked_by_managers_only,
    inviting_is_validated_and_permissioned,
    malformed_tokens_are_invalid_links,
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
            .filter(|m| m.subject.starts_with("Invitation to join"))
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

/// Invitations not accepted (the members of `world()` joined by accepting theirs).
async fn stored_invitations(app: &TestApp) -> Vec<Stored> {
    app.db()
        .await
        .read_all(
            Query::select()
                .columns(["email", "role", "token_hash"])
                .from("invitations")
                .and_where(Expr::col("accepted_at").is_null()),
        )
        .await
        .unwrap()
}

/// How often `action` is in the tenant's audit trail.
async fn audit_count(app: &TestApp, tenant: &str, action: &str) -> usize {
    audit_actions(app, tenant)
        .await
        .iter()
        .filter(|a| *a == action)
        .count()
}

/// Registers `email` and marks the address verified (accepting needs it).
async fn verified(app: &TestApp, email: &str) -> TestUser {
    let user = app.register(email).await;
    app.verify_email(&user).await;
    user
}

async fn invitations_are_listed_and_revoked_by_managers_only(app: TestApp) {
    let w = app.world().await;
    let path = invitations(&w.tenant);
    // world()'s members joined by invitations of their own.
    let created_before = audit_count(&app, &w.tenant, "invitation.created").await;
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

    assert_eq!(
        audit_count(&app, &w.tenant, "invitation.created").await,
        created_before + 3
    );
    assert_eq!(audit_count(&app, &w.tenant, "invitation.revoked").await, 1);
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

/// As the request role with only `app.secret_hash` set: the invitations' e-mails and the
/// tenant ids visible, and how many invitations an unconditional UPDATE reaches.
async fn secret_view(
    conn: &mut sqlx::PgConnection,
    secret: &str,
) -> (Vec<String>, Vec<String>, u64) {
    use sqlx::{Executor, Row as _};
    conn.execute("BEGIN; SET LOCAL ROLE tenantry_app")
        .await
        .unwrap();
    sqlx::query("SELECT set_config('app.secret_hash', $1, true)")
        .bind(secret)
        .execute(&mut *conn)
        .await
        .unwrap();
    let emails = sqlx::query("SELECT email FROM invitations")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tenants = sqlx::query("SELECT id::text FROM tenants")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let written = sqlx::query("UPDATE invitations SET role = 'owner'")
        .execute(&mut *conn)
        .await
        .unwrap()
        .rows_affected();
    conn.execute("ROLLBACK").await.unwrap();
    (emails, tenants, written)
}

/// PostgreSQL, bypassing the application: the request role with `app.secret_hash` set sees
/// exactly the invitation with that hash and its tenant's row, and writes nothing.
#[tokio::test]
async fn postgres_secret_lookup_reveals_one_invitation_and_its_tenant() {
    use sqlx::Connection;
    let Some(app) = spawn_app(Backend::Postgres, "invitation_secret_lookup").await else {
        return;
    };
    let w = app.world().await;
    invite(&app, &w.tenant, &w.owner, "a@example.com", "member")
        .await
        .assert(201);
    invite(
        &app,
        &w.other_tenant,
        &w.outsider,
        "b@example.com",
        "member",
    )
    .await
    .assert(201);
    let mut conn = sqlx::PgConnection::connect(app.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let hash = "ab".repeat(32);
    sqlx::query("UPDATE invitations SET token_hash = decode($1, 'hex') WHERE email = $2")
        .bind(&hash)
        .bind("a@example.com")
        .execute(&mut conn)
        .await
        .unwrap();

    let (emails, tenants, written) = secret_view(&mut conn, &hash).await;
    assert_eq!(emails, ["a@example.com"]);
    assert_eq!(tenants, std::slice::from_ref(&w.tenant));
    assert_eq!(written, 0, "a token bearer reads, never writes");
    for other in ["cd".repeat(32), String::new()] {
        let (emails, tenants, _) = secret_view(&mut conn, &other).await;
        assert!(emails.is_empty() && tenants.is_empty(), "{other:?}");
    }
}
