//! Soft-deleted tenants are purged once their retention window has passed: every row of the
//! tenant goes (tenant tables through their cascades, audit records explicitly), live and
//! suspended tenants and the users stay, and the platform chain records the purge.

use chrono::TimeDelta;
use sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tenantry_db::AdminScope;
use tenantry_tenancy::{Purged, purge_deleted_tenants};

use crate::{
    admin::{audit_chain, platform_admin},
    helpers::TestApp,
};

crate::backend_tests!(purge_removes_tenants_past_their_window_and_nothing_else);

/// Tenant tables and the column naming the tenant in each.
const TABLES: [(&str, &str); 7] = [
    ("tenants", "id"),
    ("memberships", "tenant_id"),
    ("projects", "tenant_id"),
    ("roles", "tenant_id"),
    ("project_members", "tenant_id"),
    ("api_keys", "tenant_id"),
    ("audit_logs", "tenant_id"),
];

/// Rows of `tenant` per table, seen through an administration transaction.
async fn rows_of(app: &TestApp, tenant: &str) -> Vec<(&'static str, i64)> {
    let tenant: uuid::Uuid = tenant.parse().unwrap();
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let mut counts = Vec::new();
    for (table, column) in TABLES {
        let n: i64 = tx
            .fetch_one(
                Query::select()
                    .expr(Expr::cust("COUNT(*)"))
                    .from(table)
                    .and_where(Expr::col(column).eq(tenant)),
            )
            .await
            .unwrap();
        counts.push((table, n));
    }
    tx.commit().await.unwrap();
    counts
}

/// Rows the API cannot create yet (custom roles, project roles, API keys), so the cascades
/// are proven for them too.
async fn arrange_rows(app: &TestApp, tenant: &str, project: &str, member: &str, owner: &str) {
    let ids: Vec<uuid::Uuid> = [tenant, project, member, owner]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let (tenant, project, member, owner) = (ids[0], ids[1], ids[2], ids[3]);
    let now = tenantry_core::now();
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    tx.execute(
        Query::insert()
            .into_table("roles")
            .columns([
                "tenant_id",
                "id",
                "name",
                "permissions",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                tenant.into(),
                uuid::Uuid::now_v7().into(),
                "auditor".into(),
                json!(["audit:read"]).into(),
                now.into(),
                now.into(),
            ]),
    )
    .await
    .unwrap();
    tx.execute(
        Query::insert()
            .into_table("project_members")
            .columns([
                "tenant_id",
                "project_id",
                "user_id",
                "role",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                tenant.into(),
                project.into(),
                member.into(),
                "viewer".into(),
                now.into(),
                now.into(),
            ]),
    )
    .await
    .unwrap();
    tx.execute(
        Query::insert()
            .into_table("api_keys")
            .columns([
                "tenant_id",
                "id",
                "name",
                "prefix",
                "key_hash",
                "created_by",
                "created_at",
            ])
            .values_panic([
                tenant.into(),
                uuid::Uuid::now_v7().into(),
                "ci".into(),
                "tnt_abcd".into(),
                uuid::Uuid::now_v7().as_bytes().repeat(2).into(),
                owner.into(),
                now.into(),
            ]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn purge(app: &TestApp, retention: TimeDelta) -> Purged {
    purge_deleted_tenants(&app.state.db, &AdminScope::for_housekeeping(), retention)
        .await
        .unwrap()
}

async fn purge_removes_tenants_past_their_window_and_nothing_else(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let doomed = w.tenant.clone();
    let project = app.create_project(&doomed, &w.owner, "Store").await;
    app.patch(
        &format!("/api/v1/tenants/{doomed}/settings"),
        Some(&w.owner.token),
        json!({"event_retention_days": 7}),
    )
    .await
    .assert(200);
    arrange_rows(&app, &doomed, &project, &w.member.id, &w.owner.id).await;
    // A live tenant with the same kinds of rows, and a suspended one.
    let live = w.other_tenant.clone();
    let live_project = app.create_project(&live, &w.outsider, "Kept").await;
    arrange_rows(&app, &live, &live_project, &w.outsider.id, &w.outsider.id).await;
    let suspended = app.create_tenant(&w.outsider, "Paused").await;
    app.post(
        &format!("/api/v1/admin/tenants/{suspended}/suspend"),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    let live_before = rows_of(&app, &live).await;
    assert!(live_before.iter().all(|(_, n)| *n > 0), "{live_before:?}");

    app.delete(&format!("/api/v1/tenants/{doomed}"), Some(&w.owner.token))
        .await
        .assert(204);
    let before = rows_of(&app, &doomed).await;
    assert!(before.iter().all(|(_, n)| *n > 0), "{before:?}");
    let audit_records = before.last().unwrap().1;
    let shown = app
        .get(
            &format!("/api/v1/admin/tenants/{doomed}"),
            Some(&root.token),
        )
        .await;
    shown.assert(200);
    assert_eq!(shown.body["status"], "deleted");

    // Inside the window nothing goes.
    assert_eq!(purge(&app, TimeDelta::days(30)).await, Purged::default());
    assert_eq!(rows_of(&app, &doomed).await, before);

    // Past it, everything of that tenant goes, once.
    assert_eq!(
        purge(&app, TimeDelta::zero()).await,
        Purged {
            tenants: 1,
            audit_records: u64::try_from(audit_records).unwrap(),
        }
    );
    let after = rows_of(&app, &doomed).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    assert_eq!(purge(&app, TimeDelta::zero()).await, Purged::default());
    app.get(
        &format!("/api/v1/admin/tenants/{doomed}"),
        Some(&root.token),
    )
    .await
    .assert_problem(404, "not_found");

    // The live and the suspended tenant are untouched, and so are the people.
    assert_eq!(rows_of(&app, &live).await, live_before);
    app.get(
        &format!("/api/v1/tenants/{live}/projects/{live_project}"),
        Some(&w.outsider.token),
    )
    .await
    .assert(200);
    let paused = app
        .get(
            &format!("/api/v1/admin/tenants/{suspended}"),
            Some(&root.token),
        )
        .await;
    assert_eq!(paused.body["status"], "suspended");
    for user in [&w.owner, &w.member] {
        let again = app.login(&user.email).await;
        let mine = app
            .get("/api/v1/users/me/tenants", Some(&again.token))
            .await;
        assert_eq!(mine.body["items"], json!([]));
    }

    // The platform chain keeps the fact of the purge (by the system), not the data.
    let platform = audit_chain(&app, &uuid::Uuid::nil().to_string()).await;
    let purged = platform
        .iter()
        .find(|r| r.action == "tenant.purged")
        .unwrap();
    assert_eq!(purged.actor_type, "system");
    assert_eq!(purged.tenant_id, None);
    assert_eq!(purged.summary["audit_records"], audit_records);
    assert!(purged.summary["deleted_at"].is_string());
    let report = tenantry_audit::verify(&app.state.db, &AdminScope::for_housekeeping())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
}
