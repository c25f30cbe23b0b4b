//! External identity providers (`auth.oidc`): tokens of a local issuer that serves discovery
//! and a JWKS are accepted as bearers; the user is found, linked or created; forged,
//! misdirected and stale tokens are refused; key rotation and an unreachable issuer are
//! handled. Every test runs on SQLite and PostgreSQL.

mod issuer;

use sea_query::{Expr, Query};
use serde_json::{Value, json};
use tenantry_api::config::Config;
use tenantry_identity::config::OidcProviderConfig;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};
use issuer::{Issuer, Key, now};

const AUD: &str = "https://api.tenantry.test";

macro_rules! oidc_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(crate::helpers::Backend::Sqlite, stringify!($name)).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(crate::helpers::Backend::Postgres, stringify!($name)).await; })*
        }
    };
}

oidc_tests!(
    first_token_creates_an_account_without_tenants_and_finds_it_again,
    the_same_subject_at_two_issuers_is_two_accounts,
    auth0_style_configuration_works_by_configuration_alone,
    a_verified_email_links_to_the_existing_account_when_enabled,
    unverified_or_unlinkable_emails_never_link,
    forged_misdirected_and_stale_tokens_are_refused,
    rotated_keys_are_fetched_and_unknown_kids_do_not_hammer_the_issuer,
    an_issuer_down_at_start_does_not_stop_the_server,
    an_external_user_joins_a_tenant_and_reads_its_projects,
    concurrent_first_requests_make_one_account,
    disabled_accounts_are_refused,
);

fn provider(issuer: &Issuer) -> OidcProviderConfig {
    OidcProviderConfig::new(issuer.issuer.clone(), AUD)
}

async fn spawn(
    backend: Backend,
    test: &str,
    providers: Vec<OidcProviderConfig>,
) -> Option<TestApp> {
    spawn_app_with(backend, test, move |config: &mut Config| {
        config.auth.oidc = providers;
    })
    .await
}

async fn me(app: &TestApp, token: &str) -> Value {
    let resp = app.get("/api/v1/users/me", Some(token)).await;
    resp.assert(200);
    resp.body.clone()
}

async fn count(app: &TestApp, table: &'static str) -> i64 {
    let n: Option<i64> = app
        .state
        .db
        .read_optional(Query::select().expr(Expr::cust("COUNT(*)")).from(table))
        .await
        .unwrap();
    n.unwrap_or(0)
}

async fn first_token_creates_an_account_without_tenants_and_finds_it_again(
    backend: Backend,
    test: &str,
) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/realms/acme", &[&key]).await;
    let Some(app) = spawn(backend, test, vec![provider(&idp)]).await else {
        return;
    };
    let extra = json!({"email": "Ada@Example.com", "email_verified": true,
        "given_name": "Ada", "family_name": "Lovelace"});
    let token = idp.token(&key, "user-1", AUD, extra.clone());
    let user = me(&app, &token).await;
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["last_name"], "Lovelace");
    assert_eq!(user["is_guest"], false);
    let tenants = app.get("/api/v1/users/me/tenants", Some(&token)).await;
    tenants.assert(200);
    assert_eq!(tenants.body["items"], json!([]), "{}", tenants.body);

    // A later token of the same subject (new iat, names changed) is the same account.
    let again = idp.token(
        &key,
        "user-1",
        AUD,
        json!({"iat": now() - 1, "given_name": "Augusta"}),
    );
    assert_eq!(me(&app, &again).await["id"], user["id"]);
    assert_eq!(count(&app, "external_identities").await, 1);
    assert_eq!(count(&app, "users").await, 1);

    // No session and no password here: those endpoints say so instead of failing oddly.
    let sessions = app.get("/api/v1/users/me/sessions", Some(&token)).await;
    sessions.assert(200);
    assert_eq!(sessions.body["items"], json!([]));
    app.post("/api/v1/auth/logout", Some(&token), json!({}))
        .await
        .assert_problem(409, "conflict");
    app.post(
        "/api/v1/users/me/password",
        Some(&token),
        json!({"current_password": "x", "new_password": "a brand new passphrase"}),
    )
    .await
    .assert_problem(409, "conflict");
    // …and password login does not work for it.
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    assert_eq!(
        me(&app, &token).await["id"],
        user["id"],
        "token still valid"
    );
}

async fn the_same_subject_at_two_issuers_is_two_accounts(backend: Backend, test: &str) {
    let key_a = Key::rsa(issuer::RSA_A, "a");
    let key_b = Key::p256(issuer::P256, "b");
    let one = Issuer::start("/one", &[&key_a]).await;
    let two = Issuer::start("/two", &[&key_b]).await;
    let second = OidcProviderConfig {
        algorithms: vec!["ES256".into()],
        ..provider(&two)
    };
    let Some(app) = spawn(backend, test, vec![provider(&one), second]).await else {
        return;
    };
    let at_one = me(&app, &one.token(&key_a, "same", AUD, json!({}))).await;
    let at_two = me(&app, &two.token(&key_b, "same", AUD, json!({}))).await;
    assert_ne!(at_one["id"], at_two["id"]);
    // Neither issuer's key verifies the other's tokens, even with its `iss`.
    let crossed = one.sign(
        &key_b.with_kid("a"),
        &two.claims("same", AUD, json!({"iss": one.issuer})),
    );
    app.get("/api/v1/users/me", Some(&crossed))
        .await
        .assert_problem(401, "invalid_token");
    let claims_two = two.claims("same", AUD, json!({}));
    let mislabelled = two.sign(&key_a.with_kid("b"), &claims_two);
    app.get("/api/v1/users/me", Some(&mislabelled))
        .await
        .assert_problem(401, "invalid_token");
}

async fn auth0_style_configuration_works_by_configuration_alone(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "auth0-key");
    // Auth0: issuer `https://TENANT.auth0.com/` (trailing slash), discovery below it,
    // `aud` an array with the API identifier and the userinfo URL, e-mail in namespaced
    // custom claims of the access token.
    let idp = Issuer::start("/", &[&key]).await;
    assert!(idp.issuer.ends_with('/'));
    let config = OidcProviderConfig {
        email_claim: "https://tenantry.test/email".into(),
        email_verified_claim: "https://tenantry.test/email_verified".into(),
        audience: vec!["https://api.example.com".into()],
        ..provider(&idp)
    };
    let Some(app) = spawn(backend, test, vec![config]).await else {
        return;
    };
    let token = idp.token(
        &key,
        "auth0|64f1c2",
        "unused",
        json!({
            "aud": ["https://api.example.com", format!("{}userinfo", idp.issuer)],
            "azp": "client-id", "scope": "openid profile email",
            "https://tenantry.test/email": "grace@example.com",
            "https://tenantry.test/email_verified": true,
            "email": "not-this@example.com",
        }),
    );
    let user = me(&app, &token).await;
    assert_eq!(user["email"], "grace@example.com");
    assert_eq!(user["email_verified"], true);
    // The issuer without the trailing slash is another issuer: refused.
    let bare = idp.token(
        &key,
        "auth0|64f1c2",
        "https://api.example.com",
        json!({"iss": idp.issuer.trim_end_matches('/')}),
    );
    app.get("/api/v1/users/me", Some(&bare))
        .await
        .assert_problem(401, "invalid_token");
}

async fn a_verified_email_links_to_the_existing_account_when_enabled(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/linking", &[&key]).await;
    let config = OidcProviderConfig {
        link_by_verified_email: true,
        ..provider(&idp)
    };
    let Some(app) = spawn(backend, test, vec![config]).await else {
        return;
    };
    let alice = app.register("alice@example.com").await;
    let token = idp.token(
        &key,
        "google|alice",
        AUD,
        json!({"email": "ALICE@example.com", "email_verified": true}),
    );
    let user = me(&app, &token).await;
    assert_eq!(user["id"], alice.id.as_str());
    assert_eq!(user["email_verified"], true, "the issuer vouched for it");
    let events = app
        .get("/api/v1/users/me/security-events", Some(&alice.token))
        .await;
    events.assert(200);
    assert!(
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "external_identity_linked"),
        "{}",
        events.body
    );
    // The password keeps working, and both credentials reach the same account.
    assert_eq!(app.login("alice@example.com").await.id, alice.id);
    assert_eq!(count(&app, "users").await, 1);
}

async fn unverified_or_unlinkable_emails_never_link(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let linking = Issuer::start("/linking", &[&key]).await;
    let plain = Issuer::start("/plain", &[&key]).await;
    let config = OidcProviderConfig {
        link_by_verified_email: true,
        ..provider(&linking)
    };
    let Some(app) = spawn(backend, test, vec![config, provider(&plain)]).await else {
        return;
    };
    let bob = app.register("bob@example.com").await;
    // Linking enabled, but the address is not verified by the issuer.
    let unverified = linking.token(
        &key,
        "u1",
        AUD,
        json!({"email": "bob@example.com", "email_verified": false}),
    );
    let other = me(&app, &unverified).await;
    assert_ne!(other["id"], bob.id.as_str());
    assert_eq!(other["email"], Value::Null, "the address is bob's");
    // Verified, but this issuer does not link.
    let no_linking = plain.token(
        &key,
        "u2",
        AUD,
        json!({"email": "bob@example.com", "email_verified": true}),
    );
    let third = me(&app, &no_linking).await;
    assert_ne!(third["id"], bob.id.as_str());
    assert_ne!(third["id"], other["id"]);
    assert_eq!(third["email"], Value::Null);
    // Bob's account is untouched.
    let bob_now = me(&app, &bob.token).await;
    assert_eq!(bob_now["email"], "bob@example.com");
    assert_eq!(bob_now["email_verified"], false);
    assert_eq!(count(&app, "users").await, 3);
}

async fn forged_misdirected_and_stale_tokens_are_refused(backend: Backend, test: &str) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let key = Key::rsa(issuer::RSA_A, "a");
    let ec = Key::p256(issuer::P256, "ec");
    let idp = Issuer::start("/battery", &[&key, &ec]).await;
    let Some(app) = spawn(backend, test, vec![provider(&idp)]).await else {
        return;
    };
    let valid = idp.token(&key, "s", AUD, json!({}));
    me(&app, &valid).await; // control: the forger makes tokens the server accepts
    let t = now();
    let mut cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            idp.token(&key, "s", "https://elsewhere", json!({})),
        ),
        (
            "aud missing",
            idp.token(&key, "s", AUD, json!({"aud": null})),
        ),
        (
            "unconfigured iss",
            idp.token(&key, "s", AUD, json!({"iss": "http://evil.test/"})),
        ),
        (
            "expired",
            idp.token(
                &key,
                "s",
                AUD,
                json!({"exp": t - 120, "iat": t - 400, "nbf": t - 400}),
            ),
        ),
        (
            "exp missing",
            idp.token(&key, "s", AUD, json!({"exp": null})),
        ),
        (
            "nbf ahead",
            idp.token(&key, "s", AUD, json!({"nbf": t + 600, "exp": t + 900})),
        ),
        (
            "iat ahead",
            idp.token(&key, "s", AUD, json!({"iat": t + 600})),
        ),
        (
            "sub missing",
            idp.token(&key, "s", AUD, json!({"sub": null})),
        ),
        ("sub empty", idp.token(&key, "", AUD, json!({}))),
        (
            "unknown kid",
            idp.sign(&key.with_kid("nope"), &idp.claims("s", AUD, json!({}))),
        ),
        (
            "other key, valid kid",
            idp.sign(
                &Key::rsa(issuer::OTHER_RSA, "a"),
                &idp.claims("s", AUD, json!({})),
            ),
        ),
        // ES256 is published but not allowed for this issuer (default RS256 only).
        (
            "algorithm not allowed",
            idp.sign(&ec, &idp.claims("s", AUD, json!({}))),
        ),
    ];
    // HS256 with the public key material as the HMAC secret (algorithm confusion).
    let claims = idp.claims("s", AUD, json!({}));
    for secret in [
        serde_json::to_vec(&key.jwk).unwrap(),
        B64.decode(key.jwk["n"].as_str().unwrap()).unwrap(),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("a".into());
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        cases.push(("HS256 with the public key", forged));
    }
    // alg none, with and without a signature.
    let payload = B64.encode(serde_json::to_vec(&claims).unwrap());
    for alg in ["none", "None"] {
        let header = B64.encode(json!({"alg": alg, "kid": "a", "typ": "JWT"}).to_string());
        cases.push(("alg none", format!("{header}.{payload}.")));
    }
    // RS256 header on a token whose kid names the EC key.
    cases.push((
        "kid of a key of another type",
        idp.sign(&key.with_kid("ec"), &claims),
    ));
    // A bit flip in the payload of a valid token.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut bytes = B64.decode(&parts[1]).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    parts[1] = B64.encode(bytes);
    cases.push(("bit flip", parts.join(".")));

    for (name, token) in &cases {
        let resp = app.get("/api/v1/users/me", Some(token)).await;
        assert_eq!(resp.status.as_u16(), 401, "{name}: {}", resp.body);
        assert_eq!(resp.code(), "invalid_token", "{name}");
    }
    assert_eq!(
        count(&app, "users").await,
        1,
        "only the control created an account"
    );
}

async fn rotated_keys_are_fetched_and_unknown_kids_do_not_hammer_the_issuer(
    backend: Backend,
    test: &str,
) {
    let old = Key::rsa(issuer::RSA_A, "2024");
    let new = Key::rsa(issuer::RSA_B, "2025");
    let steady = Issuer::start("/steady", &[&old]).await;
    let rotating = Issuer::start("/rotating", &[&old]).await;
    let eager = OidcProviderConfig {
        jwks_min_refresh_secs: 0,
        ..provider(&rotating)
    };
    let Some(app) = spawn(backend, test, vec![provider(&steady), eager]).await else {
        return;
    };
    // Default rate limit (10 s): made-up kids cost the issuer nothing.
    me(&app, &steady.token(&old, "s", AUD, json!({}))).await;
    let fetched = steady.jwks_hits();
    assert!(fetched >= 1);
    for i in 0..20 {
        let garbage = steady.sign(
            &old.with_kid(&format!("junk-{i}")),
            &steady.claims("s", AUD, json!({})),
        );
        app.get("/api/v1/users/me", Some(&garbage))
            .await
            .assert_problem(401, "invalid_token");
    }
    assert!(
        steady.jwks_hits() <= fetched + 1,
        "{} fetches after 20 unknown kids",
        steady.jwks_hits() - fetched
    );
    // Valid tokens of a known key cost no fetch at all.
    for _ in 0..5 {
        me(
            &app,
            &steady.token(
                &old,
                "s",
                AUD,
                json!({"jti": uuid::Uuid::now_v7().to_string()}),
            ),
        )
        .await;
    }
    assert!(steady.jwks_hits() <= fetched + 1);

    // The rotating issuer switches keys: a token with the new kid triggers one fetch and
    // works; the withdrawn key stops verifying (remembered tokens included).
    let before = rotating.token(&old, "r", AUD, json!({}));
    let user = me(&app, &before).await;
    rotating.publish(&[&new]);
    let hits = rotating.jwks_hits();
    let after = rotating.token(&new, "r", AUD, json!({}));
    assert_eq!(me(&app, &after).await["id"], user["id"]);
    assert_eq!(rotating.jwks_hits(), hits + 1);
    app.get("/api/v1/users/me", Some(&before))
        .await
        .assert_problem(401, "invalid_token");
}

async fn an_issuer_down_at_start_does_not_stop_the_server(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/flaky", &[&key]).await;
    idp.set_down(true);
    let config = OidcProviderConfig {
        jwks_min_refresh_secs: 0,
        ..provider(&idp)
    };
    let Some(app) = spawn(backend, test, vec![config]).await else {
        return;
    };
    // Our own tokens work regardless.
    let user = app.register("own@example.com").await;
    assert_eq!(me(&app, &user.token).await["id"], user.id.as_str());
    let token = idp.token(&key, "x", AUD, json!({}));
    app.get("/api/v1/users/me", Some(&token))
        .await
        .assert_problem(401, "invalid_token");
    // Once the issuer is back, its tokens work without a restart.
    idp.set_down(false);
    me(&app, &token).await;
}

async fn an_external_user_joins_a_tenant_and_reads_its_projects(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/members", &[&key]).await;
    let Some(app) = spawn(backend, test, vec![provider(&idp)]).await else {
        return;
    };
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "Acme").await;
    let project = app.create_project(&tenant, &owner, "Apollo").await;
    let by_id = idp.token(&key, "ext-1", AUD, json!({}));
    let by_email = idp.token(
        &key,
        "ext-2",
        AUD,
        json!({"email": "carol@example.com", "email_verified": true}),
    );
    let first = me(&app, &by_id).await;
    me(&app, &by_email).await;
    let projects = format!("/api/v1/tenants/{tenant}/projects");
    app.get(&projects, Some(&by_id))
        .await
        .assert_problem(404, "not_found");
    let members = format!("/api/v1/tenants/{tenant}/members");
    // Joining takes an accepted invitation to a verified address: an external account
    // without one cannot be added, by id or otherwise.
    app.post(
        &members,
        Some(&owner.token),
        json!({"user_id": first["id"], "role": "viewer"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.verify_email(&owner).await;
    app.post(
        &members,
        Some(&owner.token),
        json!({"email": "carol@example.com", "role": "member"}),
    )
    .await
    .assert(202);
    // The issuer vouched for carol's address (`email_verified`), so she can accept.
    let invitation = app.invitation_token(&tenant, "carol@example.com").await;
    app.post(
        &format!("/api/v1/invitations/{invitation}/accept"),
        Some(&by_email),
        json!({}),
    )
    .await
    .assert(200);
    app.get(&projects, Some(&by_id))
        .await
        .assert_problem(404, "not_found");
    for token in [&by_email] {
        let list = app.get(&projects, Some(token)).await;
        list.assert(200);
        assert_eq!(
            list.body["items"][0]["id"],
            project.as_str(),
            "{}",
            list.body
        );
        let tenants = app.get("/api/v1/users/me/tenants", Some(token)).await;
        assert_eq!(tenants.body["items"].as_array().unwrap().len(), 1);
    }
}

async fn concurrent_first_requests_make_one_account(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/race", &[&key]).await;
    let Some(app) = spawn(backend, test, vec![provider(&idp)]).await else {
        return;
    };
    let tokens: Vec<String> = (0..12)
        .map(|i| {
            idp.token(
                &key,
                "racer",
                AUD,
                json!({"jti": format!("t{i}"), "email": "racer@example.com"}),
            )
        })
        .collect();
    let answers = futures_join(&app, &tokens).await;
    let first = answers[0].clone();
    assert!(answers.iter().all(|id| *id == first), "{answers:?}");
    assert_eq!(count(&app, "users").await, 1);
    assert_eq!(count(&app, "external_identities").await, 1);
}

async fn futures_join(app: &TestApp, tokens: &[String]) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for token in tokens {
        let client = app.client.clone();
        let url = app.url("/api/v1/users/me");
        let token = token.clone();
        tasks.spawn(async move {
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = resp.json().await.unwrap();
            body["id"].as_str().unwrap().to_owned()
        });
    }
    tasks.join_all().await
}

async fn disabled_accounts_are_refused(backend: Backend, test: &str) {
    let key = Key::rsa(issuer::RSA_A, "a");
    let idp = Issuer::start("/disabled", &[&key]).await;
    let Some(app) = spawn(backend, test, vec![provider(&idp)]).await else {
        return;
    };
    let token = idp.token(&key, "d", AUD, json!({}));
    let user = me(&app, &token).await;
    // Disabled by a platform administrator: every token of the issuer is refused at once.
    let root = crate::admin::platform_admin(&app, "root@example.com").await;
    let path = format!("/api/v1/admin/users/{}", user["id"].as_str().unwrap());
    let (disable, enable) = (format!("{path}/disable"), format!("{path}/enable"));
    let r = app.post(&disable, Some(&root.token), json!({})).await;
    r.assert(200);
    app.get("/api/v1/users/me", Some(&token))
        .await
        .assert_problem(401, "invalid_token");
    let fresh = idp.token(&key, "d", AUD, json!({"jti": "again"}));
    app.get("/api/v1/users/me", Some(&fresh))
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(count(&app, "users").await, 2);
    let r = app.post(&enable, Some(&root.token), json!({})).await;
    r.assert(200);
    assert_eq!(me(&app, &fresh).await["id"], user["id"]);
}
