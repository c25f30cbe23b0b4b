use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

crate::backend_tests!(
    register_creates_an_account,
    register_with_a_tenant_makes_the_user_its_owner,
    register_validates_every_field,
    register_rejects_duplicate_emails_case_insensitively,
    register_rejects_wrong_content_type_and_malformed_json,
    login_returns_tokens_and_tenants,
    login_failures_do_not_reveal_whether_the_email_exists,
    refresh_rotates_and_reuse_revokes_the_session,
    concurrent_refreshes_of_one_token_let_exactly_one_win,
    logout_ends_the_session_immediately,
    guest_sessions_are_anonymous,
    tampered_or_foreign_tokens_are_refused,
    bootstrap_creates_the_first_administrator_once,
    bootstrap_never_takes_over_an_existing_account,
);

fn bootstrap(email: &str, password: &str) -> impl FnOnce(&mut tenantry_api::config::Config) {
    let (email, password) = (email.to_owned(), password.to_owned());
    move |config| {
        config.bootstrap_admin_email = Some(email);
        config.bootstrap_admin_password = Some(password.into());
    }
}

async fn bootstrap_creates_the_first_administrator_once(app: TestApp) {
    let node = app
        .sibling(bootstrap("root@example.com", "root pass phrase"))
        .await;
    let login = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "root@example.com", "password": "root pass phrase"}),
        )
        .await;
    login.assert(200);
    assert_eq!(login.body["user"]["is_platform_admin"], true);
    // A later start with other values changes nothing: an administrator exists.
    let again = app
        .sibling(bootstrap("other@example.com", "other pass phrase"))
        .await;
    again
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "other@example.com", "password": "other pass phrase"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
}

async fn bootstrap_never_takes_over_an_existing_account(app: TestApp) {
    let squatter = app.register("root@example.com").await;
    let node = app
        .sibling(bootstrap("root@example.com", "the operator's pass"))
        .await;
    let me = node.get("/api/v1/users/me", Some(&squatter.token)).await;
    me.assert(200);
    assert_eq!(
        me.body["is_platform_admin"], false,
        "an account registered first must not be promoted"
    );
    // With the matching password the owner of the address is the operator: promote.
    let owner = app.sibling(bootstrap("root@example.com", PASSWORD)).await;
    let me = owner.get("/api/v1/users/me", Some(&squatter.token)).await;
    assert_eq!(me.body["is_platform_admin"], true);
}

async fn register_creates_an_account(app: TestApp) {
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": " Ada@Example.com ", "password": PASSWORD, "first_name": "Ada", "last_name": "Lovelace"}),
        )
        .await;
    r.assert(201);
    assert_eq!(r.body["user"]["email"], "ada@example.com");
    assert_eq!(r.body["user"]["first_name"], "Ada");
    assert_eq!(r.body["user"]["is_guest"], false);
    assert_eq!(r.body["user"]["email_verified"], false);
    assert!(r.body.get("tenant").is_none());
    assert!(r.body["user"].get("password_hash").is_none());
    app.login("ada@example.com").await;
}

async fn register_with_a_tenant_makes_the_user_its_owner(app: TestApp) {
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "o@example.com", "password": PASSWORD, "first_name": "O", "last_name": "W",
                   "tenant_name": "Acme Retail"}),
        )
        .await;
    r.assert(201);
    assert_eq!(r.body["tenant"]["name"], "Acme Retail");
    assert_eq!(r.body["tenant"]["slug"], "acme-retail");
    let user = app.login("o@example.com").await;
    let mine = app.get("/api/v1/users/me/tenants", Some(&user.token)).await;
    mine.assert(200);
    assert_eq!(
        mine.body["items"][0]["tenant"]["id"],
        r.body["tenant"]["id"]
    );
    assert_eq!(mine.body["items"][0]["role"], "owner");
}

async fn register_validates_every_field(app: TestApp) {
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "first_name": " ", "last_name": "x"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "first_name"]);
    for weak in ["password", "12345678", "aaaaaaaaaa"] {
        let r = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": "w@example.com", "password": weak, "first_name": "a", "last_name": "b"}),
            )
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "password");
    }
    // Missing and unknown fields are shape errors, also 422.
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "w@example.com"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "w@example.com", "password": PASSWORD, "first_name": "a", "last_name": "b", "admin": true}),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn register_rejects_duplicate_emails_case_insensitively(app: TestApp) {
    app.register("dup@example.com").await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "DUP@example.com", "password": PASSWORD, "first_name": "a", "last_name": "b"}),
        )
        .await;
    r.assert_problem(409, "already_exists");
    assert_eq!(r.body["errors"][0]["field"], "email");
}

async fn register_rejects_wrong_content_type_and_malformed_json(app: TestApp) {
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn login_returns_tokens_and_tenants(app: TestApp) {
    let user = app.register("l@example.com").await;
    let tenant = app.create_tenant(&user, "Shop").await;
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "L@example.com", "password": PASSWORD}),
        )
        .await;
    r.assert(200);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert!(
        r.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("tnr_")
    );
    assert_eq!(
        r.body["tenants"],
        json!([{"id": tenant, "name": "Shop", "role": "owner"}])
    );
    app.get("/api/v1/users/me", r.body["access_token"].as_str())
        .await
        .assert(200);
}

async fn login_failures_do_not_reveal_whether_the_email_exists(app: TestApp) {
    app.register("known@example.com").await;
    let login = |email: &'static str, password: &'static str| {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
    };
    let wrong = login("known@example.com", "wrong password!").await;
    let unknown = login("unknown@example.com", "wrong password!").await;
    let malformed = login("nonsense", "x").await;
    wrong.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, malformed.body);
}

async fn refresh_rotates_and_reuse_revokes_the_session(app: TestApp) {
    let user = app.register("r@example.com").await;
    let r = app.refresh(&user.refresh).await;
    r.assert(200);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, user.refresh);
    app.get("/api/v1/users/me", Some(&access)).await.assert(200);
    // The old token is spent: presenting it again is treated as theft.
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/users/me", Some(&access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&refresh)
        .await
        .assert_problem(401, "invalid_token");
    app.refresh("tnr_made-up")
        .await
        .assert_problem(401, "invalid_token");
    // Other sessions of the user are unaffected.
    let other = app.login("r@example.com").await;
    app.get("/api/v1/users/me", Some(&other.token))
        .await
        .assert(200);
}

/// QUALITY.md: 100 parallel refreshes of one token → exactly one wins, and the replays
/// revoke the session (the winner's new tokens die with it).
async fn concurrent_refreshes_of_one_token_let_exactly_one_win(app: TestApp) {
    let user = app.register("race@example.com").await;
    let app = std::sync::Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let app = app.clone();
        let token = user.refresh.clone();
        tasks.spawn(async move { app.refresh(&token).await });
    }
    let mut responses = Vec::new();
    while let Some(resp) = tasks.join_next().await {
        responses.push(resp.unwrap());
    }
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "exactly one of 100 parallel refreshes wins: {statuses:?}"
    );
    for r in responses.iter().filter(|r| r.status != 200) {
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "invalid_token"),
            "the losers answer 401 invalid_token: {}",
            r.body
        );
    }
    let winner = responses.iter().find(|r| r.status == 200).unwrap();
    app.get("/api/v1/users/me", winner.body["access_token"].as_str())
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(winner.body["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_token");
    app.get("/api/v1/users/me", Some(&user.token))
        .await
        .assert_problem(401, "invalid_token");
}

async fn logout_ends_the_session_immediately(app: TestApp) {
    let user = app.register("out@example.com").await;
    app.post("/api/v1/auth/logout", Some(&user.token), json!({}))
        .await
        .assert(204);
    app.get("/api/v1/users/me", Some(&user.token))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid_token");
    app.post("/api/v1/auth/logout", None, json!({}))
        .await
        .assert_problem(401, "unauthenticated");
}

async fn guest_sessions_are_anonymous(app: TestApp) {
    let r = app.post("/api/v1/auth/guest", None, json!({})).await;
    r.assert(201);
    let user = &r.body["user"];
    assert_eq!(user["is_guest"], true);
    assert!(user["email"].is_null());
    let name = user["display_name"].as_str().unwrap();
    assert!(name.starts_with("guest-") && name.len() == 10, "{name}");
    let me = app
        .get("/api/v1/users/me", r.body["access_token"].as_str())
        .await;
    me.assert(200);
    assert_eq!(me.body["id"], user["id"]);
    let refreshed = app.refresh(r.body["refresh_token"].as_str().unwrap()).await;
    refreshed.assert(200);
}

async fn tampered_or_foreign_tokens_are_refused(app: TestApp) {
    let user = app.register("t@example.com").await;
    let mut parts: Vec<String> = user.token.split('.').map(str::to_owned).collect();
    // Flip one character of the signature.
    let sig = &mut parts[2];
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    let tampered = parts.join(".");
    // alg=none with the same claims and no signature.
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let unsigned = format!("{none_header}.{}.", parts[1]);
    for token in [tampered.as_str(), unsigned.as_str(), "garbage", "a.b.c"] {
        app.get("/api/v1/users/me", Some(token))
            .await
            .assert_problem(401, "invalid_token");
    }
    // A refresh token is not an access token.
    app.get("/api/v1/users/me", Some(&user.refresh))
        .await
        .assert_problem(401, "invalid_token");
    let r = app
        .client
        .get(app.url("/api/v1/users/me"))
        .header("authorization", format!("Basic {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.get("/api/v1/users/me", None)
        .await
        .assert_problem(401, "unauthenticated");
}
