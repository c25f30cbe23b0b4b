//! Platform administration of accounts: listing, disabling (no sign-in, every session and
//! token dead at once) and enabling again.

use reqwest::Method;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::{Value, json};
use tenantry_core::UserId;
use tenantry_db::AdminScope;
use tenantry_identity::IdentityError;

use crate::{
    admin::{audit_chain, platform_admin},
    helpers::{PASSWORD, TestApp},
};

crate::backend_tests!(
    user_list_filters_and_pages_newest_first,
    a_disabled_user_cannot_sign_in_and_loses_every_session,
    an_enabled_user_signs_in_again,
    administrators_cannot_disable_themselves_or_the_last_one,
    api_keys_of_a_disabled_creator_are_refused,
);

async fn list_users(app: &TestApp, token: &str, query: &str) -> Value {
    let resp = app
        .get(&format!("/api/v1/admin/users{query}"), Some(token))
        .await;
    resp.assert(200);
    resp.body.clone()
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap_or("<guest>").to_owned())
        .collect()
}

async fn user_list_filters_and_pages_newest_first(app: TestApp) {
    let root = platform_admin(&app, "root@example.com").await;
    app.register("ada@Example.org").await;
    app.register("bob@example.com").await;
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    guest.assert(201);
    let list = |query: &'static str| list_users(&app, &root.token, query);
    let all = list("").await;
    assert_eq!(
        emails(&all),
        [
            "<guest>",
            "bob@example.com",
            "ada@example.org",
            "root@example.com"
        ]
    );
    let root_view = &all["items"][3];
    assert_eq!(root_view["is_platform_admin"], true);
    assert_eq!(root_view["status"], "active");
    assert!(root_view.get("password_hash").is_none());
    assert_eq!(all["items"][0]["is_guest"], true);

    let first = list("?limit=3").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(
            &format!("/api/v1/admin/users?limit=3&cursor={cursor}"),
            Some(&root.token),
        )
        .await;
    assert_eq!(emails(&rest.body), ["root@example.com"]);
    assert_eq!(rest.body["next_cursor"], Value::Null);

    assert_eq!(emails(&list("?q=EXAMPLE.ORG").await), ["ada@example.org"]);
    assert_eq!(
        emails(&list("?q=example.com").await),
        ["bob@example.com", "root@example.com"]
    );
    assert!(emails(&list("?q=%25").await).is_empty());
    assert_eq!(
        emails(&list("?platform_admin=true").await),
        ["root@example.com"]
    );
    assert_eq!(emails(&list("?guest=true").await), ["<guest>"]);
    assert_eq!(
        emails(&list("?guest=false&platform_admin=false").await),
        ["bob@example.com", "ada@example.org"]
    );
    let bob = &all["items"][1]["id"];
    app.post(
        &format!("/api/v1/admin/users/{}/disable", bob.as_str().unwrap()),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    assert_eq!(emails(&list("?status=disabled").await), ["bob@example.com"]);
    assert_eq!(
        emails(&list("?status=active&q=bob").await),
        Vec::<String>::new()
    );

    for bad in ["?status=banned", "?guest=maybe", "?limit=201"] {
        app.get(&format!("/api/v1/admin/users{bad}"), Some(&root.token))
            .await
            .assert_problem(422, "validation_failed");
    }
    let one = app
        .get(
            &format!("/api/v1/admin/users/{}", bob.as_str().unwrap()),
            Some(&root.token),
        )
        .await;
    one.assert(200);
    assert_eq!(one.body["status"], "disabled");
    for id in ["01a20000-0000-7000-8000-000000000000", "nope"] {
        app.get(&format!("/api/v1/admin/users/{id}"), Some(&root.token))
            .await
            .assert_problem(404, "not_found");
    }
}

async fn a_disabled_user_cannot_sign_in_and_loses_every_session(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let member = &w.member;
    let second = app.login(&member.email).await; // two sessions
    let disabled = app
        .post(
            &format!("/api/v1/admin/users/{}/disable", member.id),
            Some(&root.token),
            json!({"reason": "abuse report #42"}),
        )
        .await;
    disabled.assert(200);
    assert_eq!(disabled.body["status"], "disabled");

    // Every access token stops at once, every refresh token is dead.
    for session in [member, &second] {
        app.get("/api/v1/users/me", Some(&session.token))
            .await
            .assert_problem(401, "invalid_token");
        app.get(
            &format!("/api/v1/tenants/{}", w.tenant),
            Some(&session.token),
        )
        .await
        .assert(401);
        app.refresh(&session.refresh)
            .await
            .assert_problem(401, "invalid_token");
    }
    // Sign-in answers exactly as for a wrong password.
    let right = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": member.email, "password": PASSWORD}),
        )
        .await;
    right.assert_problem(401, "invalid_credentials");
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "owner@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(right.body, wrong.body);

    // Again → 409; the rest of the tenant works on.
    app.post(
        &format!("/api/v1/admin/users/{}/disable", member.id),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert_problem(409, "conflict");
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&w.owner.token),
    )
    .await
    .assert(200);

    // A security event and an audit record in the account's chain, naming the administrator.
    let records = audit_chain(&app, &member.id).await;
    let record = records
        .iter()
        .find(|r| r.action == "user.disabled")
        .unwrap();
    assert_eq!(record.actor_user_id.unwrap().to_string(), root.id);
    assert_eq!(record.summary["reason"], "abuse report #42");
    assert_eq!(record.summary["sessions_revoked"], 2);
    assert_eq!(record.tenant_id, None);
    let member_id: uuid::Uuid = member.id.parse().unwrap();
    let live: Option<i64> = app
        .state
        .db
        .read_optional(
            Query::select()
                .expr(Expr::cust("COUNT(*)"))
                .from("sessions")
                .and_where(Expr::col("user_id").eq(member_id))
                .and_where(Expr::col("revoked_at").is_null()),
        )
        .await
        .unwrap();
    assert_eq!(live, Some(0));
}

async fn an_enabled_user_signs_in_again(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let path = format!("/api/v1/admin/users/{}", w.viewer.id);
    app.post(&format!("{path}/enable"), Some(&root.token), json!({}))
        .await
        .assert_problem(409, "conflict");
    app.request(
        Method::POST,
        &format!("{path}/disable"),
        Some(&root.token),
        None,
    )
    .await
    .assert(200);
    let enabled = app
        .post(
            &format!("{path}/enable"),
            Some(&root.token),
            json!({"reason": "appeal granted"}),
        )
        .await;
    enabled.assert(200);
    assert_eq!(enabled.body["status"], "active");
    // The old session stays ended; a new sign-in works, with the membership intact.
    app.get("/api/v1/users/me", Some(&w.viewer.token))
        .await
        .assert(401);
    let again = app.login(&w.viewer.email).await;
    app.get(&format!("/api/v1/tenants/{}", w.tenant), Some(&again.token))
        .await
        .assert(200);
    let kinds = app.security_event_kinds(&again.token).await;
    assert!(
        kinds.starts_with(&["account_enabled".to_owned(), "account_disabled".to_owned()]),
        "{kinds:?}"
    );
    let actions: Vec<String> = audit_chain(&app, &w.viewer.id)
        .await
        .into_iter()
        .map(|r| r.action)
        .filter(|a| a.starts_with("user.") && a != "user.registered")
        .collect();
    assert_eq!(actions, ["user.disabled", "user.enabled"]);
    app.post(
        "/api/v1/admin/users/01a20000-0000-7000-8000-000000000000/enable",
        Some(&root.token),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");
}

async fn administrators_cannot_disable_themselves_or_the_last_one(app: TestApp) {
    let a = platform_admin(&app, "a@example.com").await;
    let b = platform_admin(&app, "b@example.com").await;
    app.post(
        &format!("/api/v1/admin/users/{}/disable", a.id),
        Some(&a.token),
        json!({}),
    )
    .await
    .assert_problem(409, "conflict");
    // One administrator may disable another; the disabled one loses access at once.
    app.post(
        &format!("/api/v1/admin/users/{}/disable", b.id),
        Some(&a.token),
        json!({}),
    )
    .await
    .assert(200);
    app.get("/api/v1/admin/users", Some(&b.token))
        .await
        .assert_problem(401, "invalid_token");
    // A is now the last active administrator: even the command line (no acting user)
    // cannot disable it.
    let a_id: UserId = a.id.parse().unwrap();
    let last = app
        .state
        .identity
        .disable_user(&AdminScope::for_housekeeping(), a_id, None)
        .await;
    assert!(
        matches!(last, Err(IdentityError::LastPlatformAdmin)),
        "{last:?}"
    );
    app.get("/api/v1/admin/users", Some(&a.token))
        .await
        .assert(200);
    // With B enabled again, A can be disabled by B.
    app.post(
        &format!("/api/v1/admin/users/{}/enable", b.id),
        Some(&a.token),
        json!({}),
    )
    .await
    .assert(200);
    let b = app.login(&b.email).await;
    app.post(
        &format!("/api/v1/admin/users/{}/disable", a.id),
        Some(&b.token),
        json!({}),
    )
    .await
    .assert(200);
}

async fn api_keys_of_a_disabled_creator_are_refused(app: TestApp) {
    let root = platform_admin(&app, "root@example.com").await;
    let w = app.world().await;
    let created = app
        .post(
            &format!("/api/v1/tenants/{}/api-keys", w.tenant),
            Some(&w.admin.token),
            json!({"name": "ci", "role": "member"}),
        )
        .await;
    created.assert(201);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let projects = format!("/api/v1/tenants/{}/projects", w.tenant);
    app.get(&projects, Some(&key)).await.assert(200);

    app.post(
        &format!("/api/v1/admin/users/{}/disable", w.admin.id),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    // The key acts for its creator: a disabled creator grants nothing, reads or writes.
    app.get(&projects, Some(&key)).await.assert(401);
    app.post(&projects, Some(&key), json!({"name": "Sneaky"}))
        .await
        .assert(401);

    app.post(
        &format!("/api/v1/admin/users/{}/enable", w.admin.id),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    app.get(&projects, Some(&key)).await.assert(200);
}
