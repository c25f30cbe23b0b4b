//! Abuse resistance: per-account login throttling with exponential back-off (the same for
//! unknown addresses), per-IP limits on the unauthenticated identity endpoints, and the
//! security events they leave.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, unique_email};

crate::backend_tests!(
    failed_logins_lock_the_address_with_back_off,
    unknown_addresses_lock_exactly_like_real_ones,
    per_ip_limits_answer_429_with_retry_after,
    refresh_token_reuse_is_a_security_event,
    pruning_removes_what_can_never_matter_again,
);

async fn attempt(app: &TestApp, email: &str, password: &str) -> crate::helpers::Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

fn retry_after(resp: &crate::helpers::Resp) -> u64 {
    resp.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn failed_logins_lock_the_address_with_back_off(app: TestApp) {
    let email = unique_email("throttle");
    let user = app.register(&email).await;
    for i in 0..5 {
        attempt(&app, &email, "wrong password!")
            .await
            .assert_problem(401, "invalid_credentials");
        let _ = i;
    }
    // Locked now: even the right password waits, and no hash is spent on it.
    let locked = attempt(&app, &email, PASSWORD).await;
    locked.assert_problem(429, "rate_limited");
    assert!(
        (1..=2).contains(&retry_after(&locked)),
        "{:?}",
        locked.headers
    );
    app.clock.advance(std::time::Duration::from_millis(1100));
    // The sixth failure doubles the lock.
    attempt(&app, &email, "wrong password!")
        .await
        .assert_problem(401, "invalid_credentials");
    let locked = attempt(&app, &email, PASSWORD).await;
    locked.assert_problem(429, "rate_limited");
    assert!(
        (2..=3).contains(&retry_after(&locked)),
        "{:?}",
        locked.headers
    );
    app.clock.advance(std::time::Duration::from_millis(2100));
    // A success clears the record.
    attempt(&app, &email, PASSWORD).await.assert(200);
    attempt(&app, &email, "wrong password!")
        .await
        .assert_problem(401, "invalid_credentials");
    attempt(&app, &email, PASSWORD).await.assert(200);

    let kinds = app.security_event_kinds(&user.token).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "login_failed").count(),
        7,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "login_locked"), "{kinds:?}");
    let events = app
        .get("/api/v1/users/me/security-events", Some(&user.token))
        .await;
    assert_eq!(events.body["items"][0]["ip"], "127.0.0.1");
}

async fn unknown_addresses_lock_exactly_like_real_ones(app: TestApp) {
    let real = unique_email("real");
    app.register(&real).await;
    let ghost = unique_email("ghost");
    // The first lock lasts one second: each address is checked right after its failures.
    let mut answers = Vec::new();
    for email in [&real, &ghost] {
        for _ in 0..5 {
            attempt(&app, email, "wrong password!")
                .await
                .assert_problem(401, "invalid_credentials");
        }
        let locked = attempt(&app, email, "wrong password!").await;
        locked.assert_problem(429, "rate_limited");
        // Case and surrounding space do not make a new key.
        attempt(&app, &format!(" {} ", email.to_uppercase()), PASSWORD)
            .await
            .assert_problem(429, "rate_limited");
        answers.push(locked.body);
    }
    assert_eq!(answers[0], answers[1], "identical answers");
}

async fn per_ip_limits_answer_429_with_retry_after(app: TestApp) {
    let limited = app
        .sibling(|config| {
            config.rate_limits.login_per_minute = 3;
            config.rate_limits.register_per_hour = 2;
            config.rate_limits.password_reset_per_hour = 2;
            config.rate_limits.guest_per_hour = 2;
            config.rate_limits.token_per_minute = 2;
        })
        .await;
    let email = unique_email("ip");
    limited.sign_up(&email).await.assert(201);
    limited.sign_up(&unique_email("ip2")).await.assert(201);
    let refused = limited.sign_up(&unique_email("ip3")).await;
    refused.assert_problem(429, "rate_limited");
    assert!(retry_after(&refused) >= 1);

    for _ in 0..3 {
        attempt(&limited, &email, PASSWORD).await.assert(200);
    }
    let refused = attempt(&limited, &email, PASSWORD).await;
    refused.assert_problem(429, "rate_limited");
    assert!(
        (1..=21).contains(&retry_after(&refused)),
        "{:?}",
        refused.headers
    );

    for _ in 0..2 {
        limited
            .post(
                "/api/v1/auth/forgot-password",
                None,
                json!({"email": email}),
            )
            .await
            .assert(202);
    }
    limited
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": email}),
        )
        .await
        .assert_problem(429, "rate_limited");
    for _ in 0..2 {
        limited
            .post("/api/v1/auth/guest", None, json!({}))
            .await
            .assert(201);
    }
    limited
        .post("/api/v1/auth/guest", None, json!({}))
        .await
        .assert_problem(429, "rate_limited");
    for _ in 0..2 {
        limited
            .post("/api/v1/auth/verify-email", None, json!({"token": "x"}))
            .await
            .assert_problem(400, "link_invalid");
    }
    limited
        .post("/api/v1/auth/verify-email", None, json!({"token": "x"}))
        .await
        .assert_problem(429, "rate_limited");
    // Authenticated endpoints are not affected by these limits.
    let user = app.login(&email).await;
    limited
        .get("/api/v1/users/me", Some(&user.token))
        .await
        .assert(200);
}

async fn refresh_token_reuse_is_a_security_event(app: TestApp) {
    let user = app.register(&unique_email("reuse")).await;
    app.refresh(&user.refresh).await.assert(200);
    app.refresh(&user.refresh).await.assert(401);
    let fresh = app.login(&user.email).await;
    let kinds = app.security_event_kinds(&fresh.token).await;
    assert!(
        kinds.iter().any(|k| k == "refresh_token_reused"),
        "{kinds:?}"
    );
}

async fn count(app: &TestApp, table: &str, condition: &str) -> i64 {
    use sea_query::{Expr, Func, Query};
    app.db()
        .await
        .read_optional(
            Query::select()
                .expr(Func::count(Expr::cust("*")))
                .from(sea_query::Alias::new(table.to_owned()))
                .and_where(Expr::cust(condition.to_owned())),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn pruning_removes_what_can_never_matter_again(app: TestApp) {
    let live = app.post("/api/v1/auth/guest", None, json!({})).await;
    let gone = app.post("/api/v1/auth/guest", None, json!({})).await;
    let live_id = live.body["user"]["id"].as_str().unwrap().to_owned();
    let gone_id = gone.body["user"]["id"].as_str().unwrap().to_owned();
    let email = unique_email("prune");
    app.register(&email).await;
    for _ in 0..5 {
        attempt(&app, &unique_email("nobody"), "wrong password!").await;
    }
    let db = app.db().await;
    db.execute_script(&format!(
        "UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE user_id = '{gone_id}';
         UPDATE refresh_tokens SET expires_at = '2000-01-01T00:00:00.000000Z'
             WHERE session_id IN (SELECT id FROM sessions WHERE user_id = '{gone_id}');
         UPDATE user_tokens SET expires_at = '2000-01-01T00:00:00.000000Z';
         UPDATE login_throttle SET window_started_at = '2000-01-01T00:00:00.000000Z',
             locked_until = '2000-01-01T00:00:00.000000Z';"
    ))
    .await
    .unwrap();
    let pruned = app
        .state
        .identity
        .prune(&[tenantry_tenancy::member_user_ids()])
        .await
        .unwrap();
    assert_eq!(pruned.guests, 1, "{pruned:?}");
    assert_eq!(pruned.refresh_tokens, 1, "{pruned:?}");
    assert_eq!(pruned.sessions, 1, "{pruned:?}");
    assert_eq!(pruned.link_tokens, 1, "the verification token: {pruned:?}");
    assert_eq!(
        pruned.throttle_entries, 5,
        "one per address tried: {pruned:?}"
    );
    assert_eq!(count(&app, "users", &format!("id = '{gone_id}'")).await, 0);
    assert_eq!(count(&app, "users", &format!("id = '{live_id}'")).await, 1);
    let token = live.body["access_token"].as_str().unwrap();
    app.get("/api/v1/users/me", Some(token)).await.assert(200);
    app.login(&email).await;
    // Nothing left to do the second time.
    let again = app
        .state
        .identity
        .prune(&[tenantry_tenancy::member_user_ids()])
        .await
        .unwrap();
    assert_eq!(again, tenantry_identity::Pruned::default());
}
