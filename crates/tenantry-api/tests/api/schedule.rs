//! The periodic tasks the contexts contribute: all registered, each runnable by name, and the
//! answers one context hands another (tenancy's members, kept by identity's pruning) honoured.

use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_db::AdminScope;

use crate::helpers::{TestApp, unique_email};

crate::backend_tests!(
    every_periodic_task_runs_by_name,
    pruning_keeps_a_guest_who_belongs_to_a_tenant
);

async fn every_periodic_task_runs_by_name(app: TestApp) {
    let schedule = tenantry_api::schedule(&app.state);
    let names: Vec<&str> = schedule.tasks().iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "rate_limits.shrink",
            "idempotency.prune",
            "mail.deliver",
            "mail.prune_sent",
            "identity.prune",
            "tenancy.purge_deleted_tenants",
            "files.sweep",
        ]
    );
    let every_node: Vec<&str> = schedule
        .tasks()
        .iter()
        .filter(|t| t.runs_on_every_node())
        .map(|t| t.name())
        .collect();
    assert_eq!(
        every_node,
        ["rate_limits.shrink"],
        "the rest work on shared rows"
    );
    for name in names {
        schedule.run_now(name).await.unwrap();
    }
    assert!(schedule.run_now("no.such_task").await.is_err());
}

async fn users_with_id(app: &TestApp, id: uuid::Uuid) -> i64 {
    let mut tx = app.state.db.begin_read().await.unwrap();
    let n = tx
        .fetch_one(
            Query::select()
                .expr(Expr::cust("COUNT(*)"))
                .from("users")
                .and_where(Expr::col("id").eq(id)),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n
}

async fn pruning_keeps_a_guest_who_belongs_to_a_tenant(app: TestApp) {
    let owner = app.register(&unique_email("holder")).await;
    let tenant: uuid::Uuid = app.create_tenant(&owner, "Holder").await.parse().unwrap();
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    let guest: uuid::Uuid = guest.body["user"]["id"].as_str().unwrap().parse().unwrap();
    let now = tenantry_core::now();
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    // The API no longer lets a guest join; older data may hold such members.
    tx.execute(
        Query::insert()
            .into_table("memberships")
            .columns(["tenant_id", "user_id", "role", "created_at", "updated_at"])
            .values_panic([
                tenant.into(),
                guest.into(),
                "member".into(),
                now.into(),
                now.into(),
            ]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Sessions are a platform table, outside the administration role's grants.
    let mut tx = app.state.db.begin_write().await.unwrap();
    tx.execute(
        Query::update()
            .table("sessions")
            .value("expires_at", now - chrono::TimeDelta::days(60))
            .and_where(Expr::col("user_id").eq(guest)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let schedule = tenantry_api::schedule(&app.state);
    schedule.run_now("identity.prune").await.unwrap();
    assert_eq!(users_with_id(&app, guest).await, 1, "a member is kept");
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    tx.execute(
        Query::delete()
            .from_table("memberships")
            .and_where(Expr::col("user_id").eq(guest)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    schedule.run_now("identity.prune").await.unwrap();
    assert_eq!(users_with_id(&app, guest).await, 0, "then pruned");
}
