//! The two tenants the battery walks between: A (the callers' own tenant, with one caller per
//! role) and B (the foreign tenant, furnished with one object of every kind the API exposes).

use serde_json::json;

use crate::helpers::{TestApp, TestUser};

/// The objects of one tenant that path parameters name.
#[derive(Debug, Clone)]
pub struct Side {
    pub tenant: String,
    pub owner: TestUser,
    /// A member who holds none of the battery's roles: `{user_id}` names them.
    pub subject: TestUser,
    pub project: String,
    pub role: String,
    pub key: String,
    pub invitation: String,
    /// The invitation's mailed token (`{token}`), read back from the mail directory.
    pub invitation_token: String,
    /// A document in the project, and its stored file.
    pub document: String,
    pub file: String,
}

/// A caller of the walk: a role of tenant A, an API key, or nobody.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: &'static str,
    /// A key bound to A's project: A's other project is as foreign to it as tenant B.
    pub project_bound: bool,
    /// The account (re-signed-in when an operation ended its session); `None` for the API
    /// key and the anonymous caller.
    pub user: Option<TestUser>,
    pub token: Option<String>,
    /// A second session of the account, which `{session_id}` names as the caller's own.
    pub spare_session: Option<String>,
}

/// A's second project, with a document: outside the project-bound key's project.
#[derive(Debug, Clone)]
pub struct Sibling {
    pub project: String,
    pub document: String,
    pub file: String,
    /// Strings only the sibling's data contains.
    pub markers: Vec<String>,
}

pub struct Battery {
    pub a: Side,
    pub b: Side,
    pub sibling: Sibling,
    /// Registered, member of no tenant: the body of `add_member` names them.
    pub joiner: TestUser,
    pub callers: Vec<Caller>,
    /// Strings that only tenant B's data contains; no response to a caller of A may show one.
    pub markers: Vec<String>,
    /// The accounts whose rows belong to B (its owner and subject).
    pub b_users: Vec<String>,
    /// A session of B's owner (`{session_id}` of another account).
    pub b_session: String,
}

/// Creates one object of every kind in `tenant` (names prefixed with `label`).
async fn furnish(
    app: &TestApp,
    tenant: &str,
    owner: &TestUser,
    subject: TestUser,
    label: &str,
) -> Side {
    app.add_member(tenant, owner, &subject, "member").await;
    let project = app
        .create_project(tenant, owner, &format!("{label} project"))
        .await;
    let base = format!("/api/v1/tenants/{tenant}");
    app.put(
        &format!("{base}/projects/{project}/members/{}", subject.id),
        Some(&owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    let role = app
        .post(
            &format!("{base}/roles"),
            Some(&owner.token),
            json!({"name": format!("{label}-spare"), "permissions": ["projects:read"]}),
        )
        .await;
    role.assert(201);
    let key = app
        .post(
            &format!("{base}/api-keys"),
            Some(&owner.token),
            json!({"name": format!("{label}-key"), "role": "viewer"}),
        )
        .await;
    key.assert(201);
    let invitee = format!("{label}-invitee@example.test");
    let invitation = app
        .post(
            &format!("{base}/invitations"),
            Some(&owner.token),
            json!({"email": invitee, "role": "viewer"}),
        )
        .await;
    invitation.assert(201);
    let content = format!("{label} document content");
    let document = crate::documents::upload(
        app,
        tenant,
        &owner.token,
        crate::documents::Upload::text(&content, &format!("{label}-document.txt"))
            .in_project(&project),
    )
    .await;
    document.assert(201);
    Side {
        tenant: tenant.to_owned(),
        owner: owner.clone(),
        subject,
        project,
        role: id_of(&role.body),
        key: id_of(&key.body),
        invitation: id_of(&invitation.body),
        invitation_token: mailed_token(app, &invitee).await,
        document: id_of(&document.body),
        file: document.body["file_id"]
            .as_str()
            .expect("file_id")
            .to_owned(),
    }
}

/// A's second project and a document in it.
async fn sibling(app: &TestApp, tenant: &str, owner: &TestUser) -> Sibling {
    let project = app
        .create_project(tenant, owner, "own sibling project")
        .await;
    let document = crate::documents::upload(
        app,
        tenant,
        &owner.token,
        crate::documents::Upload::text("own sibling content", "own-sibling-document.txt")
            .in_project(&project),
    )
    .await;
    document.assert(201);
    let (document, file) = (
        id_of(&document.body),
        document.body["file_id"]
            .as_str()
            .expect("file_id")
            .to_owned(),
    );
    Sibling {
        markers: vec![
            project.clone(),
            "own sibling project".to_owned(),
            document.clone(),
            file.clone(),
            "own-sibling-document".to_owned(),
        ],
        project,
        document,
        file,
    }
}

fn id_of(body: &serde_json::Value) -> String {
    body["id"].as_str().expect("id").to_owned()
}

/// The `token=` of the newest message to `email` in the data directory's mail folder (the
/// test server has no SMTP: messages are `.eml` files, quoted-printable).
async fn mailed_token(app: &TestApp, email: &str) -> String {
    let dir = app.data_dir().join("mail");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let token = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|m| m.contains(&format!("To: {email}")))
                .find_map(|m| {
                    let text = m
                        .replace("=\r\n", "")
                        .replace("=\n", "")
                        .replace("=3D", "=");
                    let start = text.find("token=")? + "token=".len();
                    let token: String = text[start..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    (!token.is_empty()).then_some(token)
                })
        });
        if let Some(token) = token {
            return token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no invitation mail to {email}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The id of the session `user`'s token belongs to.
pub async fn session_of(app: &TestApp, user: &TestUser) -> String {
    let sessions = app
        .get("/api/v1/users/me/sessions?limit=100", Some(&user.token))
        .await;
    sessions.assert(200);
    sessions.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["current"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("the current session")
        .to_owned()
}

impl Battery {
    pub async fn build(app: &TestApp) -> Self {
        let w = app.world().await;
        let subject = app.register("subject@example.com").await;
        let a = furnish(app, &w.tenant, &w.owner, subject, "own").await;
        let foreign_subject = app.register("foreign-subject@example.com").await;
        let b = furnish(
            app,
            &w.other_tenant,
            &w.outsider,
            foreign_subject,
            "foreign",
        )
        .await;
        let joiner = app.register("joiner@example.com").await;

        // A custom role and its holder.
        let auditor = app.register("auditor@example.com").await;
        app.post(
            &format!("/api/v1/tenants/{}/roles", a.tenant),
            Some(&w.owner.token),
            json!({"name": "auditor",
                   "permissions": ["projects:read", "members:read", "roles:read", "audit:read"]}),
        )
        .await
        .assert(201);
        app.add_member(&a.tenant, &w.owner, &auditor, "auditor")
            .await;
        // API keys with the admin role, created by the owner: one for the whole tenant, one
        // bound to A's project.
        let admin_key = |body: serde_json::Value| {
            let (app, owner, tenant) = (app, &w.owner, &a.tenant);
            async move {
                let key = app
                    .post(
                        &format!("/api/v1/tenants/{tenant}/api-keys"),
                        Some(&owner.token),
                        body,
                    )
                    .await;
                key.assert(201);
                key.body["key"].as_str().expect("key").to_owned()
            }
        };
        let key = admin_key(json!({"name": "battery", "role": "admin"})).await;
        let project_key =
            admin_key(json!({"name": "battery-project", "role": "admin", "project_id": a.project}))
                .await;
        let sibling = sibling(app, &a.tenant, &w.owner).await;
        // A second document in A's project that no path names: the project (and with it, by
        // cascade, the project-bound key) can never be deleted during the walk.
        crate::documents::upload(
            app,
            &a.tenant,
            &w.owner.token,
            crate::documents::Upload::text("own keeper content", "own-keeper.txt")
                .in_project(&a.project),
        )
        .await
        .assert(201);

        // Least privileged first: the owner's own-id walk of a destructive operation runs last.
        let mut callers = vec![Caller {
            name: "anonymous",
            project_bound: false,
            user: None,
            token: None,
            spare_session: None,
        }];
        for (name, user) in [
            ("viewer", w.viewer.clone()),
            ("member", w.member.clone()),
            ("custom role", auditor),
        ] {
            callers.push(Caller::signed_in(app, name, user).await);
        }
        callers.push(Caller {
            name: "API key",
            project_bound: false,
            user: None,
            token: Some(key),
            spare_session: None,
        });
        callers.push(Caller {
            name: "project API key",
            project_bound: true,
            user: None,
            token: Some(project_key),
            spare_session: None,
        });
        callers.push(Caller::signed_in(app, "admin", w.admin.clone()).await);
        callers.push(Caller::signed_in(app, "owner", w.owner.clone()).await);

        let tenant_b = app
            .get(
                &format!("/api/v1/tenants/{}", b.tenant),
                Some(&b.owner.token),
            )
            .await;
        tenant_b.assert(200);
        let mut markers = vec![
            b.tenant.clone(),
            tenant_b.body["slug"].as_str().expect("slug").to_owned(),
            "Globex".to_owned(),
            b.project.clone(),
            "foreign project".to_owned(),
            b.role.clone(),
            "foreign-spare".to_owned(),
            b.key.clone(),
            "foreign-key".to_owned(),
            b.invitation.clone(),
            "foreign-invitee".to_owned(),
            b.invitation_token.clone(),
            b.document.clone(),
            b.file.clone(),
            "foreign-document".to_owned(),
            crate::documents::sha256_hex(b"foreign document content"),
        ];
        for user in [&b.owner, &b.subject] {
            markers.push(user.id.clone());
            markers.push(user.email.clone());
        }
        let b_users = vec![b.owner.id.clone(), b.subject.id.clone()];
        let b_session = session_of(app, &b.owner).await;
        markers.push(b_session.clone());
        Self {
            b_session,
            a,
            b,
            sibling,
            joiner,
            callers,
            markers,
            b_users,
        }
    }
}

impl Caller {
    /// A caller signed in twice: the second session is the one `{session_id}` names.
    async fn signed_in(app: &TestApp, name: &'static str, user: TestUser) -> Self {
        let spare = app.login(&user.email).await;
        Self {
            name,
            project_bound: false,
            token: Some(user.token.clone()),
            spare_session: Some(session_of(app, &spare).await),
            user: Some(user),
        }
    }

    /// Signs in again when an operation (logout, a revoked session) ended the caller's session.
    pub async fn revive(&mut self, app: &TestApp) {
        let Some(user) = &self.user else {
            return;
        };
        let alive = app.get("/api/v1/users/me", self.token.as_deref()).await;
        if alive.status == 401 {
            let fresh = app.login(&user.email).await;
            self.token = Some(fresh.token.clone());
            self.user = Some(fresh);
        }
    }
}
