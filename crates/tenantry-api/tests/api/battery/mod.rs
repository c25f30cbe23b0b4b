//! The isolation battery: generated from `/openapi.json`, it walks every operation with every
//! caller of tenant A (anonymous, viewer, member, a custom role, an API key, an API key bound
//! to A's project, admin, owner) and with ids of A, of the foreign tenant B and of nothing,
//! and fails when
//! - any response shows B's data (its ids, names, e-mail addresses, tokens),
//! - any of B's rows changed (all tables with a tenant or account column, see `fingerprint`),
//! - B's ids answer differently from ids that do not exist (status and problem code), both as
//!   a whole foreign path and as B's objects under A's tenant path,
//! - anything answers 5xx,
//! - the project-bound key sees or changes A's other project (its ids answer like missing
//!   ones, its data never shows, its rows stay as they were) or is granted any operation on a
//!   tenant-level resource (one whose permissions the catalog does not mark project-scoped),
//! - or an operation cannot be walked: a path parameter without a fixture, a request body
//!   without one, or a fixture for an operation that no longer exists.
//!
//! A new route is walked automatically once its parameters and body have fixtures.

mod fingerprint;
mod setup;

use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_core::Permission;

use crate::helpers::{PASSWORD, Resp, TestApp};
use fingerprint::{Probe, changed};
use setup::{Battery, Caller};

crate::backend_tests!(no_operation_leaks_across_tenants);

/// Which tenant's ids fill the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ids {
    /// Nothing that exists (the baseline B's ids must be indistinguishable from).
    Missing,
    /// A's tenant, objects that do not exist.
    MissingObjects,
    /// B's tenant and B's objects.
    Foreign,
    /// A's tenant with B's objects.
    Mixed,
    /// A's tenant, objects of A's other project (walked for the project-bound key only).
    Sibling,
    /// A's tenant and A's objects.
    Own,
}

/// An id no tenant, account or object has.
const NOTHING: &str = "01a20000-0000-7000-8000-000000000000";

/// Request bodies by operationId (`{n}` becomes a number unique to the request). Valid for
/// the callers' own ids where that is harmless, so writes really happen; an operation with a
/// request body and no entry here fails the battery.
const BODIES: &[(&str, &str)] = &[
    ("admin_reactivate_tenant", r#"{"reason": "battery"}"#),
    ("admin_suspend_tenant", r#"{"reason": "battery"}"#),
    ("admin_disable_user", r#"{"reason": "battery"}"#),
    ("admin_enable_user", r#"{"reason": "battery"}"#),
    ("forgot_password", r#"{"email": "nobody-{n}@example.test"}"#),
    (
        "login",
        r#"{"email": "nobody@example.test", "password": "not the password"}"#,
    ),
    ("refresh", r#"{"refresh_token": "not-a-refresh-token"}"#),
    (
        "register",
        r#"{"email": "battery-{n}@example.test", "password": "{password}", "first_name": "Bat", "last_name": "Tery"}"#,
    ),
    (
        "reset_password",
        r#"{"token": "not-a-token", "new_password": "another long secret"}"#,
    ),
    ("verify_email", r#"{"token": "not-a-token"}"#),
    ("create_tenant", r#"{"name": "Battery {n}"}"#),
    ("update_tenant", r#"{"name": "Acme {n}"}"#),
    (
        "create_api_key",
        r#"{"name": "battery-{n}", "role": "viewer"}"#,
    ),
    (
        "create_invitation",
        r#"{"email": "invitee-{n}@example.test", "role": "viewer"}"#,
    ),
    ("add_member", r#"{"email": "{joiner}", "role": "viewer"}"#),
    ("change_role", r#"{"role": "viewer"}"#),
    ("create_project", r#"{"name": "Battery {n}"}"#),
    ("put_project", r#"{"name": "Put {n}"}"#),
    ("patch_project", r#"{"description": "battery {n}"}"#),
    ("assign_project_role", r#"{"role": "viewer"}"#),
    (
        "create_role",
        r#"{"name": "battery-{n}", "permissions": ["projects:read"]}"#,
    ),
    ("update_role", r#"{"description": "battery {n}"}"#),
    ("update_settings", r#"{"default_locale": "en-GB"}"#),
    ("put_me", r#"{"first_name": "Bat", "last_name": "Tery"}"#),
    ("patch_me", r#"{"first_name": "Bat"}"#),
    // The right password: wrong ones would count toward the callers' login throttle.
    ("enroll", r#"{"current_password": "{password}"}"#),
    (
        "disable",
        r#"{"current_password": "{password}", "code": "000000"}"#,
    ),
    ("confirm", r#"{"code": "000000"}"#),
    ("change_password", "{}"),
    ("upload_document", MULTIPART),
    ("patch_document", r#"{"filename": "renamed-{n}.txt"}"#),
    (
        "put_document",
        r#"{"filename": "put-{n}.txt", "mime_type": "text/plain"}"#,
    ),
];

/// The body of a multipart upload: a small text file (`{n}` makes each one new content).
const MULTIPART: &str = "<multipart: battery {n}>";

/// One operation of the document.
struct Operation {
    method: Method,
    path: String,
    id: String,
    body: Option<&'static str>,
}

/// The operations in walking order: reads and writes first, deletions after (deepest path
/// first), deleting A itself last.
fn operations(spec: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operation") {
            let id = op["operationId"].as_str().expect("operationId").to_owned();
            let body = BODIES.iter().find(|(name, _)| *name == id).map(|(_, b)| *b);
            assert!(
                op.get("requestBody").is_none() || body.is_some(),
                "{method} {path} ({id}) takes a body the battery has no fixture for: add one to BODIES"
            );
            ops.push(Operation {
                method: method.to_uppercase().parse().expect("method"),
                path: path.clone(),
                id,
                body,
            });
        }
    }
    let known: HashSet<&str> = ops.iter().map(|o| o.id.as_str()).collect();
    for (name, _) in BODIES {
        assert!(
            known.contains(name),
            "BODIES names {name}, which no longer exists"
        );
    }
    let rank = |o: &Operation| {
        let deleting = o.method == Method::DELETE;
        let deletes_tenant = deleting && o.path == "/api/v1/tenants/{tenant_id}";
        (
            deletes_tenant,
            deleting,
            std::cmp::Reverse(o.path.matches('/').count()),
        )
    };
    ops.sort_by_key(rank);
    ops
}

/// The path parameters of `path`, in order.
fn parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The id kinds walked for a path with these parameters.
fn id_kinds(params: &[&str]) -> Vec<Ids> {
    if params.is_empty() {
        return vec![Ids::Own];
    }
    if params == ["token"] {
        // The invitation token is a bearer capability, not an id of a tenant's object.
        return vec![Ids::Missing, Ids::Own];
    }
    let mut kinds = vec![Ids::Missing, Ids::Foreign];
    if params.len() > 1 && params[0] == "tenant_id" {
        kinds.extend([Ids::MissingObjects, Ids::Mixed]);
    }
    kinds.push(Ids::Own);
    kinds
}

/// The parameters whose values differ between A's two projects.
const PROJECT_PARAMETERS: [&str; 3] = ["project_id", "document_id", "file_id"];

/// The id kinds walked for `caller`: a project-bound key also gets A's other project's ids.
fn caller_id_kinds(params: &[&str], caller: &Caller) -> Vec<Ids> {
    let mut kinds = id_kinds(params);
    if caller.project_bound
        && params.first() == Some(&"tenant_id")
        && params.iter().any(|p| PROJECT_PARAMETERS.contains(p))
    {
        kinds.insert(kinds.len() - 1, Ids::Sibling);
    }
    kinds
}

/// The catalog resource an operation on a tenant acts on: the last static segment of its path
/// that names one (`…/projects/{id}/members` → `members`, `…/documents/{id}/download` →
/// `documents`, `…/settings` → `tenant`); `None` outside `/api/v1/tenants/{tenant_id}`.
fn resource(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/v1/tenants/{tenant_id}")?;
    let resources: Vec<&'static str> = Permission::ALL
        .iter()
        .filter_map(|p| p.as_str().split(':').next())
        .collect();
    let names = |segment: &str| {
        let segment = segment.replace('-', "_");
        resources.iter().copied().find(|r| {
            segment == *r || segment == format!("{r}s") || segment.starts_with(&format!("{r}_"))
        })
    };
    rest.split('/')
        .rev()
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .find_map(names)
        .or(Some("tenant"))
}

/// Whether the catalog marks any permission on `resource` project-scoped.
fn project_scoped(resource: &str) -> bool {
    Permission::PROJECT_SCOPED
        .iter()
        .any(|p| p.as_str().split(':').next() == Some(resource))
}

impl Battery {
    /// The value of path parameter `param` of `path` for `caller`.
    fn value(&self, path: &str, param: &str, ids: Ids, caller: &Caller) -> String {
        let (a, b) = (&self.a, &self.b);
        let pick = |own: &str, foreign: &str| -> String {
            match ids {
                Ids::Own | Ids::Sibling => own,
                Ids::Foreign | Ids::Mixed => foreign,
                Ids::Missing | Ids::MissingObjects => NOTHING,
            }
            .to_owned()
        };
        match param {
            "tenant_id" => match ids {
                Ids::Own | Ids::Mixed | Ids::MissingObjects | Ids::Sibling => a.tenant.clone(),
                Ids::Foreign => b.tenant.clone(),
                Ids::Missing => NOTHING.to_owned(),
            },
            "user_id" => pick(&a.subject.id, &b.subject.id),
            "role_id" => pick(&a.role, &b.role),
            "api_key_id" => pick(&a.key, &b.key),
            "invitation_id" => pick(&a.invitation, &b.invitation),
            "project_id" if ids == Ids::Sibling => self.sibling.project.clone(),
            "project_id" => pick(&a.project, &b.project),
            "document_id" if ids == Ids::Sibling => self.sibling.document.clone(),
            "file_id" if ids == Ids::Sibling => self.sibling.file.clone(),
            "document_id" => pick(&a.document, &b.document),
            "file_id" => pick(&a.file, &b.file),
            "session_id" => {
                let own = caller.spare_session.as_deref().unwrap_or(NOTHING);
                pick(own, &self.b_session)
            }
            "id" if path.starts_with("/api/v1/admin/tenants/") => pick(&a.tenant, &b.tenant),
            "id" if path.starts_with("/api/v1/admin/users/") => pick(&a.subject.id, &b.subject.id),
            "token" => match ids {
                Ids::Own => a.invitation_token.clone(),
                _ => "tnt-battery-no-such-invitation-token-0000000000".to_owned(),
            },
            other => panic!(
                "path parameter {{{other}}} of {path} has no fixture in the isolation battery: \
                 add its own, foreign and missing values to Battery::value"
            ),
        }
    }
}

struct Walk {
    battery: Battery,
    probe: Probe,
    counter: usize,
    requests: usize,
    /// operationId → (caller, ids) → status.
    matrix: BTreeMap<String, BTreeMap<(String, Ids), u16>>,
}

impl Walk {
    fn body(&mut self, template: &str) -> Value {
        self.counter += 1;
        let text = template
            .replace("{n}", &self.counter.to_string())
            .replace("{joiner}", &self.battery.joiner.email)
            .replace("{password}", PASSWORD);
        serde_json::from_str(&text).expect("fixture body is JSON")
    }

    /// Sends one request and checks what every response must satisfy.
    async fn send(&mut self, app: &TestApp, op: &Operation, caller: usize, ids: Ids) -> Resp {
        let c = &self.battery.callers[caller];
        let mut path = op.path.clone();
        for param in parameters(&op.path) {
            let value = self.battery.value(&op.path, param, ids, c);
            path = path.replace(&format!("{{{param}}}"), &value);
        }
        let token = c.token.clone();
        let name = c.name;
        let resp = match op.body {
            Some(MULTIPART) => {
                self.counter += 1;
                let form = reqwest::multipart::Form::new()
                    .text("filename", "battery.txt")
                    .text("mime_type", "text/plain")
                    .text("file", format!("battery {}", self.counter));
                let mut request = app.client.post(app.url(&path)).multipart(form);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = request.send().await.expect("sent");
                let (status, headers) = (sent.status(), sent.headers().clone());
                let bytes = sent.bytes().await.expect("body");
                Resp {
                    status,
                    headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                }
            }
            template => {
                let body = template.map(|t| self.body(t));
                app.request(op.method.clone(), &path, token.as_deref(), body)
                    .await
            }
        };
        self.requests += 1;
        let what = format!("{} {} as {name} with {ids:?} ids", op.method, op.path);
        assert!(
            resp.status.as_u16() < 500,
            "{what}: {} {}",
            resp.status,
            resp.body
        );
        let text = resp.body.to_string().to_lowercase();
        for marker in &self.battery.markers {
            assert!(
                !text.contains(&marker.to_lowercase()),
                "{what} shows tenant B's {marker:?}: {}",
                resp.body
            );
        }
        if self.battery.callers[caller].project_bound {
            for marker in &self.battery.sibling.markers {
                assert!(
                    !text.contains(&marker.to_lowercase()),
                    "{what} shows A's other project's {marker:?}: {}",
                    resp.body
                );
            }
        }
        self.matrix
            .entry(op.id.clone())
            .or_default()
            .insert((name.to_owned(), ids), resp.status.as_u16());
        resp
    }
}

/// Foreign ids must answer exactly like missing ones.
fn assert_same(what: &str, foreign: &Resp, missing: &Resp) {
    assert_eq!(
        (foreign.status, foreign.code()),
        (missing.status, missing.code()),
        "{what}: tenant B's ids answer differently from ids that do not exist \
         (B: {}, missing: {})",
        foreign.body,
        missing.body
    );
}

async fn no_operation_leaks_across_tenants(app: TestApp) {
    let battery = Battery::build(&app).await;
    let spec = app.get("/openapi.json", None).await.body;
    let ops = operations(&spec);
    let mut probe = Probe::open(&app).await;
    let b = battery.b.tenant.clone();
    let b_users = battery.b_users.clone();
    let mut before = probe.take(&b, &b_users).await;
    assert!(
        before.get("projects").is_some_and(|rows| !rows.is_empty()),
        "the fingerprint sees B's projects"
    );
    let mut walk = Walk {
        battery,
        probe,
        counter: 0,
        requests: 0,
        matrix: BTreeMap::new(),
    };
    let sibling_before = sibling_rows(&app, &walk.battery).await;
    for op in &ops {
        for caller in 0..walk.battery.callers.len() {
            let kinds = caller_id_kinds(&parameters(&op.path), &walk.battery.callers[caller]);
            let mut seen: BTreeMap<Ids, Resp> = BTreeMap::new();
            for &ids in &kinds {
                let resp = walk.send(&app, op, caller, ids).await;
                let what = format!(
                    "{} {} as {}",
                    op.method, op.path, walk.battery.callers[caller].name
                );
                match ids {
                    Ids::Foreign => assert_same(&what, &resp, &seen[&Ids::Missing]),
                    Ids::Mixed | Ids::Sibling => {
                        assert_same(&what, &resp, &seen[&Ids::MissingObjects])
                    }
                    _ => {}
                }
                seen.insert(ids, resp);
            }
            let c = &walk.battery.callers[caller];
            if c.project_bound {
                check_project_bound(&walk, op, c.name);
                assert_eq!(
                    sibling_rows(&app, &walk.battery).await,
                    sibling_before,
                    "{} {} as {} changed A's other project",
                    op.method,
                    op.path,
                    c.name
                );
            }
            walk.battery.callers[caller].revive(&app).await;
        }
        let after = walk.probe.take(&b, &b_users).await;
        let touched = changed(&before, &after);
        assert!(
            touched.is_empty(),
            "{} {} changed tenant B's rows in {touched:?}",
            op.method,
            op.path
        );
        before = after;
    }
    let walked: HashSet<&String> = walk.matrix.keys().collect();
    assert_eq!(walked.len(), ops.len(), "every operation was walked");
    // The fingerprint notices a change of B's rows (the walk's check is not vacuous).
    app.patch(
        &format!("/api/v1/tenants/{b}/projects/{}", walk.battery.b.project),
        Some(&walk.battery.b.owner.token),
        json!({"description": "changed by its owner"}),
    )
    .await
    .assert(200);
    let after = walk.probe.take(&b, &b_users).await;
    assert!(changed(&before, &after).contains(&"projects".to_owned()));

    let callers = walk.battery.callers.len();
    let combinations: usize = ops
        .iter()
        .map(|op| {
            walk.battery
                .callers
                .iter()
                .map(|c| caller_id_kinds(&parameters(&op.path), c).len())
                .sum::<usize>()
        })
        .sum();
    eprintln!(
        "isolation battery: {} operations × {callers} callers × up to 5 id kinds = {combinations} \
         requests ({} sent)",
        ops.len(),
        walk.requests
    );
    print_matrix(&walk.matrix);
}

/// What the permission model says of a project-bound key (with the admin role) and its own
/// ids: no operation on a tenant-level resource is granted (403), and a read of its own
/// project's resources answers as it does to the same key unbound.
fn check_project_bound(walk: &Walk, op: &Operation, name: &str) {
    let Some(resource) = resource(&op.path) else {
        return;
    };
    let cells = &walk.matrix[&op.id];
    let status = cells[&(name.to_owned(), Ids::Own)];
    if !project_scoped(resource) {
        assert_eq!(
            status, 403,
            "{} {} ({resource}: tenant-level) as {name}",
            op.method, op.path
        );
    } else if op.method == Method::GET {
        let unbound = cells[&("API key".to_owned(), Ids::Own)];
        assert_eq!(
            status, unbound,
            "{} {} ({resource}: project-scoped) as {name}, own project",
            op.method, op.path
        );
    }
}

/// A's other project and its document as its owner reads them.
async fn sibling_rows(app: &TestApp, battery: &Battery) -> (Value, Value) {
    let base = format!("/api/v1/tenants/{}", battery.a.tenant);
    // The owner caller's token: it is renewed when an operation ends the session.
    let owner = battery
        .callers
        .iter()
        .find(|c| c.name == "owner")
        .and_then(|c| c.token.as_deref());
    let project = app
        .get(
            &format!("{base}/projects/{}", battery.sibling.project),
            owner,
        )
        .await;
    let document = app
        .get(
            &format!("{base}/documents/{}", battery.sibling.document),
            owner,
        )
        .await;
    (project.body, document.body)
}

/// Prints, per operation, the statuses each caller got with its own ids (the access matrix).
fn print_matrix(matrix: &BTreeMap<String, BTreeMap<(String, Ids), u16>>) {
    for (op, cells) in matrix {
        let own: Vec<String> = cells
            .iter()
            .filter(|((_, ids), _)| *ids == Ids::Own)
            .map(|((caller, _), status)| format!("{caller}={status}"))
            .collect();
        eprintln!("  {op}: {}", own.join(" "));
    }
}
