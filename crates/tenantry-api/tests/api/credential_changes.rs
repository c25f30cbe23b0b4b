//! Changing how an account is secured voids the mailed links that the change makes stale:
//! a reset link requested before a password change, a password reset, turning two-step
//! verification on or off, or an administrator disabling the account no longer works, and
//! answers exactly like an unknown link. A password reset also ends a pending enrolment.

use serde_json::{Value, json};
use tenantry_testkit::SmtpSink;

use crate::{
    admin::platform_admin,
    helpers::{PASSWORD, TestApp, unique_email},
    mfa::{code_at, now},
};

crate::mail_tests!(
    a_password_change_voids_reset_links_but_not_verification,
    turning_two_step_verification_on_or_off_voids_reset_links,
    a_password_reset_ends_a_pending_enrolment,
    disabling_an_account_voids_its_links,
);

const NEW_PASSWORD: &str = "a brand new secret";

/// Asks for a reset link and returns its token (one not among `seen`). The clock moves past
/// earlier requests' resend interval first.
async fn reset_token(app: &TestApp, sink: &SmtpSink, email: &str, seen: &[String]) -> String {
    app.clock.advance(std::time::Duration::from_secs(61));
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": email}),
    )
    .await
    .assert(202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let fresh = sink
            .messages(email)
            .into_iter()
            .filter(|m| m.subject.starts_with("Reset"))
            .filter_map(|m| m.link_token())
            .find(|t| !seen.contains(t));
        if let Some(token) = fresh {
            return token;
        }
        assert!(std::time::Instant::now() < deadline, "no reset mail");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn reset(app: &TestApp, token: &str) -> crate::helpers::Resp {
    app.post(
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "yet another secret"}),
    )
    .await
}

/// The problem a link answers with, without what differs per request.
fn answer(resp: &crate::helpers::Resp) -> Value {
    json!({
        "status": resp.status.as_u16(),
        "code": resp.body["code"],
        "title": resp.body["title"],
        "detail": resp.body["detail"],
    })
}

/// A voided reset link answers like a made-up one and changes nothing.
async fn assert_voided(app: &TestApp, token: &str) {
    let voided = reset(app, token).await;
    voided.assert_problem(400, "link_invalid");
    let unknown = reset(app, "no-such-token").await;
    assert_eq!(answer(&voided), answer(&unknown));
}

async fn a_password_change_voids_reset_links_but_not_verification(app: TestApp, sink: SmtpSink) {
    let email = unique_email("voided-by-change");
    app.sign_up(&email).await.assert(201);
    let verification = sink.wait_for(&email, 1).await[0].link_token().unwrap();
    let me = app.login(&email).await;
    let link = reset_token(&app, &sink, &email, &[]).await;

    app.post(
        "/api/v1/users/me/password",
        Some(&me.token),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .assert(204);
    assert_voided(&app, &link).await;
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": NEW_PASSWORD}),
    )
    .await
    .assert(200);

    // The verification link still proves the (unchanged) address.
    app.post(
        "/api/v1/auth/verify-email",
        None,
        json!({"token": verification}),
    )
    .await
    .assert(204);

    // A link requested after the change works, once.
    let later = reset_token(&app, &sink, &email, &[link]).await;
    reset(&app, &later).await.assert(204);
    assert_voided(&app, &later).await;
}

async fn turning_two_step_verification_on_or_off_voids_reset_links(app: TestApp, sink: SmtpSink) {
    let email = unique_email("voided-by-mfa");
    app.sign_up(&email).await.assert(201);
    let me = app.login(&email).await;
    let token = Some(me.token.as_str());
    let before_on = reset_token(&app, &sink, &email, &[]).await;

    let enrolled = app
        .post(
            "/api/v1/users/me/mfa/totp",
            token,
            json!({"current_password": PASSWORD}),
        )
        .await;
    enrolled.assert(201);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            token,
            json!({"code": code_at(&secret, now())}),
        )
        .await;
    confirmed.assert(200);
    assert_voided(&app, &before_on).await;

    let before_off = reset_token(&app, &sink, &email, std::slice::from_ref(&before_on)).await;
    let recovery = confirmed.body["recovery_codes"][0].as_str().unwrap();
    app.request(
        reqwest::Method::DELETE,
        "/api/v1/users/me/mfa/totp",
        token,
        Some(json!({"current_password": PASSWORD, "code": recovery})),
    )
    .await
    .assert(204);
    assert_voided(&app, &before_off).await;
    // The password is untouched.
    app.login(&email).await;
}

async fn a_password_reset_ends_a_pending_enrolment(app: TestApp, sink: SmtpSink) {
    let email = unique_email("pending-enrolment");
    app.sign_up(&email).await.assert(201);
    let me = app.login(&email).await;
    let enrolled = app
        .post(
            "/api/v1/users/me/mfa/totp",
            Some(&me.token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    enrolled.assert(201);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();

    let link = reset_token(&app, &sink, &email, &[]).await;
    reset(&app, &link).await.assert(204);
    let again = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": "yet another secret"}),
        )
        .await;
    again.assert(200);
    // Whoever started that enrolment cannot finish it now.
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        again.body["access_token"].as_str(),
        json!({"code": code_at(&secret, now())}),
    )
    .await
    .assert_problem(409, "conflict");
}

async fn disabling_an_account_voids_its_links(app: TestApp, sink: SmtpSink) {
    let root = platform_admin(&app, &unique_email("root")).await;
    let email = unique_email("voided-by-disable");
    let signed_up = app.sign_up(&email).await;
    signed_up.assert(201);
    let id = signed_up.body["user"]["id"].as_str().unwrap().to_owned();
    let verification = sink.wait_for(&email, 1).await[0].link_token().unwrap();
    let link = reset_token(&app, &sink, &email, &[]).await;

    for action in ["disable", "enable"] {
        app.post(
            &format!("/api/v1/admin/users/{id}/{action}"),
            Some(&root.token),
            json!({}),
        )
        .await
        .assert(200);
    }
    // Enabling the account again does not revive links sent before it was disabled.
    assert_voided(&app, &link).await;
    app.post(
        "/api/v1/auth/verify-email",
        None,
        json!({"token": verification}),
    )
    .await
    .assert_problem(400, "link_invalid");
    app.login(&email).await;
}
