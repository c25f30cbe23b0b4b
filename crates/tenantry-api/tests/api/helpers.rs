//! `spawn_app()`: the real server on a port-0 listener with its own database and data
//! directory, and a small typed client.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode, header::HeaderMap};
use secrecy::SecretString;
use serde_json::{Value, json};
use tenantry_api::{Application, config::Config};
use tenantry_core::ManualClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// Owner connection URL of this test's PostgreSQL database.
    pub database_url: Option<String>,
    /// The running server's state (its database pool, identity service and configuration).
    pub state: tenantry_api::AppState,
    /// The server's clock (shared with its siblings): advance it instead of sleeping.
    pub clock: ManualClock,
    data_dir: std::path::PathBuf,
    _owned_dir: Option<tempfile::TempDir>,
}

/// A response with its body parsed as JSON (or `Value::Null` when empty / not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The stable problem `code`, if this is a problem response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert(status);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "not a problem response: {}",
            self.body
        );
        assert_eq!(self.code(), code, "body: {}", self.body);
        self
    }
}

/// Starts Tenantry on `backend`; `None` when that backend is unavailable (and not strict).
pub async fn spawn_app(backend: Backend, test: &str) -> Option<TestApp> {
    spawn_app_with(backend, test, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    test: &str,
    configure: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(tenantry_testkit::fresh_postgres_database(test).await?),
    };
    let mut app = start(
        data_dir.path().to_path_buf(),
        database_url,
        ManualClock::new(),
        configure,
    )
    .await;
    app._owned_dir = Some(data_dir);
    Some(app)
}

async fn start(
    data_dir: std::path::PathBuf,
    database_url: Option<String>,
    clock: ManualClock,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.clone(),
        database_url: database_url.clone().map(SecretString::from),
        ..Config::default()
    };
    config.database.max_connections = 8;
    // Every test client shares 127.0.0.1: per-IP limits are off unless a test sets them; so
    // are the per-tenant and per-key limits, which fast loops of one test could reach.
    config.rate_limits = tenantry_http::config::RateLimitConfig {
        login_per_minute: 0,
        register_per_hour: 0,
        password_reset_per_hour: 0,
        guest_per_hour: 0,
        token_per_minute: 0,
        tenant_per_second: 0,
        api_key_per_second: 0,
        ..Default::default()
    };
    configure(&mut config);
    tenantry_identity::oidc::install_tls_provider();
    let app = Application::build_with_clock(config, clock.clock())
        .await
        .expect("application builds");
    let addr = app.local_addr().expect("local addr");
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        database_url,
        state,
        clock,
        data_dir,
        _owned_dir: None,
    }
}

impl TestApp {
    /// A second server on the same database and data directory (a restart, or another node),
    /// on the same clock.
    pub async fn sibling(&self, configure: impl FnOnce(&mut Config)) -> TestApp {
        start(
            self.data_dir.clone(),
            self.database_url.clone(),
            self.clock.clone(),
            configure,
        )
        .await
    }
}

/// The `kid` in a JWT's header.
pub fn kid_of(token: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = token.split('.').next().expect("header segment");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url header"))
            .expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

impl TestApp {
    /// The `kid`s the server publishes at /.well-known/jwks.json, sorted.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let resp = self.get("/.well-known/jwks.json", None).await;
        resp.assert(200);
        let mut kids: Vec<String> = resp.body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect();
        kids.sort();
        kids
    }
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }

    /// `POST /auth/register` with [`PASSWORD`]; the response unchecked.
    pub async fn sign_up(&self, email: &str) -> Resp {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "first_name": "Test", "last_name": "User"}),
        )
        .await
    }

    /// Registers and logs in.
    pub async fn register(&self, email: &str) -> TestUser {
        self.sign_up(email).await.assert(201);
        self.login(email).await
    }

    /// `POST /auth/refresh` with `refresh_token`; the response unchecked.
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post(
            "/api/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    pub async fn login(&self, email: &str) -> TestUser {
        let resp = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        resp.assert(200);
        TestUser {
            id: resp.body["user"]["id"].as_str().expect("id").to_owned(),
            email: email.to_owned(),
            token: resp.body["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
            refresh: resp.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    /// Creates a tenant owned by `owner`; returns its id.
    pub async fn create_tenant(&self, owner: &TestUser, name: &str) -> String {
        let resp = self
            .post("/api/v1/tenants", Some(&owner.token), json!({"name": name}))
            .await;
        resp.assert(201);
        resp.body["id"].as_str().expect("tenant id").to_owned()
    }

    /// Makes `user` a member of `tenant` with `role` the way a member joins: `by` invites the
    /// address (`POST …/members {email, role}` → 202) and `user` accepts the invitation.
    /// Both addresses are marked verified first (inviting and accepting need that), and the
    /// invitation's token is replaced by one the test knows instead of being read from mail.
    pub async fn add_member(&self, tenant: &str, by: &TestUser, user: &TestUser, role: &str) {
        self.verify_email(by).await;
        self.verify_email(user).await;
        self.post(
            &format!("/api/v1/tenants/{tenant}/members"),
            Some(&by.token),
            json!({"email": user.email, "role": role}),
        )
        .await
        .assert(202);
        let token = self.invitation_token(tenant, &user.email).await;
        self.post(
            &format!("/api/v1/invitations/{token}/accept"),
            Some(&user.token),
            json!({}),
        )
        .await
        .assert(200);
    }

    /// Marks `user`'s address verified, as following the mailed verification link does.
    pub async fn verify_email(&self, user: &TestUser) {
        use sea_query::ExprTrait;
        let id: uuid::Uuid = user.id.parse().expect("user id");
        let mut tx = self.state.db.begin_write().await.expect("begin");
        tx.execute(
            sea_query::Query::update()
                .table("users")
                .value("email_verified", true)
                .and_where(sea_query::Expr::col("id").eq(id)),
        )
        .await
        .expect("verify e-mail");
        tx.commit().await.expect("commit");
    }

    /// Gives the pending invitation of `email` to `tenant` a fresh token and returns it, so a
    /// test can accept without reading the mail (the mailed token stops working).
    pub async fn invitation_token(&self, tenant: &str, email: &str) -> String {
        use sea_query::{Expr, ExprTrait, Func};
        let tenant: uuid::Uuid = tenant.parse().expect("tenant id");
        let (token, hash) = tenantry_identity::new_link_token();
        let mut tx = self.state.db.begin_write().await.expect("begin");
        let changed = tx
            .execute(
                sea_query::Query::update()
                    .table("invitations")
                    .value("token_hash", hash)
                    .and_where(Expr::col("tenant_id").eq(tenant))
                    .and_where(Expr::expr(Func::lower(Expr::col("email"))).eq(email.to_lowercase()))
                    .and_where(Expr::col("accepted_at").is_null())
                    .and_where(Expr::col("revoked_at").is_null()),
            )
            .await
            .expect("set the invitation token");
        assert_eq!(changed, 1, "one pending invitation of {email}");
        tx.commit().await.expect("commit");
        token
    }

    pub async fn create_project(&self, tenant: &str, by: &TestUser, name: &str) -> String {
        let resp = self
            .post(
                &format!("/api/v1/tenants/{tenant}/projects"),
                Some(&by.token),
                json!({"name": name}),
            )
            .await;
        resp.assert(201);
        resp.body["id"].as_str().expect("project id").to_owned()
    }
}

/// A tenant with one user per system role, plus an outsider with a tenant of their own.
pub struct World {
    pub tenant: String,
    pub owner: TestUser,
    pub admin: TestUser,
    pub member: TestUser,
    pub viewer: TestUser,
    pub outsider: TestUser,
    pub other_tenant: String,
}

impl TestApp {
    pub async fn world(&self) -> World {
        let owner = self.register("owner@example.com").await;
        let admin = self.register("admin@example.com").await;
        let member = self.register("member@example.com").await;
        let viewer = self.register("viewer@example.com").await;
        let outsider = self.register("outsider@example.com").await;
        // Everyone here has a verified address, as inviting and joining need.
        for user in [&owner, &admin, &member, &viewer, &outsider] {
            self.verify_email(user).await;
        }
        let tenant = self.create_tenant(&owner, "Acme").await;
        self.add_member(&tenant, &owner, &admin, "admin").await;
        self.add_member(&tenant, &owner, &member, "member").await;
        self.add_member(&tenant, &owner, &viewer, "viewer").await;
        let other_tenant = self.create_tenant(&outsider, "Globex").await;
        World {
            tenant,
            owner,
            admin,
            member,
            viewer,
            outsider,
            other_tenant,
        }
    }
}

/// Declares each listed `async fn(TestApp)` as a test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite, stringify!($name))
                        .await
                        .expect("SQLite is always available");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres, stringify!($name)).await
                    else {
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// Starts Tenantry on `backend` delivering mail through a real SMTP server (`None` when the
/// backend or the SMTP server is unavailable and the run is not strict).
pub async fn spawn_mail_app(
    backend: Backend,
    test: &str,
) -> Option<(TestApp, tenantry_testkit::SmtpSink)> {
    let sink = tenantry_testkit::smtp_sink(test)?;
    let url = sink.url.clone();
    let app = spawn_app_with(backend, test, move |config| {
        config.smtp_url = Some(url.into());
        config.public_url = Some("https://app.example.test".into());
    })
    .await?;
    Some((app, sink))
}

/// Like `backend_tests!`, for `async fn(TestApp, SmtpSink)` tests whose mail goes through
/// the SMTP test server.
#[macro_export]
macro_rules! mail_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite_smtp {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((app, sink)) = $crate::helpers::spawn_mail_app(
                        $crate::helpers::Backend::Sqlite, stringify!($name)).await
                    else {
                        return;
                    };
                    super::$name(app, sink).await;
                }
            )*
        }
        mod postgres_smtp {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((app, sink)) = $crate::helpers::spawn_mail_app(
                        $crate::helpers::Backend::Postgres, stringify!($name)).await
                    else {
                        return;
                    };
                    super::$name(app, sink).await;
                }
            )*
        }
    };
}

/// A unique address, so tests sharing one SMTP server read only their own mail.
pub fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.test", uuid::Uuid::now_v7().simple())
}

impl TestApp {
    /// A connection to this app's own database (as its owner), for arranging states the API
    /// cannot reach, such as an expired token.
    pub async fn db(&self) -> tenantry_db::Db {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tenantry.db").display()),
        };
        tenantry_db::Db::connect(&url, &Default::default())
            .await
            .expect("connect to the test database")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }
}

impl TestApp {
    /// The `kind`s of the caller's security events, newest first.
    pub async fn security_event_kinds(&self, token: &str) -> Vec<String> {
        let resp = self
            .get("/api/v1/users/me/security-events?limit=200", Some(token))
            .await;
        resp.assert(200);
        resp.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["kind"].as_str().expect("kind").to_owned())
            .collect()
    }
}
