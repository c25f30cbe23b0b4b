//! Domain events: every change of a tenant's state writes its CloudEvent and its audit record
//! in one transaction (`tenantry_events::record_change`), with `data` the resource as its GET
//! returns it (plus `changes` for updates). Each test performs changes over HTTP and checks
//! exactly which events were written.

use sea_query::{Expr, ExprTrait, Func, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};
use tenantry_events::{EventScope, EventType};

use crate::admin::platform_admin;
use crate::documents::{Upload, documents, upload};
use crate::helpers::{TestApp, TestUser};

pub mod account;
mod catalog;

crate::backend_tests!(
    every_tenant_change_emits_its_event,
    document_and_file_changes_emit_their_events,
    a_refused_change_writes_neither_record_nor_event,
);

/// One stored event.
#[derive(Debug)]
struct Ev {
    event_type: String,
    source: String,
    subject: String,
    tenant: uuid::Uuid,
    user: Option<uuid::Uuid>,
    data: Value,
}

impl FromRow for Ev {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            event_type: row.string()?,
            source: row.string()?,
            subject: row.string()?,
            tenant: row.uuid()?,
            user: row.opt_uuid()?,
            data: row.json()?,
        })
    }
}

/// Reads a tenant's events in order and hands out the ones not seen yet.
struct Outbox<'a> {
    app: &'a TestApp,
    tenant: String,
    seen: usize,
}

impl<'a> Outbox<'a> {
    fn new(app: &'a TestApp, tenant: &str) -> Self {
        Self {
            app,
            tenant: tenant.to_owned(),
            seen: 0,
        }
    }

    async fn all(&self) -> Vec<Ev> {
        let tenant: uuid::Uuid = self.tenant.parse().unwrap();
        self.app
            .db()
            .await
            .read_all(
                Query::select()
                    .columns(["type", "source", "subject", "tenant_id", "user_id", "data"])
                    .from("domain_events")
                    .and_where(Expr::col("tenant_id").eq(tenant))
                    .order_by("id", Order::Asc),
            )
            .await
            .unwrap()
    }

    /// The events written since the last call: exactly `expected` (type, subject, actor).
    async fn next(&mut self, expected: &[(EventType, String, &TestUser)]) -> Vec<Ev> {
        let all = self.all().await;
        let new: Vec<Ev> = all.into_iter().skip(self.seen).collect();
        self.seen += new.len();
        let got: Vec<(&str, &str, Option<String>)> = new
            .iter()
            .map(|e| {
                (
                    e.event_type.as_str(),
                    e.subject.as_str(),
                    e.user.map(|u| u.to_string()),
                )
            })
            .collect();
        let want: Vec<(&str, &str, Option<String>)> = expected
            .iter()
            .map(|(t, s, u)| (t.as_str(), s.as_str(), Some(u.id.clone())))
            .collect();
        assert_eq!(got, want);
        for e in &new {
            assert_eq!(e.source, format!("/tenants/{}", self.tenant));
            assert_eq!(e.tenant.to_string(), self.tenant);
            assert!(e.data.is_object(), "{}", e.data);
        }
        new
    }
}

/// `data` of an update without its `changes`, which it must list as `changes`.
fn updated(event: &Ev, changes: &[&str]) -> Value {
    let mut data = event.data.clone();
    let listed = data.as_object_mut().unwrap().remove("changes").unwrap();
    assert_eq!(listed, json!(changes), "{}", event.event_type);
    data
}

async fn every_tenant_change_emits_its_event(app: TestApp) {
    let w = app.world().await;
    let t = w.tenant.clone();
    let base = format!("/api/v1/tenants/{t}");
    let owner = Some(w.owner.token.as_str());
    let mut outbox = Outbox::new(&app, &t);

    // The world: the tenant, then three members joining by invitation.
    let mut expected = vec![(EventType::TenantCreated, format!("tenants/{t}"), &w.owner)];
    let mut invitations = Vec::new();
    for joined in [&w.admin, &w.member, &w.viewer] {
        let inv = Query::select()
            .column("id")
            .from("invitations")
            .and_where(Expr::col("tenant_id").eq(t.parse::<uuid::Uuid>().unwrap()))
            .and_where(Expr::expr(Func::lower(Expr::col("email"))).eq(joined.email.clone()))
            .to_owned();
        let id: uuid::Uuid = app.db().await.read_optional(&inv).await.unwrap().unwrap();
        invitations.push(id);
        expected.push((
            EventType::InvitationCreated,
            format!("invitations/{id}"),
            &w.owner,
        ));
        expected.push((
            EventType::InvitationAccepted,
            format!("invitations/{id}"),
            joined,
        ));
        expected.push((
            EventType::MemberAdded,
            format!("members/{}", joined.id),
            joined,
        ));
    }
    let world = outbox.next(&expected).await;
    let tenant_now = app.get(&base, owner).await;
    assert_eq!(world[0].data, tenant_now.body);
    let member = app
        .get(&format!("{base}/members/{}", w.viewer.id), owner)
        .await;
    assert_eq!(world[9].data, member.body);
    assert_eq!(world[8].data["role"], "viewer");
    assert_eq!(world[8].data["email"], w.viewer.email);

    // Tenant name and settings.
    let renamed = app.patch(&base, owner, json!({"name": "Acme 2"})).await;
    renamed.assert(200);
    let e = outbox
        .next(&[(EventType::TenantUpdated, format!("tenants/{t}"), &w.owner)])
        .await;
    assert_eq!(updated(&e[0], &["name"]), renamed.body);
    app.patch(
        &format!("{base}/settings"),
        owner,
        json!({"event_retention_days": 90}),
    )
    .await
    .assert(200);
    let e = outbox
        .next(&[(EventType::TenantUpdated, format!("tenants/{t}"), &w.owner)])
        .await;
    assert_eq!(
        updated(&e[0], &["settings"]),
        app.get(&base, owner).await.body
    );

    // Projects and their members.
    let created = app
        .post(&format!("{base}/projects"), owner, json!({"name": "Store"}))
        .await;
    created.assert(201);
    let p = created.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .next(&[(EventType::ProjectCreated, format!("projects/{p}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, created.body);
    let changed = app
        .patch(
            &format!("{base}/projects/{p}"),
            owner,
            json!({"description": "the flagship"}),
        )
        .await;
    changed.assert(200);
    let e = outbox
        .next(&[(EventType::ProjectUpdated, format!("projects/{p}"), &w.owner)])
        .await;
    assert_eq!(updated(&e[0], &["description"]), changed.body);
    let pm = format!("{base}/projects/{p}/members/{}", w.member.id);
    let assigned = app.put(&pm, owner, json!({"role": "viewer"})).await;
    assigned.assert(200);
    let subject = format!("projects/{p}/members/{}", w.member.id);
    let e = outbox
        .next(&[(EventType::ProjectMemberAssigned, subject.clone(), &w.owner)])
        .await;
    assert_eq!(e[0].data, assigned.body);
    app.delete(&pm, owner).await.assert(204);
    let e = outbox
        .next(&[(EventType::ProjectMemberRemoved, subject, &w.owner)])
        .await;
    assert_eq!(e[0].data, assigned.body);

    // Custom roles.
    let role = app
        .post(
            &format!("{base}/roles"),
            owner,
            json!({"name": "auditor", "permissions": ["projects:read"]}),
        )
        .await;
    role.assert(201);
    let r = role.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .next(&[(EventType::RoleCreated, format!("roles/{r}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, role.body);
    let role = app
        .patch(
            &format!("{base}/roles/{r}"),
            owner,
            json!({"description": "reads"}),
        )
        .await;
    role.assert(200);
    let e = outbox
        .next(&[(EventType::RoleUpdated, format!("roles/{r}"), &w.owner)])
        .await;
    assert_eq!(updated(&e[0], &["description"]), role.body);
    app.delete(&format!("{base}/roles/{r}"), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(EventType::RoleDeleted, format!("roles/{r}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, role.body);

    // API keys: never the secret.
    let key = app
        .post(
            &format!("{base}/api-keys"),
            owner,
            json!({"name": "ci", "role": "viewer"}),
        )
        .await;
    key.assert(201);
    let k = key.body["id"].as_str().unwrap().to_owned();
    let shown = app.get(&format!("{base}/api-keys/{k}"), owner).await;
    shown.assert(200);
    let e = outbox
        .next(&[(EventType::ApiKeyCreated, format!("api-keys/{k}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, shown.body);
    assert!(
        !e[0]
            .data
            .to_string()
            .contains(key.body["key"].as_str().unwrap())
    );
    app.delete(&format!("{base}/api-keys/{k}"), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(EventType::ApiKeyRevoked, format!("api-keys/{k}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, shown.body);

    // Members and invitations.
    let demoted = app
        .patch(
            &format!("{base}/members/{}", w.member.id),
            owner,
            json!({"role": "viewer"}),
        )
        .await;
    demoted.assert(200);
    let e = outbox
        .next(&[(
            EventType::MemberRoleChanged,
            format!("members/{}", w.member.id),
            &w.owner,
        )])
        .await;
    assert_eq!(e[0].data, demoted.body);
    let invite = json!({"email": "newcomer@example.com", "role": "member"});
    let first = app
        .post(&format!("{base}/invitations"), owner, invite.clone())
        .await;
    first.assert(201);
    let i1 = first.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .next(&[(
            EventType::InvitationCreated,
            format!("invitations/{i1}"),
            &w.owner,
        )])
        .await;
    assert_eq!(e[0].data, first.body);
    let second = app
        .post(&format!("{base}/invitations"), owner, invite)
        .await;
    second.assert(201);
    let i2 = second.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .next(&[
            (
                EventType::InvitationRevoked,
                format!("invitations/{i1}"),
                &w.owner,
            ),
            (
                EventType::InvitationCreated,
                format!("invitations/{i2}"),
                &w.owner,
            ),
        ])
        .await;
    assert_eq!(e[0].data, first.body);
    app.delete(&format!("{base}/invitations/{i2}"), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(
            EventType::InvitationRevoked,
            format!("invitations/{i2}"),
            &w.owner,
        )])
        .await;
    assert_eq!(e[0].data, second.body);
    let leaving = app
        .get(&format!("{base}/members/{}", w.viewer.id), owner)
        .await;
    app.delete(&format!("{base}/members/{}", w.viewer.id), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(
            EventType::MemberRemoved,
            format!("members/{}", w.viewer.id),
            &w.owner,
        )])
        .await;
    assert_eq!(e[0].data, leaving.body);

    let project = app.get(&format!("{base}/projects/{p}"), owner).await;
    app.delete(&format!("{base}/projects/{p}"), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(EventType::ProjectDeleted, format!("projects/{p}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, project.body);

    // A platform administrator suspends and reactivates; the owner deletes.
    let root = platform_admin(&app, "root@example.com").await;
    let root_token = Some(root.token.as_str());
    for (action, event, status) in [
        ("suspend", EventType::TenantSuspended, "suspended"),
        ("reactivate", EventType::TenantReactivated, "active"),
    ] {
        app.post(
            &format!("/api/v1/admin/tenants/{t}/{action}"),
            root_token,
            json!({"reason": "checking events"}),
        )
        .await
        .assert(200);
        let e = outbox.next(&[(event, format!("tenants/{t}"), &root)]).await;
        assert_eq!(e[0].data["status"], status);
        assert_eq!(e[0].data["name"], "Acme 2");
    }
    let before = app.get(&base, owner).await;
    app.delete(&base, owner).await.assert(204);
    let e = outbox
        .next(&[(EventType::TenantDeleted, format!("tenants/{t}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, before.body);

    // Every event type of tenancy was written above; documents and files have their test.
    let mut seen: Vec<String> = outbox
        .all()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    seen.sort();
    seen.dedup();
    let mut tenancy: Vec<String> = EventType::ALL
        .iter()
        .filter(|t| t.scope() == EventScope::Tenant)
        .map(|t| t.as_str())
        .filter(|t| !t.starts_with("document.") && !t.starts_with("file."))
        .map(str::to_owned)
        .collect();
    tenancy.sort();
    assert_eq!(seen, tenancy);
}

async fn document_and_file_changes_emit_their_events(app: TestApp) {
    let w = app.world().await;
    let t = w.tenant.clone();
    let owner = Some(w.owner.token.as_str());
    let mut outbox = Outbox::new(&app, &t);
    outbox.seen = outbox.all().await.len();

    let doc = upload(&app, &t, &w.member.token, Upload::text("evented", "e.txt")).await;
    let d = doc.body["id"].as_str().unwrap().to_owned();
    let file = doc.body["file_id"].as_str().unwrap().to_owned();
    let e = outbox
        .next(&[(
            EventType::DocumentUploaded,
            format!("documents/{d}"),
            &w.member,
        )])
        .await;
    assert_eq!(e[0].data["document_id"], d);
    assert_eq!(e[0].data["file_id"], file);
    assert_eq!(e[0].data["sha256"], doc.body["sha256"]);
    assert_eq!(e[0].data["deduplicated"], false);
    let renamed = app
        .patch(
            &format!("{}/{d}", documents(&t)),
            owner,
            json!({"filename": "renamed.txt"}),
        )
        .await;
    renamed.assert(200);
    let e = outbox
        .next(&[(
            EventType::DocumentUpdated,
            format!("documents/{d}"),
            &w.owner,
        )])
        .await;
    assert_eq!(updated(&e[0], &["filename"]), renamed.body);
    app.delete(&format!("{}/{d}", documents(&t)), owner)
        .await
        .assert(204);
    let e = outbox
        .next(&[(
            EventType::DocumentDeleted,
            format!("documents/{d}"),
            &w.owner,
        )])
        .await;
    assert_eq!(e[0].data["filename"], "renamed.txt");
    let files = format!("/api/v1/tenants/{t}/files/{file}");
    let stored = app.get(&files, owner).await;
    stored.assert(200);
    app.delete(&files, owner).await.assert(204);
    let e = outbox
        .next(&[(EventType::FileDeleted, format!("files/{file}"), &w.owner)])
        .await;
    assert_eq!(e[0].data, stored.body);
}

/// How many events and audit records the tenant has.
async fn written(app: &TestApp, tenant: &str) -> (usize, i64) {
    let events = Outbox::new(app, tenant).all().await.len();
    let tenant: uuid::Uuid = tenant.parse().unwrap();
    let audit: i64 = app
        .db()
        .await
        .read_optional(
            Query::select()
                .expr(Func::count(Expr::col("id")))
                .from("audit_logs")
                .and_where(Expr::col("tenant_id").eq(tenant)),
        )
        .await
        .unwrap()
        .unwrap();
    (events, audit)
}

async fn a_refused_change_writes_neither_record_nor_event(app: TestApp) {
    let w = app.world().await;
    let base = format!("/api/v1/tenants/{}", w.tenant);
    let owner = Some(w.owner.token.as_str());
    app.create_project(&w.tenant, &w.owner, "Taken").await;
    let before = written(&app, &w.tenant).await;
    // Each fails after the service opened its transaction.
    app.post(&format!("{base}/projects"), owner, json!({"name": "Taken"}))
        .await
        .assert_problem(409, "already_exists");
    app.patch(
        &format!("{base}/members/{}", w.owner.id),
        owner,
        json!({"role": "viewer"}),
    )
    .await
    .assert(409);
    app.post(
        &format!("{base}/invitations"),
        owner,
        json!({"email": w.member.email, "role": "member"}),
    )
    .await
    .assert(409);
    app.patch(&base, Some(&w.viewer.token), json!({"name": "Mine"}))
        .await
        .assert(403);
    assert_eq!(written(&app, &w.tenant).await, before);
    // And a change that succeeds writes one of each.
    app.create_project(&w.tenant, &w.owner, "Fresh").await;
    let after = written(&app, &w.tenant).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
}
