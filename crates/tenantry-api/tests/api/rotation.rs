//! Signing-key rotation as a running server sees it: old tokens keep working until the old
//! key retires, new tokens carry the new `kid`, other nodes follow without a restart.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sea_query::{Expr, ExprTrait, Query};

use crate::helpers::{TestApp, kid_of};

crate::backend_tests!(
    rotation_keeps_old_tokens_until_the_old_key_retires,
    other_nodes_learn_a_new_key_from_its_first_token_at_most_once_per_gap,
);

async fn count_keys(app: &TestApp) -> i64 {
    let count: Option<i64> = app
        .state
        .db
        .read_optional(
            Query::select()
                .expr(sea_query::Func::count(Expr::col("kid")))
                .from("signing_keys"),
        )
        .await
        .unwrap();
    count.unwrap()
}

async fn rotation_keeps_old_tokens_until_the_old_key_retires(app: TestApp) {
    let user = app.register("rot@example.com").await;
    let old_kid = kid_of(&user.token);
    assert_eq!(app.jwks_kids().await, std::slice::from_ref(&old_kid));

    let before = Utc::now();
    let rotation = app.state.identity.rotate_keys().await.unwrap();
    assert_ne!(rotation.kid, old_kid);
    assert_eq!(rotation.retiring.len(), 1, "{rotation:?}");
    assert_eq!(rotation.retiring[0].0, old_kid);
    // Access TTL (900 s) + verification leeway (30 s) + one reload interval (60 s).
    let grace = (rotation.retiring[0].1 - before).num_seconds();
    assert!(
        (990..=995).contains(&grace),
        "the old key must verify for TTL + leeway + reload interval, got {grace} s"
    );

    app.get("/api/v1/users/me", Some(&user.token))
        .await
        .assert(200);
    let again = app.login("rot@example.com").await;
    assert_eq!(
        kid_of(&again.token),
        rotation.kid,
        "new logins are signed with the new key"
    );
    let refreshed = app.refresh(&again.refresh).await;
    refreshed.assert(200);
    assert_eq!(
        kid_of(refreshed.body["access_token"].as_str().unwrap()),
        rotation.kid,
        "refreshed tokens are signed with the new key"
    );
    let mut both = vec![old_kid.clone(), rotation.kid.clone()];
    both.sort();
    assert_eq!(app.jwks_kids().await, both, "both keys are published");

    // Instead of waiting 990 s, bring the old key's retirement forward to 1 s from now.
    let retires_at = tenantry_core::now() + TimeDelta::seconds(1);
    let mut tx = app.state.db.begin_write().await.unwrap();
    tx.execute(
        Query::update()
            .table("signing_keys")
            .value("retired_at", retires_at)
            .and_where(Expr::col("kid").eq(old_kid.as_str())),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        app.state.identity.reload_keys().await.unwrap(),
        "a changed retirement is a change"
    );
    app.get("/api/v1/users/me", Some(&user.token))
        .await
        .assert(200);
    while Utc::now() < retires_at + TimeDelta::seconds(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = app.get("/api/v1/users/me", Some(&user.token)).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (401, "invalid_token"),
        "a token of a retired key (memoised before) must be refused: {}",
        refused.body
    );
    app.get("/api/v1/users/me", Some(&again.token))
        .await
        .assert(200);
    app.state.identity.reload_keys().await.unwrap();
    assert_eq!(
        app.jwks_kids().await,
        std::slice::from_ref(&rotation.kid),
        "a retired key is no longer published"
    );

    // The next rotation deletes the retired key and retires the current one.
    assert_eq!(count_keys(&app).await, 2);
    let next = app.state.identity.rotate_keys().await.unwrap();
    assert_eq!(next.deleted, 1);
    assert_eq!(next.retiring.len(), 1);
    assert_eq!(next.retiring[0].0, rotation.kid);
    assert_eq!(count_keys(&app).await, 2);
    app.get("/api/v1/users/me", Some(&again.token))
        .await
        .assert(200);
}

async fn other_nodes_learn_a_new_key_from_its_first_token_at_most_once_per_gap(app: TestApp) {
    let other = app.sibling(|_| {}).await;
    let user = app.register("nodes@example.com").await;
    let first_kid = kid_of(&user.token);
    let second = app.state.identity.rotate_keys().await.unwrap();
    let fresh = app.login("nodes@example.com").await;
    assert_eq!(kid_of(&fresh.token), second.kid);
    assert_eq!(
        other.jwks_kids().await,
        std::slice::from_ref(&first_kid),
        "not reloaded yet"
    );

    // The first token of the new key makes the other node reload (and closes the gate).
    let opened = std::time::Instant::now();
    other
        .get("/api/v1/users/me", Some(&fresh.token))
        .await
        .assert(200);
    assert!(other.jwks_kids().await.contains(&second.kid));

    // Within the gap, another unknown kid does not reload: refused even though it is real.
    let third = app.state.identity.rotate_keys().await.unwrap();
    let refreshed = app.refresh(&fresh.refresh).await;
    refreshed.assert(200);
    let newest = refreshed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&newest), third.kid);
    let early = other.get("/api/v1/users/me", Some(&newest)).await;
    if opened.elapsed() < tenantry_identity::UNKNOWN_KID_RELOAD_GAP {
        assert_eq!(
            early.status.as_u16(),
            401,
            "unknown kids may reload at most once per gap: {}",
            early.body
        );
    }
    while opened.elapsed() < tenantry_identity::UNKNOWN_KID_RELOAD_GAP + Duration::from_millis(200)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    other
        .get("/api/v1/users/me", Some(&newest))
        .await
        .assert(200);
    // Tokens of the retiring keys still verify on both nodes.
    for node in [&app, &other] {
        node.get("/api/v1/users/me", Some(&user.token))
            .await
            .assert(200);
    }
}
