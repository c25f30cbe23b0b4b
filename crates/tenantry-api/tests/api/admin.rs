//! Platform administration of tenants: who may call `/api/v1/admin/…`, the tenant list, and
//! suspension (members are locked out with 403 `tenant_suspended` until reactivation).

use reqwest::Method;
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_core::{Email, Password};
use tenantry_db::{AdminScope, DbError, FromRow, Row};

use crate::helpers::{PASSWORD, TestApp, TestUser};

crate::backend_tests!(
    admin_routes_answer_only_platform_administrators,
    tenant_list_filters_and_pages_newest_first,
    suspension_locks_members_out_until_reactivation,
    suspension_and_reactivation_are_checked_and_audited,
    the_bootstrap_administrator_can_administer,
);

/// Registers `email` and makes it a platform administrator (as `create-superuser` does); the
/// session it logged in with works as administrator at once.
pub async fn platform_admin(app: &TestApp, email: &str) -> TestUser {
    let user = app.register(email).await;
    app.state
        .identity
        .create_superuser(
            Email::parse(email).unwrap(),
            Password::parse(PASSWORD).unwrap(),
        )
        .await
        .unwrap();
    user
}

/// One audit record as stored.
#[derive(Debug)]
pub struct AuditRow {
    pub action: String,
    pub actor_type: String,
    pub actor_user_id: Option<uuid::Uuid>,
    pub summary: Value,
    pub tenant_id: Option<uuid::Uuid>,
}

impl FromRow for AuditRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            action: row.string()?,
            actor_type: row.string()?,
            actor_user_id: row.opt_uuid()?,
            summary: serde_json::from_str(&row.string()?).unwrap(),
            tenant_id: row.opt_uuid()?,
        })
    }
}

/// The records of one audit chain (a tenant's or a user's id; nil for the platform), oldest
/// first, read through an administration transaction (RLS admits it on PostgreSQL).
pub async fn audit_chain(app: &TestApp, chain: &str) -> Vec<AuditRow> {
    let chain: uuid::Uuid = chain.parse().unwrap();
    let mut tx = app
        .state
        .db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let rows = tx
        .fetch_all(
            Query::select()
                .columns([
                    "action",
                    "actor_type",
                    "actor_user_id",
                    "summary",
                    "tenant_id",
                ])
                .from("audit_logs")
                .and_where(Expr::col("chain_id").eq(chain))
                .order_by("seq", Order::Asc),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows
}

const MISSING: &str = "01a20000-0000-7000-8000-000000000000";

async fn admin_routes_answer_only_platform_administrators(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    let guest_token = guest.body["access_token"].as_str().unwrap().to_owned();
    let t = &w.tenant;
    let u = &w.member.id;
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/api/v1/admin/tenants".into()),
        (Method::GET, format!("/api/v1/admin/tenants/{t}")),
        (Method::POST, format!("/api/v1/admin/tenants/{t}/suspend")),
        (
            Method::POST,
            format!("/api/v1/admin/tenants/{t}/reactivate"),
        ),
        (Method::GET, "/api/v1/admin/users".into()),
        (Method::GET, format!("/api/v1/admin/users/{u}")),
        (Method::POST, format!("/api/v1/admin/users/{u}/disable")),
        (Method::POST, format!("/api/v1/admin/users/{u}/enable")),
    ];
    for (method, path) in &routes {
        let body = (*method == Method::POST).then(|| json!({}));
        let anonymous = app.request(method.clone(), path, None, body.clone()).await;
        anonymous.assert_problem(401, "unauthenticated");
        for token in [
            &w.owner.token,
            &w.member.token,
            &w.outsider.token,
            &guest_token,
        ] {
            app.request(method.clone(), path, Some(token), body.clone())
                .await
                .assert_problem(403, "platform_admin_required");
        }
    }
    // Nothing changed: the tenant is active, the member can work.
    app.get(&format!("/api/v1/tenants/{t}"), Some(&w.member.token))
        .await
        .assert(200);
    // The administrator reaches them; a body may be left out entirely.
    app.get("/api/v1/admin/tenants", Some(&root.token))
        .await
        .assert(200);
    app.request(
        Method::POST,
        &format!("/api/v1/admin/tenants/{t}/suspend"),
        Some(&root.token),
        None,
    )
    .await
    .assert(200);
    // An administrator who is no longer one is refused at once (the flag is read per request).
    let mut tx = app.state.db.begin_write().await.unwrap();
    tx.execute(
        Query::update()
            .table("users")
            .value("is_platform_admin", false)
            .and_where(Expr::col("email").eq("root@example.com")),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.get("/api/v1/admin/tenants", Some(&root.token))
        .await
        .assert_problem(403, "platform_admin_required");
}

async fn list_tenants(app: &TestApp, admin: &TestUser, query: String) -> Value {
    let resp = app
        .get(&format!("/api/v1/admin/tenants{query}"), Some(&admin.token))
        .await;
    resp.assert(200);
    resp.body.clone()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn tenant_list_filters_and_pages_newest_first(app: TestApp) {
    let w = app.world().await; // "Acme" (4 members), then "Globex"
    let root = platform_admin(&app, "root@example.com").await;
    let initech = app.create_tenant(&w.owner, "Initech Labs").await;
    let umbrella = app.create_tenant(&w.outsider, "Umbrella 50%_off").await;
    let list = |query: String| list_tenants(&app, &root, query);
    let all = list(String::new()).await;
    assert_eq!(
        names(&all),
        ["Umbrella 50%_off", "Initech Labs", "Globex", "Acme"]
    );
    let acme = &all["items"][3];
    assert_eq!(acme["member_count"], 4);
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["slug"], "acme");
    assert_eq!(acme["deleted_at"], Value::Null);
    assert_eq!(acme["settings"]["event_retention_days"], 30);

    // Pages of two, newest first, until the cursor runs out.
    let first = list("?limit=2".into()).await;
    assert_eq!(names(&first), ["Umbrella 50%_off", "Initech Labs"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&second), ["Globex", "Acme"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // q: case-insensitive substring of name or slug; LIKE wildcards are literal.
    assert_eq!(names(&list("?q=INITECH".into()).await), ["Initech Labs"]);
    assert_eq!(names(&list("?q=ch-la".into()).await), ["Initech Labs"]);
    assert_eq!(names(&list("?q=50%25_".into()).await), ["Umbrella 50%_off"]);
    assert_eq!(names(&list("?q=%25".into()).await), ["Umbrella 50%_off"]);
    assert!(names(&list("?q=nobody".into()).await).is_empty());

    // status: suspended and soft-deleted tenants are listed too, and filterable.
    app.post(
        &format!("/api/v1/admin/tenants/{initech}/suspend"),
        Some(&root.token),
        json!({}),
    )
    .await
    .assert(200);
    app.delete(
        &format!("/api/v1/tenants/{umbrella}"),
        Some(&w.outsider.token),
    )
    .await
    .assert(204);
    assert_eq!(
        names(&list("?status=suspended".into()).await),
        ["Initech Labs"]
    );
    let deleted = list("?status=deleted".into()).await;
    assert_eq!(names(&deleted), ["Umbrella 50%_off"]);
    assert!(deleted["items"][0]["deleted_at"].is_string());
    assert_eq!(
        names(&list("?status=active".into()).await),
        ["Globex", "Acme"]
    );
    assert_eq!(
        names(&list("?status=active&q=glob".into()).await),
        ["Globex"]
    );

    // from/to bound created_at: [from, to).
    let globex_created = all["items"][2]["created_at"].as_str().unwrap().to_owned();
    let initech_created = all["items"][1]["created_at"].as_str().unwrap().to_owned();
    let enc = |t: &str| t.replace('+', "%2B");
    assert_eq!(
        names(&list(format!("?from={}", enc(&initech_created))).await),
        ["Umbrella 50%_off", "Initech Labs"]
    );
    assert_eq!(
        names(&list(format!("?to={}", enc(&globex_created))).await),
        ["Acme"]
    );
    assert_eq!(
        names(
            &list(format!(
                "?from={}&to={}",
                enc(&globex_created),
                enc(&initech_created)
            ))
            .await
        ),
        ["Globex"]
    );

    // Bad parameters → 422.
    for bad in [
        "?status=gone",
        "?from=yesterday",
        "?limit=0",
        "?cursor=!!",
        &format!("?q={}", "x".repeat(101)),
        &format!("?from={0}&to={0}", enc(&globex_created)),
    ] {
        app.get(&format!("/api/v1/admin/tenants{bad}"), Some(&root.token))
            .await
            .assert_problem(422, "validation_failed");
    }

    // One tenant, by id, with its member count; unknown and malformed ids → 404.
    let one = app
        .get(
            &format!("/api/v1/admin/tenants/{}", w.tenant),
            Some(&root.token),
        )
        .await;
    one.assert(200);
    assert_eq!(one.body["name"], "Acme");
    assert_eq!(one.body["member_count"], 4);
    for id in [MISSING, "nope"] {
        app.get(&format!("/api/v1/admin/tenants/{id}"), Some(&root.token))
            .await
            .assert_problem(404, "not_found");
    }
}

async fn suspension_locks_members_out_until_reactivation(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let t = &w.tenant;
    let project = app.create_project(t, &w.owner, "Store 1").await;
    let suspended = app
        .post(
            &format!("/api/v1/admin/tenants/{t}/suspend"),
            Some(&root.token),
            json!({"reason": "unpaid invoices"}),
        )
        .await;
    suspended.assert(200);
    assert_eq!(suspended.body["status"], "suspended");
    assert_eq!(suspended.body["id"], t.as_str());

    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{t}"), None),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{t}"),
            Some(json!({"name": "X"})),
        ),
        (Method::DELETE, format!("/api/v1/tenants/{t}"), None),
        (Method::GET, format!("/api/v1/tenants/{t}/settings"), None),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{t}/settings"),
            Some(json!({"event_retention_days": 7})),
        ),
        (Method::GET, format!("/api/v1/tenants/{t}/members"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{t}/members"),
            Some(json!({"user_id": w.outsider.id, "role": "viewer"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{t}/roles"), None),
        (Method::GET, format!("/api/v1/tenants/{t}/projects"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{t}/projects"),
            Some(json!({"name": "New"})),
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{t}/projects/{project}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{t}/projects/{project}"),
            None,
        ),
    ];
    for user in [&w.owner, &w.admin, &w.member, &w.viewer] {
        for (method, path, body) in &calls {
            let resp = app
                .request(method.clone(), path, Some(&user.token), body.clone())
                .await;
            assert_eq!(resp.status, 403, "{method} {path}: {}", resp.body);
            assert_eq!(resp.code(), "tenant_suspended", "{method} {path}");
        }
    }
    // Outsiders still cannot tell the tenant exists; the other tenant is unaffected.
    app.get(&format!("/api/v1/tenants/{t}"), Some(&w.outsider.token))
        .await
        .assert_problem(404, "not_found");
    app.get(
        &format!("/api/v1/tenants/{}/projects", w.other_tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(200);
    // Members still see it among their tenants, marked suspended.
    let mine = app
        .get("/api/v1/users/me/tenants", Some(&w.member.token))
        .await;
    assert_eq!(mine.body["items"][0]["tenant"]["status"], "suspended");

    let reactivated = app
        .post(
            &format!("/api/v1/admin/tenants/{t}/reactivate"),
            Some(&root.token),
            json!({}),
        )
        .await;
    reactivated.assert(200);
    assert_eq!(reactivated.body["status"], "active");
    for user in [&w.owner, &w.viewer] {
        app.get(&format!("/api/v1/tenants/{t}"), Some(&user.token))
            .await
            .assert(200);
        app.get(
            &format!("/api/v1/tenants/{t}/projects/{project}"),
            Some(&user.token),
        )
        .await
        .assert(200);
    }
    // Nothing a member attempted while suspended took effect.
    let tenant = app
        .get(&format!("/api/v1/tenants/{t}"), Some(&w.owner.token))
        .await;
    assert_eq!(tenant.body["name"], "Acme");
    assert_eq!(tenant.body["settings"]["event_retention_days"], 30);
    let projects = app
        .get(
            &format!("/api/v1/tenants/{t}/projects"),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(projects.body["items"].as_array().unwrap().len(), 1);
}

async fn suspension_and_reactivation_are_checked_and_audited(app: TestApp) {
    let w = app.world().await;
    let root = platform_admin(&app, "root@example.com").await;
    let t = &w.tenant;
    let suspend = format!("/api/v1/admin/tenants/{t}/suspend");
    let reactivate = format!("/api/v1/admin/tenants/{t}/reactivate");
    app.post(&reactivate, Some(&root.token), json!({}))
        .await
        .assert_problem(409, "conflict");
    app.post(
        &suspend,
        Some(&root.token),
        json!({"reason": "x".repeat(501)}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(&suspend, Some(&root.token), json!({"why": "no"}))
        .await
        .assert_problem(422, "validation_failed");
    app.request(Method::POST, &suspend, Some(&root.token), None)
        .await
        .assert(200);
    app.post(&suspend, Some(&root.token), json!({}))
        .await
        .assert_problem(409, "conflict");
    app.post(&reactivate, Some(&root.token), json!({"reason": "paid"}))
        .await
        .assert(200);
    for id in [MISSING, "not-a-uuid"] {
        app.post(
            &format!("/api/v1/admin/tenants/{id}/suspend"),
            Some(&root.token),
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
    }
    // A soft-deleted tenant can be neither suspended nor reactivated.
    app.delete(
        &format!("/api/v1/tenants/{}", w.other_tenant),
        Some(&w.outsider.token),
    )
    .await
    .assert(204);
    for action in ["suspend", "reactivate"] {
        app.post(
            &format!("/api/v1/admin/tenants/{}/{action}", w.other_tenant),
            Some(&root.token),
            json!({}),
        )
        .await
        .assert_problem(404, "not_found");
    }

    // Both changes are in the tenant's own chain, by the administrator, with the reason.
    let records = audit_chain(&app, t).await;
    let admin_records: Vec<&AuditRow> = records
        .iter()
        .filter(|r| r.action == "tenant.suspended" || r.action == "tenant.reactivated")
        .collect();
    assert_eq!(admin_records.len(), 2, "{records:?}");
    assert_eq!(admin_records[0].action, "tenant.suspended");
    assert_eq!(admin_records[1].action, "tenant.reactivated");
    assert_eq!(admin_records[1].summary["reason"], "paid");
    for r in &admin_records {
        assert_eq!(r.actor_type, "user");
        assert_eq!(r.actor_user_id.unwrap().to_string(), root.id);
        assert_eq!(r.tenant_id.unwrap().to_string(), *t);
    }
    let report = tenantry_audit::verify(&app.state.db, &AdminScope::for_housekeeping())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
}

async fn the_bootstrap_administrator_can_administer(app: TestApp) {
    let node = app
        .sibling(|config| {
            config.bootstrap_admin_email = Some("boot@example.com".into());
            config.bootstrap_admin_password = Some("bootstrap pass phrase".into());
        })
        .await;
    let login = node
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "boot@example.com", "password": "bootstrap pass phrase"}),
        )
        .await;
    login.assert(200);
    let token = login.body["access_token"].as_str().unwrap();
    let admins = node
        .get("/api/v1/admin/users?platform_admin=true", Some(token))
        .await;
    admins.assert(200);
    let items = admins.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["email"], "boot@example.com");
    assert_eq!(items[0]["status"], "active");
    // A restart with the variables still set creates nobody else.
    let again = app
        .sibling(|config| {
            config.bootstrap_admin_email = Some("boot2@example.com".into());
            config.bootstrap_admin_password = Some("bootstrap pass phrase".into());
        })
        .await;
    let admins = again
        .get("/api/v1/admin/users?platform_admin=true", Some(token))
        .await;
    assert_eq!(admins.body["items"].as_array().unwrap().len(), 1);
}
