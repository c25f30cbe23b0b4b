//! The audit trail over HTTP: what a tenant's trail shows and to whom, filters and paging,
//! and the administrators' view of every chain.

mod account;
mod projects;
mod store;

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_audit::{AuditActor, Chain, Entry, Outcome};
use tenantry_core::{ApiKeyId, Email, Origin, Password, TenantId, UserId};
use tenantry_db::AdminScope;

use crate::helpers::{PASSWORD, Resp, TestApp, TestUser};

crate::backend_tests!(
    tenant_trail_records_who_did_what_from_where,
    trail_filters_and_pages_newest_first,
    invalid_filters_answer_422,
    only_owners_and_admins_read_their_own_tenants_trail,
    platform_admins_read_every_chain,
);

pub const USER_AGENT: &str = "audit-test/1.0 (+https://example.test)";

/// A request with an `X-Request-Id` and a `User-Agent` of the test's choosing.
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    request_id: &str,
) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("x-request-id", request_id)
        .header("user-agent", USER_AGENT);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

/// Every item of a list, following `next_cursor`.
pub async fn all_pages(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let page = app.get(&url, Some(token)).await;
        page.assert(200);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn trail(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/audit-logs")
}

fn actions(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect()
}

/// Makes a platform administrator through the identity service and signs them in.
pub async fn platform_admin(app: &TestApp) -> TestUser {
    app.state
        .identity
        .create_superuser(
            Email::parse("root@example.com").unwrap(),
            Password::parse(PASSWORD).unwrap(),
        )
        .await
        .unwrap();
    app.login("root@example.com").await
}

/// Appends records straight to a tenant's chain, as services do inside their transactions.
async fn append(app: &TestApp, tenant: &str, actor: AuditActor, entries: Vec<Entry>) {
    let db = &app.state.db;
    let mut tx = db
        .begin_admin(&AdminScope::for_housekeeping())
        .await
        .unwrap();
    let origin = Origin {
        request_id: Some("seeded".into()),
        ip: None,
        user_agent: None,
    };
    let chain = Chain::Tenant(TenantId::from_uuid(tenant.parse().unwrap()));
    for entry in entries {
        tenantry_audit::record_in(&mut tx, chain, actor, &origin, entry)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn user(u: &TestUser) -> AuditActor {
    AuditActor::User(UserId::from_uuid(u.id.parse().unwrap()))
}

async fn tenant_trail_records_who_did_what_from_where(app: TestApp) {
    let owner = app.register("owner@example.com").await;
    let created = send(
        &app,
        Method::POST,
        "/api/v1/tenants",
        Some(&owner.token),
        Some(json!({"name": "Acme"})),
        "req-tenant-1",
    )
    .await;
    created.assert(201);
    let tenant = created.body["id"].as_str().unwrap();

    let items = all_pages(&app, &trail(tenant), &owner.token).await;
    let record = items
        .iter()
        .find(|i| i["action"] == "tenant.created")
        .unwrap_or_else(|| panic!("no tenant.created in {items:?}"));
    assert_eq!(record["tenant_id"], tenant);
    assert_eq!(record["chain_id"], tenant);
    assert_eq!(record["seq"], 1);
    assert_eq!(
        record["actor"],
        json!({"type": "user", "id": owner.id, "user_id": owner.id})
    );
    assert_eq!(record["target"], json!({"type": "tenant", "id": tenant}));
    assert_eq!(record["outcome"], "success");
    assert_eq!(record["request_id"], "req-tenant-1");
    assert_eq!(record["ip"], "127.0.0.1");
    assert_eq!(record["user_agent"], USER_AGENT);
    assert_eq!(record["summary"], json!({"name": "Acme", "slug": "acme"}));
    let hash = record["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    chrono::DateTime::parse_from_rfc3339(record["occurred_at"].as_str().unwrap()).unwrap();
    // Account records (the owner's sign-up and sign-in) are not part of a tenant's trail.
    assert!(items.iter().all(|i| i["tenant_id"] == tenant), "{items:?}");

    // An API key's action shows the key and the member behind it; secrets in a summary are
    // redacted before they are stored.
    let key = ApiKeyId::new();
    append(
        &app,
        tenant,
        AuditActor::ApiKey {
            key_id: key,
            owner: UserId::from_uuid(owner.id.parse().unwrap()),
        },
        vec![
            Entry::new("api_key.created", "api_key", key).with_summary(json!({
                "name": "ci", "key": "tnt_secret", "nested": [{"client_secret": "s"}]
            })),
        ],
    )
    .await;
    let latest = app
        .get(&format!("{}?limit=1", trail(tenant)), Some(&owner.token))
        .await;
    latest.assert(200);
    let record = &latest.body["items"][0];
    assert_eq!(record["action"], "api_key.created");
    assert_eq!(
        record["actor"],
        json!({"type": "api_key", "id": key.to_string(), "user_id": owner.id})
    );
    assert_eq!(
        record["summary"],
        json!({"name": "ci", "key": "[redacted]", "nested": [{"client_secret": "[redacted]"}]})
    );
    assert!(latest.body["next_cursor"].is_string());
}

async fn trail_filters_and_pages_newest_first(app: TestApp) {
    let owner = app.register("owner@example.com").await;
    let admin = app.register("admin@example.com").await;
    let tenant = app.create_tenant(&owner, "Acme").await;
    let key = ApiKeyId::new();
    append(
        &app,
        &tenant,
        user(&owner),
        vec![
            Entry::new("widget.created", "widget", "w1"),
            Entry::new("widget.created", "widget", "w2"),
        ],
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let middle = app
        .clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    app.clock.advance(std::time::Duration::from_secs(1));
    append(
        &app,
        &tenant,
        user(&owner),
        vec![
            Entry::new("widget.deleted", "widget", "w1"),
            Entry::new("gadget.updated", "gadget", "g1").with_outcome(Outcome::Denied),
        ],
    )
    .await;
    append(
        &app,
        &tenant,
        AuditActor::ApiKey {
            key_id: key,
            owner: UserId::from_uuid(admin.id.parse().unwrap()),
        },
        vec![Entry::new("widgetry.synced", "widget", "w2")],
    )
    .await;

    let list = |query: &str| {
        let url = format!("{}?{query}", trail(&tenant));
        let app = &app;
        let token = owner.token.clone();
        async move { all_pages(app, &url, &token).await }
    };
    let everything = list("").await;
    assert_eq!(
        actions(&everything),
        [
            "widgetry.synced",
            "gadget.updated",
            "widget.deleted",
            "widget.created",
            "widget.created",
            "tenant.created"
        ]
    );
    assert_eq!(
        actions(&list("action=widget.created").await),
        ["widget.created", "widget.created"]
    );
    // A prefix matches whole segments: `widget.*` is not `widgetry.synced`.
    assert_eq!(
        actions(&list("action=widget.*").await),
        ["widget.deleted", "widget.created", "widget.created"]
    );
    assert_eq!(
        actions(&list("target_type=gadget").await),
        ["gadget.updated"]
    );
    assert_eq!(
        actions(&list("target_type=widget&target_id=w2").await),
        ["widgetry.synced", "widget.created"]
    );
    assert_eq!(actions(&list("outcome=denied").await), ["gadget.updated"]);
    // A member's id finds their API keys' actions too; the key's id finds only the key's.
    assert_eq!(
        actions(&list(&format!("actor_id={}", admin.id)).await),
        ["widgetry.synced"]
    );
    assert_eq!(
        actions(&list(&format!("actor_id={key}")).await),
        ["widgetry.synced"]
    );
    assert_eq!(list(&format!("actor_id={}", owner.id)).await.len(), 5);
    let encoded = middle.replace('+', "%2B");
    assert_eq!(
        actions(&list(&format!("from={encoded}")).await),
        ["widgetry.synced", "gadget.updated", "widget.deleted"]
    );
    assert_eq!(
        actions(&list(&format!("to={encoded}")).await),
        ["widget.created", "widget.created", "tenant.created"]
    );
    assert!(
        list("action=widget.created&outcome=failure")
            .await
            .is_empty()
    );

    // Pages of 2: newest first, no overlap, nothing skipped, no cursor after the last.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for expected_len in [2, 2, 2] {
        let page = app
            .get(
                &format!("{}?limit=2&cursor={cursor}", trail(&tenant)),
                Some(&owner.token),
            )
            .await;
        page.assert(200);
        let items = page.body["items"].as_array().unwrap();
        assert_eq!(items.len(), expected_len);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => cursor.clear(),
        }
    }
    assert!(cursor.is_empty(), "the last page has no next_cursor");
    let ids: Vec<&str> = everything
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ids);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "ids descend");
    // Filters hold across pages.
    let first = app
        .get(
            &format!("{}?action=widget.*&limit=1", trail(&tenant)),
            Some(&owner.token),
        )
        .await;
    let next = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("{}?action=widget.*&limit=5&cursor={next}", trail(&tenant)),
            Some(&owner.token),
        )
        .await;
    assert_eq!(
        actions(second.body["items"].as_array().unwrap()),
        ["widget.created", "widget.created"]
    );
}

async fn invalid_filters_answer_422(app: TestApp) {
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "Acme").await;
    for (query, field) in [
        ("action=Project.Created", "action"),
        ("action=project.*.*", "action"),
        ("actor_id=someone", "actor_id"),
        ("outcome=maybe", "outcome"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=!!", "cursor"),
    ] {
        let r = app
            .get(&format!("{}?{query}", trail(&tenant)), Some(&owner.token))
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
    }
    let root = platform_admin(&app).await;
    for (query, field) in [
        ("tenant_id=acme", "tenant_id"),
        ("user_id=1", "user_id"),
        ("chain=galaxy", "chain"),
    ] {
        let r = app
            .get(
                &format!("/api/v1/admin/audit-logs?{query}"),
                Some(&root.token),
            )
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field, "{query}");
    }
}

async fn only_owners_and_admins_read_their_own_tenants_trail(app: TestApp) {
    let w = app.world().await;
    for reader in [&w.owner, &w.admin] {
        app.get(&trail(&w.tenant), Some(&reader.token))
            .await
            .assert(200);
    }
    for refused in [&w.member, &w.viewer] {
        let r = app.get(&trail(&w.tenant), Some(&refused.token)).await;
        r.assert_problem(403, "forbidden");
        assert!(r.body["detail"].as_str().unwrap().contains("audit:read"));
    }
    app.get(&trail(&w.tenant), Some(&w.outsider.token))
        .await
        .assert_problem(404, "not_found");

    // Tenant B's records never show under tenant A, however they are asked for.
    let theirs = all_pages(&app, &trail(&w.other_tenant), &w.outsider.token).await;
    assert!(!theirs.is_empty());
    let ours = all_pages(&app, &trail(&w.tenant), &w.owner.token).await;
    assert!(ours.iter().all(|i| i["tenant_id"] == w.tenant.as_str()));
    for record in &theirs {
        assert_eq!(record["tenant_id"], w.other_tenant.as_str());
        assert!(!ours.iter().any(|i| i["id"] == record["id"]));
        let target = record["target"]["id"].as_str().unwrap();
        let id = record["id"].as_str().unwrap();
        for query in [
            format!("target_id={target}"),
            format!("actor_id={}", w.outsider.id),
            format!("action={}", record["action"].as_str().unwrap()),
        ] {
            let found = all_pages(
                &app,
                &format!("{}?{query}", trail(&w.tenant)),
                &w.owner.token,
            )
            .await;
            assert!(!found.iter().any(|i| i["id"] == id), "{query}");
            assert!(found.iter().all(|i| i["tenant_id"] == w.tenant.as_str()));
        }
    }
    // Nor through another tenant's path with one's own token.
    app.get(&trail(&w.other_tenant), Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
}

async fn platform_admins_read_every_chain(app: TestApp) {
    let w = app.world().await;
    let admins = "/api/v1/admin/audit-logs";
    for refused in [&w.owner, &w.outsider] {
        app.get(admins, Some(&refused.token))
            .await
            .assert_problem(403, "platform_admin_required");
    }
    let root = platform_admin(&app).await;
    let everything = all_pages(&app, admins, &root.token).await;
    for tenant in [&w.tenant, &w.other_tenant] {
        assert!(
            everything
                .iter()
                .any(|i| i["action"] == "tenant.created" && i["tenant_id"] == tenant.as_str())
        );
    }
    let b = all_pages(
        &app,
        &format!("{admins}?tenant_id={}", w.other_tenant),
        &root.token,
    )
    .await;
    assert!(!b.is_empty());
    assert!(b.iter().all(|i| i["tenant_id"] == w.other_tenant.as_str()));

    // One account's chain: its sign-up and sign-in, without a tenant.
    let mine = all_pages(
        &app,
        &format!("{admins}?user_id={}", w.member.id),
        &root.token,
    )
    .await;
    assert_eq!(actions(&mine), ["session.created", "user.registered"]);
    for record in &mine {
        assert_eq!(record["chain_id"], w.member.id.as_str());
        assert!(record["tenant_id"].is_null());
    }
    assert_eq!(mine[1]["seq"], 1);
    assert_eq!(mine[0]["seq"], 2);
    let users = all_pages(&app, &format!("{admins}?chain=user"), &root.token).await;
    assert!(users.iter().all(|i| i["tenant_id"].is_null()));
    assert!(users.iter().any(|i| i["chain_id"] == w.owner.id.as_str()));
    let tenants = all_pages(&app, &format!("{admins}?chain=tenant"), &root.token).await;
    assert!(tenants.iter().all(|i| i["tenant_id"].is_string()));
    assert_eq!(
        users.len()
            + tenants.len()
            + all_pages(&app, &format!("{admins}?chain=platform"), &root.token)
                .await
                .len(),
        everything.len()
    );
    // The command line's records have no request behind them.
    let promoted = all_pages(
        &app,
        &format!("{admins}?action=user.created&actor_id={}", root.id),
        &root.token,
    )
    .await;
    assert!(
        promoted.is_empty(),
        "the CLI acts as system, not as the user"
    );
    let created = all_pages(
        &app,
        &format!("{admins}?user_id={}&action=user.created", root.id),
        &root.token,
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"]["type"], "system");
    assert!(created[0]["request_id"].is_null());
    let report = tenantry_audit::verify(&app.state.db, &AdminScope::for_housekeeping())
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.breaks);
    assert_eq!(report.records as usize, everything.len());
}
