//! Text that looks like something else: e-mail addresses are folded to one canonical ASCII
//! form (fullwidth `ｊｏｅ` is `joe`; Cyrillic look-alikes are refused), and display text
//! refuses bidirectional overrides and invisible characters.

use serde_json::json;
use tenantry_testkit::SmtpSink;

use crate::helpers::{PASSWORD, TestApp, unique_email};

crate::backend_tests!(
    fullwidth_addresses_are_the_same_account,
    other_scripts_are_refused_with_a_reason,
    look_alike_spellings_share_the_login_throttle,
    accounts_stored_before_the_ascii_rule_keep_signing_in,
    hidden_characters_are_refused_in_display_text,
    file_names_cannot_hide_their_extension,
);

crate::mail_tests!(a_fullwidth_reset_request_reaches_the_account);

/// `abc-…@example.test` in fullwidth letters (the digits and punctuation too).
fn fullwidth(ascii: &str) -> String {
    ascii
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap(),
            c => c,
        })
        .collect()
}

fn register_body(email: &str) -> serde_json::Value {
    json!({"email": email, "password": PASSWORD, "first_name": "Joe", "last_name": "Doe"})
}

async fn fullwidth_addresses_are_the_same_account(app: TestApp) {
    let email = unique_email("joe");
    let joe = app.register(&email).await;
    let twin = app
        .post(
            "/api/v1/auth/register",
            None,
            register_body(&fullwidth(&email)),
        )
        .await;
    twin.assert_problem(409, "already_exists");
    assert_eq!(twin.body["errors"][0]["field"], "email");

    // Signing in with the fullwidth spelling finds the one account.
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": fullwidth(&email.to_uppercase()), "password": PASSWORD}),
        )
        .await;
    login.assert(200);
    let me = app.get("/api/v1/users/me", Some(&joe.token)).await;
    assert_eq!(login.body["user"]["id"], me.body["id"]);

    // A new fullwidth address is stored in its ASCII form.
    let other = unique_email("ann");
    let created = app
        .post(
            "/api/v1/auth/register",
            None,
            register_body(&fullwidth(&other)),
        )
        .await;
    created.assert(201);
    assert_eq!(created.body["user"]["email"], other.as_str());
}

async fn other_scripts_are_refused_with_a_reason(app: TestApp) {
    let email = unique_email("ada");
    app.register(&email).await;
    // The same address with a Cyrillic "а" (U+0430) for the Latin "a".
    let cyrillic = email.replacen('a', "\u{0430}", 1);
    let refused = app
        .post("/api/v1/auth/register", None, register_body(&cyrillic))
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "email");
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("ASCII"), "{message}");
    // It signs in to nothing.
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": cyrillic, "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    // An internationalised domain in its xn-- form is an ordinary address.
    let idn = format!("{}@xn--bcher-kva.example", uuid::Uuid::now_v7().simple());
    app.post("/api/v1/auth/register", None, register_body(&idn))
        .await
        .assert(201);
}

/// Each spelling of one address must not get its own free attempts.
async fn look_alike_spellings_share_the_login_throttle(app: TestApp) {
    let email = unique_email("throttled");
    app.register(&email).await;
    let wide = fullwidth(&email);
    let at = email.find('@').unwrap();
    for i in 0..5 {
        // A different mix of fullwidth and ASCII letters each time.
        let spelling: String = email
            .chars()
            .zip(wide.chars())
            .enumerate()
            .map(|(j, (narrow, broad))| if j == i || j > at { broad } else { narrow })
            .collect();
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": spelling, "password": "wrong password!"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .assert_problem(429, "rate_limited");
}

async fn accounts_stored_before_the_ascii_rule_keep_signing_in(app: TestApp) {
    let email = unique_email("legacy");
    app.register(&email).await;
    let legacy = format!("j\u{00F6}{email}");
    app.db()
        .await
        .execute_script(&format!(
            "UPDATE users SET email = '{legacy}' WHERE email = '{email}'"
        ))
        .await
        .unwrap();
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": legacy.to_uppercase(), "password": PASSWORD}),
        )
        .await;
    login.assert(200);
    assert_eq!(login.body["user"]["email"], legacy.as_str());
    // New accounts cannot take such an address.
    app.post(
        "/api/v1/auth/register",
        None,
        register_body(&unique_email("j\u{00F6}")),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn hidden_characters_are_refused_in_display_text(app: TestApp) {
    let refused = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": unique_email("rlo"), "password": PASSWORD,
                   "first_name": "Ada\u{202E}gnp.exe", "last_name": "Lovelace"}),
        )
        .await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "first_name");
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("bidirectional"), "{message}");

    let user = app.register(&unique_email("names")).await;
    let token = Some(user.token.as_str());
    let patched = app
        .patch(
            "/api/v1/users/me",
            token,
            json!({"last_name": "Love\u{2066}lace"}),
        )
        .await;
    patched.assert_problem(422, "validation_failed");
    assert_eq!(patched.body["errors"][0]["field"], "last_name");
    let tenant = app
        .post("/api/v1/tenants", token, json!({"name": "Acme\u{200B}"}))
        .await;
    tenant.assert_problem(422, "validation_failed");
    assert_eq!(tenant.body["errors"][0]["field"], "name");

    // Names in any script, and descriptions over several lines, are fine.
    app.patch(
        "/api/v1/users/me",
        token,
        json!({"first_name": "نرگس", "last_name": "Ñúñez"}),
    )
    .await
    .assert(200);
    let tenant = app.create_tenant(&user, "Acme").await;
    let projects = format!("/api/v1/tenants/{tenant}/projects");
    app.post(
        &projects,
        token,
        json!({"name": "Store 1", "description": "line one\nline two"}),
    )
    .await
    .assert(201);
    let project = app
        .post(
            &projects,
            token,
            json!({"name": "Store 2", "description": "harmless\u{202E}txt.exe"}),
        )
        .await;
    project.assert_problem(422, "validation_failed");
    assert_eq!(project.body["errors"][0]["field"], "description");
    let key = app
        .post(
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            token,
            json!({"name": "ci\u{200F}", "role": "viewer"}),
        )
        .await;
    key.assert_problem(422, "validation_failed");
    assert_eq!(key.body["errors"][0]["field"], "name");
}

async fn a_fullwidth_reset_request_reaches_the_account(app: TestApp, sink: SmtpSink) {
    let email = unique_email("wide-reset");
    app.sign_up(&email).await.assert(201);
    sink.wait_for(&email, 1).await;
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": fullwidth(&email)}),
    )
    .await
    .assert(202);
    let mails = sink.wait_for(&email, 2).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject == "Reset your Tenantry password"),
        "the link went to the account's own address"
    );
}

/// `invoice\u{202E}fdp.exe` displays as `invoiceexe.pdf`.
async fn file_names_cannot_hide_their_extension(app: TestApp) {
    use crate::documents::{Upload, documents, upload};
    let w = app.world().await;
    let token = &w.member.token;
    let disguised = "invoice\u{202E}fdp.exe";
    let refused = upload(&app, &w.tenant, token, Upload::text("x", disguised)).await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "filename");

    let stored = upload(&app, &w.tenant, token, Upload::text("x", "invoice.txt")).await;
    stored.assert(201);
    let id = stored.body["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &format!("{}/{id}", documents(&w.tenant)),
            Some(token),
            json!({"filename": disguised}),
        )
        .await;
    renamed.assert_problem(422, "validation_failed");
    assert_eq!(renamed.body["errors"][0]["field"], "filename");
}
