//! Account records: sign-ups, sessions, profile changes and security events land in the
//! user's own chain, in the transaction of what they record; no secret reaches the table.

use reqwest::Method;
use sea_query::Query;
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};
use totp_rs::{Algorithm, Builder, Secret};

use super::{USER_AGENT, all_pages, platform_admin, send};
use crate::helpers::{PASSWORD, TestApp};

crate::backend_tests!(account_actions_land_in_the_users_chain_without_secrets);

fn totp(secret_b32: &str) -> String {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret_b32).unwrap())
        .build()
        .unwrap()
        .generate(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .to_string()
}

/// Every text column of an audit row.
struct Texts(Vec<Option<String>>);

const TEXT_COLUMNS: [&str; 8] = [
    "actor_type",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "user_agent",
    "summary",
];

impl FromRow for Texts {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        (0..TEXT_COLUMNS.len())
            .map(|_| row.opt_string())
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

async fn account_actions_land_in_the_users_chain_without_secrets(app: TestApp) {
    let email = "ada@example.com";
    app.sign_up(email).await.assert(201);
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];
    let login = |request_id: &'static str, password: &'static str| {
        let app = &app;
        async move {
            send(
                app,
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                request_id,
            )
            .await
        }
    };
    let first = login("req-login", PASSWORD).await;
    first.assert(200);
    let ada = first.body["user"]["id"].as_str().unwrap().to_owned();
    let token = first.body["access_token"].as_str().unwrap().to_owned();
    let refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend([token.clone(), refresh.clone()]);

    login("req-bad-login", "not the password")
        .await
        .assert_problem(401, "invalid_credentials");
    secrets.push("not the password".into());
    // An unknown address has no account, hence no chain to record it in.
    send(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
        "req-nobody",
    )
    .await
    .assert(401);

    send(
        &app,
        Method::PATCH,
        "/api/v1/users/me",
        Some(&token),
        Some(json!({"first_name": "Ada", "preferences": {"theme": "dark", "api_token": "pref-secret"}})),
        "req-profile",
    )
    .await
    .assert(200);
    secrets.push("pref-secret".into());

    let rotated = app.refresh(&refresh).await;
    rotated.assert(200);
    secrets.push(rotated.body["refresh_token"].as_str().unwrap().to_owned());
    secrets.push(rotated.body["access_token"].as_str().unwrap().to_owned());
    // Presenting the used token again revokes the session: a failure, by nobody we know.
    app.refresh(&refresh).await.assert(401);

    let again = login("req-login-2", PASSWORD).await;
    let token = again.body["access_token"].as_str().unwrap().to_owned();
    secrets.push(again.body["refresh_token"].as_str().unwrap().to_owned());
    let third = login("req-login-3", PASSWORD).await;
    secrets.push(third.body["refresh_token"].as_str().unwrap().to_owned());
    let sessions = app.get("/api/v1/users/me/sessions", Some(&token)).await;
    let other = sessions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/api/v1/users/me/sessions/{other}"), Some(&token))
        .await
        .assert(204);

    let password = "/api/v1/users/me/password";
    app.post(
        password,
        Some(&token),
        json!({"current_password": "wrong guess here", "new_password": "a brand new secret"}),
    )
    .await
    .assert(422);
    app.post(
        password,
        Some(&token),
        json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
    )
    .await
    .assert(204);
    secrets.extend(["wrong guess here".into(), "a brand new secret".into()]);

    let enrolled = app
        .post(
            "/api/v1/users/me/mfa/totp",
            Some(&token),
            json!({"current_password": "a brand new secret"}),
        )
        .await;
    enrolled.assert(201);
    let mfa_secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            Some(&token),
            json!({"code": totp(&mfa_secret)}),
        )
        .await;
    confirmed.assert(200);
    secrets.push(mfa_secret);
    secrets.extend(
        confirmed.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned()),
    );
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": "a brand new secret", "mfa_code": "12345"}),
    )
    .await
    .assert_problem(401, "mfa_invalid");
    app.post("/api/v1/auth/logout", Some(&token), json!({}))
        .await
        .assert(204);

    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    guest.assert(201);
    let guest_id = guest.body["user"]["id"].as_str().unwrap().to_owned();
    secrets.push(guest.body["refresh_token"].as_str().unwrap().to_owned());

    let root = platform_admin(&app).await;
    let chain = all_pages(
        &app,
        &format!("/api/v1/admin/audit-logs?user_id={ada}"),
        &root.token,
    )
    .await;
    let oldest_first: Vec<&str> = chain
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        oldest_first,
        [
            "user.registered",
            "session.created",
            "user.login_failed",
            "user.updated",
            "session.refreshed",
            "user.refresh_token_reused",
            "session.created",
            "session.created",
            "session.revoked",
            "user.login_failed",
            "user.password_changed",
            "user.mfa_enrollment_started",
            "user.mfa_enabled",
            "user.mfa_failed",
            "session.revoked",
        ]
    );
    for (i, record) in chain.iter().rev().enumerate() {
        assert_eq!(record["seq"], i + 1);
        assert_eq!(record["chain_id"], ada.as_str());
        assert!(record["tenant_id"].is_null());
    }
    let by_request = |id: &str| -> Value {
        chain
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no record of {id}"))
            .clone()
    };
    let failed = by_request("req-bad-login");
    assert_eq!(failed["action"], "user.login_failed");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(
        failed["actor"],
        json!({"type": "anonymous", "id": null, "user_id": null})
    );
    assert_eq!(failed["target"], json!({"type": "user", "id": ada}));
    assert_eq!(failed["ip"], "127.0.0.1");
    assert_eq!(failed["user_agent"], USER_AGENT);
    let signed_in = by_request("req-login");
    assert_eq!(signed_in["action"], "session.created");
    assert_eq!(signed_in["outcome"], "success");
    assert_eq!(signed_in["actor"]["id"], ada.as_str());
    assert_eq!(signed_in["target"]["type"], "session");
    assert_eq!(signed_in["summary"]["method"], "password");
    let profile = by_request("req-profile");
    assert_eq!(
        profile["summary"],
        json!({"first_name": "Ada", "preferences": {"theme": "dark", "api_token": "[redacted]"}})
    );
    let reused = chain
        .iter()
        .find(|r| r["action"] == "user.refresh_token_reused")
        .unwrap();
    assert_eq!(reused["outcome"], "failure");
    assert_eq!(reused["actor"]["type"], "anonymous");
    let revoked: Vec<&Value> = chain
        .iter()
        .filter(|r| r["action"] == "session.revoked")
        .collect();
    assert_eq!(revoked[0]["summary"]["reason"], "logout");
    assert_eq!(revoked[1]["summary"]["reason"], "revoked_by_user");
    assert_eq!(revoked[1]["target"]["id"], other.as_str());
    let wrong_current = chain
        .iter()
        .filter(|r| r["action"] == "user.login_failed")
        .find(|r| r["actor"]["type"] == "user")
        .unwrap();
    assert_eq!(
        wrong_current["summary"],
        json!({"during": "password_change"})
    );
    assert!(
        !chain.iter().any(|r| r["request_id"] == "req-nobody"),
        "unknown addresses are not recorded"
    );

    let guest_chain = all_pages(
        &app,
        &format!("/api/v1/admin/audit-logs?user_id={guest_id}"),
        &root.token,
    )
    .await;
    let guest_actions: Vec<&str> = guest_chain
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(guest_actions, ["session.created", "user.created"]);
    assert_eq!(guest_chain[1]["summary"]["guest"], true);

    // No password, token, TOTP secret or recovery code anywhere in the table.
    let rows: Vec<Texts> = app
        .state
        .db
        .read_all(Query::select().columns(TEXT_COLUMNS).from("audit_logs"))
        .await
        .unwrap();
    let admin_view = app
        .get("/api/v1/admin/audit-logs?limit=200", Some(&root.token))
        .await;
    assert!(!rows.is_empty());
    for row in &rows {
        for text in row.0.iter().flatten() {
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{secret:?} stored in {text:?}"
                );
            }
        }
    }
    let listed = admin_view.body.to_string();
    for secret in &secrets {
        assert!(!listed.contains(secret.as_str()), "{secret:?} listed");
    }
    let report =
        tenantry_audit::verify(&app.state.db, &tenantry_db::AdminScope::for_housekeeping())
            .await
            .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
}
