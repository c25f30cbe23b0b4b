//! E-mail verification, password recovery and password change, with mail delivered through
//! a real SMTP server (and, for the embedded default, into the data directory).

use serde_json::{Value, json};
use tenantry_testkit::SmtpSink;

use crate::helpers::{PASSWORD, TestApp, unique_email};

crate::mail_tests!(
    registration_mails_a_link_that_verifies_the_address_once,
    verification_can_be_resent_and_only_the_newest_link_works,
    forgot_password_mails_a_single_use_link_that_ends_every_session,
    forgot_password_answers_the_same_for_unknown_addresses,
    reset_links_expire,
    changing_the_password_needs_the_current_one_and_ends_other_sessions,
);

crate::backend_tests!(without_smtp_messages_are_written_to_the_data_directory);

async fn registration_mails_a_link_that_verifies_the_address_once(app: TestApp, sink: SmtpSink) {
    let email = unique_email("verify");
    app.sign_up(&email).await.assert(201);
    let mail = &sink.wait_for(&email, 1).await[0];
    assert_eq!(mail.subject, "Confirm your e-mail address for Tenantry");
    assert_eq!(
        mail.auth_user.as_deref(),
        Some("tenantry"),
        "SMTP AUTH was used"
    );
    assert!(mail.from.contains("no-reply@"), "{}", mail.from);
    assert!(
        mail.text
            .contains("https://app.example.test/verify-email?token=")
    );
    // minijinja escapes "/" in HTML as &#x2f; (still a valid href).
    assert!(
        mail.html
            .contains("app.example.test&#x2f;verify-email?token="),
        "{}",
        mail.html
    );
    let token = mail.link_token().expect("token in the link");

    let user = app.login(&email).await;
    let me = app.get("/api/v1/users/me", Some(&user.token)).await;
    assert_eq!(me.body["email_verified"], false);

    app.post("/api/v1/auth/verify-email", None, json!({"token": "nope"}))
        .await
        .assert_problem(400, "link_invalid");
    app.post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await
        .assert(204);
    let me = app.get("/api/v1/users/me", Some(&user.token)).await;
    assert_eq!(me.body["email_verified"], true);
    app.post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await
        .assert_problem(400, "link_invalid");
    assert!(
        app.security_event_kinds(&user.token)
            .await
            .contains(&"email_verified".to_owned())
    );
    let events = crate::events::account::account_events(&app, &user.id).await;
    let verified: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "user.email_verified")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(verified.len(), 1, "{events:?}");
    assert_eq!(verified[0]["email_verified"], true);

    // Nothing more to send once verified.
    app.post(
        "/api/v1/users/me/verification-email",
        Some(&user.token),
        json!({}),
    )
    .await
    .assert(202);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages(&email).len(), 1);
}

async fn verification_can_be_resent_and_only_the_newest_link_works(app: TestApp, sink: SmtpSink) {
    let email = unique_email("resend");
    app.sign_up(&email).await.assert(201);
    let first = sink.wait_for(&email, 1).await[0].link_token().unwrap();
    let user = app.login(&email).await;
    // Within a minute of the last mail nothing new is sent.
    app.post(
        "/api/v1/users/me/verification-email",
        Some(&user.token),
        json!({}),
    )
    .await
    .assert(202);
    // A minute later, a new link replaces the old one.
    app.clock.advance(std::time::Duration::from_secs(61));
    app.post("/api/v1/users/me/verification-email", None, json!({}))
        .await
        .assert_problem(401, "unauthenticated");
    app.post(
        "/api/v1/users/me/verification-email",
        Some(&user.token),
        json!({}),
    )
    .await
    .assert(202);
    let mails = sink.wait_for(&email, 2).await;
    assert_eq!(mails.len(), 2, "the throttled resend sent nothing");
    let second = mails[1].link_token().unwrap();
    assert_ne!(first, second);
    app.post("/api/v1/auth/verify-email", None, json!({"token": first}))
        .await
        .assert_problem(400, "link_invalid");
    app.post("/api/v1/auth/verify-email", None, json!({"token": second}))
        .await
        .assert(204);
}

async fn forgot_password_mails_a_single_use_link_that_ends_every_session(
    app: TestApp,
    sink: SmtpSink,
) {
    let email = unique_email("reset");
    app.sign_up(&email).await.assert(201);
    sink.wait_for(&email, 1).await;
    let a = app.login(&email).await;
    let b = app.login(&email).await;

    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": email.to_uppercase()}),
    )
    .await
    .assert(202);
    let mail = sink.wait_for(&email, 2).await.pop().unwrap();
    assert_eq!(mail.subject, "Reset your Tenantry password");
    assert!(mail.text.contains("expires in 60 minutes"), "{}", mail.text);
    let token = mail.link_token().unwrap();

    let weak = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "new_password": "short"}),
        )
        .await;
    weak.assert_problem(422, "validation_failed");
    assert_eq!(weak.body["errors"][0]["field"], "new_password");
    app.post(
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "a brand new secret"}),
    )
    .await
    .assert(204);

    // Every session ended, access and refresh alike.
    for user in [&a, &b] {
        app.get("/api/v1/users/me", Some(&user.token))
            .await
            .assert_problem(401, "invalid_token");
        app.refresh(&user.refresh).await.assert(401);
    }
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": "a brand new secret"}),
        )
        .await;
    login.assert(200);
    // Receiving the link proved the address.
    assert_eq!(login.body["user"]["email_verified"], true);
    app.post(
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "another new secret"}),
    )
    .await
    .assert_problem(400, "link_invalid");

    let notice = sink.wait_for(&email, 3).await.pop().unwrap();
    assert_eq!(notice.subject, "Your Tenantry password was changed");
    assert!(notice.text.contains("reset with an e-mailed link"));
    let token = login.body["access_token"].as_str().unwrap();
    let kinds = app.security_event_kinds(token).await;
    assert!(kinds.contains(&"password_reset".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"password_reset_requested".to_owned()),
        "{kinds:?}"
    );
}

async fn forgot_password_answers_the_same_for_unknown_addresses(app: TestApp, sink: SmtpSink) {
    let known = unique_email("known");
    let unknown = unique_email("unknown");
    app.sign_up(&known).await.assert(201);
    sink.wait_for(&known, 1).await;
    for email in [known.as_str(), unknown.as_str(), "not an address"] {
        let resp = app
            .post(
                "/api/v1/auth/forgot-password",
                None,
                json!({"email": email}),
            )
            .await;
        resp.assert(202);
        assert_eq!(resp.body, serde_json::Value::Null, "no body either way");
    }
    sink.wait_for(&known, 2).await;
    // A second request within the minute sends nothing more.
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": known}),
    )
    .await
    .assert(202);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages(&known).len(), 2);
    assert!(sink.messages(&unknown).is_empty());
}

async fn reset_links_expire(app: TestApp, sink: SmtpSink) {
    let email = unique_email("expire");
    app.sign_up(&email).await.assert(201);
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": email}),
    )
    .await
    .assert(202);
    let mails = sink.wait_for(&email, 2).await;
    let reset = mails
        .iter()
        .find(|m| m.subject.starts_with("Reset"))
        .unwrap()
        .link_token()
        .unwrap();
    // Past the link's hour.
    app.clock.advance(std::time::Duration::from_secs(3601));
    app.post(
        "/api/v1/auth/reset-password",
        None,
        json!({"token": reset, "new_password": "a brand new secret"}),
    )
    .await
    .assert_problem(400, "link_invalid");
    app.login(&email).await;
}

async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(
    app: TestApp,
    sink: SmtpSink,
) {
    let email = unique_email("change");
    app.sign_up(&email).await.assert(201);
    let me = app.login(&email).await;
    let other = app.login(&email).await;
    let path = "/api/v1/users/me/password";

    let wrong = app
        .post(
            path,
            Some(&me.token),
            json!({"current_password": "not it at all", "new_password": "a brand new secret"}),
        )
        .await;
    wrong.assert_problem(422, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    app.post(
        path,
        Some(&me.token),
        json!({"current_password": PASSWORD, "new_password": "password"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        path,
        None,
        json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
    )
    .await
    .assert_problem(401, "unauthenticated");
    app.post(
        path,
        Some(&me.token),
        json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
    )
    .await
    .assert(204);

    app.get("/api/v1/users/me", Some(&me.token))
        .await
        .assert(200);
    app.get("/api/v1/users/me", Some(&other.token))
        .await
        .assert_problem(401, "invalid_token");
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": "a brand new secret"}),
    )
    .await
    .assert(200);
    let mails = sink.wait_for(&email, 2).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject == "Your Tenantry password was changed")
    );
    let kinds = app.security_event_kinds(&me.token).await;
    assert!(kinds.contains(&"password_changed".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"login_failed".to_owned()),
        "the wrong current password: {kinds:?}"
    );

    // Guests have no password to change.
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    let token = guest.body["access_token"].as_str().unwrap();
    app.post(
        path,
        Some(token),
        json!({"current_password": "x", "new_password": "a brand new secret"}),
    )
    .await
    .assert_problem(409, "conflict");
}

async fn without_smtp_messages_are_written_to_the_data_directory(app: TestApp) {
    let email = unique_email("outbox");
    app.sign_up(&email).await.assert(201);
    let dir = app.data_dir().join("mail");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let message = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(path) = found {
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no .eml written");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert!(message.contains(&format!("To: {email}")), "{message}");
    assert!(message.contains("Subject: Confirm your e-mail address for Tenantry"));
    assert!(message.contains("multipart/alternative"));
}
