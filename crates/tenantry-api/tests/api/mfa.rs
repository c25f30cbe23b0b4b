//! TOTP two-step verification: enrolment, login with codes and recovery codes, replay
//! refusal, disabling, notifications and encryption at rest.

use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_db::{DbError, FromRow, Row};
use tenantry_testkit::SmtpSink;
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{PASSWORD, TestApp, unique_email};

crate::mail_tests!(totp_enrolment_login_recovery_and_disable);
crate::backend_tests!(
    mfa_endpoints_validate_and_need_a_session,
    mfa_changes_need_the_current_password,
    disabling_with_a_wrong_code_counts_as_a_failed_login,
);

struct Sealed(Vec<u8>);

impl FromRow for Sealed {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self(row.bytes()?))
    }
}

pub(crate) fn code_at(secret_b32: &str, unix: u64) -> String {
    let secret = Secret::try_from_base32(secret_b32).unwrap();
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(secret)
        .build()
        .unwrap()
        .generate(unix)
        .to_string()
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn login(app: &TestApp, email: &str, code: Option<&str>) -> crate::helpers::Resp {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(code) = code {
        body["mfa_code"] = json!(code);
    }
    app.post("/api/v1/auth/login", None, body).await
}

async fn totp_enrolment_login_recovery_and_disable(app: TestApp, sink: SmtpSink) {
    let email = unique_email("mfa");
    app.sign_up(&email).await.assert(201);
    let user = app.login(&email).await;
    let token = Some(user.token.as_str());

    let enrolled = app
        .post(
            "/api/v1/users/me/mfa/totp",
            token,
            json!({"current_password": PASSWORD}),
        )
        .await;
    enrolled.assert(201);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    let url = enrolled.body["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Tenantry:"), "{url}");
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    // Not active until confirmed.
    login(&app, &email, None).await.assert(200);

    let wrong = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            token,
            json!({"code": "000000"}),
        )
        .await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["field"], "code");
    let confirmed = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            token,
            json!({"code": code_at(&secret, now())}),
        )
        .await;
    confirmed.assert(200);
    let recovery: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let me = app.get("/api/v1/users/me", token).await;
    assert_eq!(me.body["mfa_enabled"], true);
    app.post(
        "/api/v1/users/me/mfa/totp",
        token,
        json!({"current_password": PASSWORD}),
    )
    .await
    .assert_problem(409, "conflict");

    // The secret is stored sealed, not as the base32 text or its bytes.
    let db = app.db().await;
    let Sealed(sealed) = db
        .read_optional(
            Query::select()
                .column("mfa_secret")
                .from("users")
                .and_where(Expr::col("email").eq(email.as_str())),
        )
        .await
        .unwrap()
        .unwrap();
    let raw = Secret::try_from_base32(&secret).unwrap().as_ref().to_vec();
    assert_eq!(sealed[0], 1, "sealed format");
    assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Password alone no longer signs in; the answer says why.
    let needs = login(&app, &email, None).await;
    needs.assert_problem(401, "mfa_required");
    assert!(needs.body.get("access_token").is_none());
    login(&app, &email, Some("123456"))
        .await
        .assert_problem(401, "mfa_invalid");
    // A wrong password with a right code is still just invalid credentials.
    let next = code_at(&secret, now() + 30);
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": "wrong password!", "mfa_code": next}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let ok = login(&app, &email, Some(&next)).await;
    ok.assert(200);
    assert_eq!(ok.body["user"]["mfa_enabled"], true);
    // The same code (time step) works once.
    login(&app, &email, Some(&next))
        .await
        .assert_problem(401, "mfa_invalid");

    // Recovery codes: any case and spacing, each once.
    let shouted = recovery[0].to_uppercase().replace('-', " ");
    login(&app, &email, Some(&shouted)).await.assert(200);
    login(&app, &email, Some(&recovery[0]))
        .await
        .assert_problem(401, "mfa_invalid");

    // Disabling needs the password and a valid code; a recovery code will do.
    app.request(
        reqwest::Method::DELETE,
        "/api/v1/users/me/mfa/totp",
        token,
        Some(json!({"current_password": PASSWORD, "code": "999999"})),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.request(
        reqwest::Method::DELETE,
        "/api/v1/users/me/mfa/totp",
        token,
        Some(json!({"current_password": PASSWORD, "code": recovery[1]})),
    )
    .await
    .assert(204);
    login(&app, &email, None).await.assert(200);
    let me = app.get("/api/v1/users/me", token).await;
    assert_eq!(me.body["mfa_enabled"], false);

    let mails = sink.wait_for(&email, 3).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        subjects.contains(&"Two-step verification was turned on for your Tenantry account"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Two-step verification was turned off for your Tenantry account"),
        "{subjects:?}"
    );
    let kinds = app.security_event_kinds(&user.token).await;
    for kind in [
        "mfa_enabled",
        "mfa_disabled",
        "mfa_failed",
        "recovery_code_used",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let events = crate::events::account::account_events(&app, &user.id).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["user.registered", "user.mfa_enabled", "user.mfa_disabled"]
    );
    assert_eq!(events[1].1["mfa_enabled"], true);
    assert_eq!(events[2].1["mfa_enabled"], false);
}

async fn mfa_endpoints_validate_and_need_a_session(app: TestApp) {
    let user = app.register(&unique_email("mfa-v")).await;
    let token = Some(user.token.as_str());
    app.post(
        "/api/v1/users/me/mfa/totp",
        None,
        json!({"current_password": PASSWORD}),
    )
    .await
    .assert_problem(401, "unauthenticated");
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        token,
        json!({"code": "123456"}),
    )
    .await
    .assert_problem(409, "conflict");
    app.request(
        reqwest::Method::DELETE,
        "/api/v1/users/me/mfa/totp",
        token,
        Some(json!({"current_password": PASSWORD, "code": "123456"})),
    )
    .await
    .assert_problem(409, "conflict");
    app.post("/api/v1/users/me/mfa/totp/confirm", token, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    // Guests have nothing to protect with a second factor (and no password to prove).
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    let guest_token = guest.body["access_token"].as_str().unwrap();
    app.post(
        "/api/v1/users/me/mfa/totp",
        Some(guest_token),
        json!({"current_password": "anything at all"}),
    )
    .await
    .assert_problem(409, "conflict");
}

fn disable_body(password: &str, code: &str) -> Option<serde_json::Value> {
    Some(json!({"current_password": password, "code": code}))
}

/// A stolen access token alone cannot put a second factor on the account or take it off:
/// both need the current password, answered and throttled exactly like a password change.
async fn mfa_changes_need_the_current_password(app: TestApp) {
    let email = unique_email("mfa-reauth");
    let user = app.register(&email).await;
    let token = Some(user.token.as_str());
    let enroll = "/api/v1/users/me/mfa/totp";

    // No password at all: the body's shape is wrong.
    app.post(enroll, token, json!({}))
        .await
        .assert_problem(422, "validation_failed");
    let wrong = app
        .post(enroll, token, json!({"current_password": "not it at all"}))
        .await;
    wrong.assert_problem(422, "validation_failed");
    // The very answer a password change gives.
    let change = app
        .post(
            "/api/v1/users/me/password",
            token,
            json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
        )
        .await;
    assert_eq!(wrong.body, change.body);
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    // Nothing was enrolled.
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        token,
        json!({"code": "123456"}),
    )
    .await
    .assert_problem(409, "conflict");
    let oversized = "x".repeat(300);
    app.post(enroll, token, json!({"current_password": oversized}))
        .await
        .assert_problem(422, "validation_failed");

    let enrolled = app
        .post(enroll, token, json!({"current_password": PASSWORD}))
        .await;
    enrolled.assert(201);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        token,
        json!({"code": code_at(&secret, now())}),
    )
    .await
    .assert(200);

    // Disabling: a right code with a wrong password does nothing.
    let code = code_at(&secret, now() + 30);
    let wrong = app
        .request(
            reqwest::Method::DELETE,
            enroll,
            token,
            disable_body("not it at all", &code),
        )
        .await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    app.request(
        reqwest::Method::DELETE,
        enroll,
        token,
        Some(json!({"code": code})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let me = app.get("/api/v1/users/me", token).await;
    assert_eq!(me.body["mfa_enabled"], true);
    let kinds = app.security_event_kinds(&user.token).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "login_failed").count(),
        3,
        "each wrong password is a failed login: {kinds:?}"
    );

    // Wrong passwords here count against the same throttle as sign-in: two more make five
    // consecutive failures, and the address is locked for the right password too.
    for _ in 0..2 {
        app.request(
            reqwest::Method::DELETE,
            enroll,
            token,
            disable_body("not it at all", &code),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.request(
        reqwest::Method::DELETE,
        enroll,
        token,
        disable_body(PASSWORD, &code),
    )
    .await
    .assert_problem(429, "rate_limited");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": PASSWORD, "mfa_code": code}),
    )
    .await
    .assert_problem(429, "rate_limited");
    let me = app.get("/api/v1/users/me", token).await;
    assert_eq!(me.body["mfa_enabled"], true);
}

/// Guessing codes through the disable endpoint (with the password) is throttled like
/// guessing them at sign-in.
async fn disabling_with_a_wrong_code_counts_as_a_failed_login(app: TestApp) {
    let email = unique_email("mfa-guess");
    let user = app.register(&email).await;
    let token = Some(user.token.as_str());
    let path = "/api/v1/users/me/mfa/totp";
    let enrolled = app
        .post(path, token, json!({"current_password": PASSWORD}))
        .await;
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        token,
        json!({"code": code_at(&secret, now())}),
    )
    .await
    .assert(200);
    for _ in 0..5 {
        let wrong = app
            .request(
                reqwest::Method::DELETE,
                path,
                token,
                disable_body(PASSWORD, "000000"),
            )
            .await;
        wrong.assert_problem(422, "validation_failed");
        assert_eq!(wrong.body["errors"][0]["field"], "code");
    }
    app.request(
        reqwest::Method::DELETE,
        path,
        token,
        disable_body(PASSWORD, &code_at(&secret, now() + 30)),
    )
    .await
    .assert_problem(429, "rate_limited");
    let kinds = app.security_event_kinds(&user.token).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "mfa_failed").count(),
        5,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "login_locked"), "{kinds:?}");
}
