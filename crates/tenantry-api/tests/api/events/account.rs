//! Account events: changes of an account (no tenant) go to the platform outbox with their
//! audit record in the account's chain.

use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};
use tenantry_events::EventType;

use crate::admin::platform_admin;
use crate::helpers::{PASSWORD, TestApp};

crate::backend_tests!(account_changes_emit_platform_events);

/// One row of `platform_events`: type, source, subject, user, data.
struct PlatformEvent(String, String, String, Option<uuid::Uuid>, Value);

impl FromRow for PlatformEvent {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self(
            row.string()?,
            row.string()?,
            row.string()?,
            row.opt_uuid()?,
            row.json()?,
        ))
    }
}

async fn platform_events(app: &TestApp, subject: &str) -> Vec<PlatformEvent> {
    app.db()
        .await
        .read_all(
            Query::select()
                .columns(["type", "source", "subject", "user_id", "data"])
                .from("platform_events")
                .and_where(Expr::col("subject").eq(subject))
                .order_by("id", Order::Asc),
        )
        .await
        .unwrap()
}

/// The types and `data` of `user_id`'s account events, oldest first (for suites that reach
/// changes this module cannot, such as mailed links and TOTP).
pub async fn account_events(app: &TestApp, user_id: &str) -> Vec<(String, Value)> {
    platform_events(app, &format!("users/{user_id}"))
        .await
        .into_iter()
        .map(|e| (e.0, e.4))
        .collect()
}

async fn account_changes_emit_platform_events(app: TestApp) {
    let ada = app.register("ada@example.com").await;
    let subject = format!("users/{}", ada.id);
    let me = Some(ada.token.as_str());
    let registered = app.get("/api/v1/users/me", me).await;
    registered.assert(200);
    let changed = app
        .patch("/api/v1/users/me", me, json!({"first_name": "Augusta"}))
        .await;
    changed.assert(200);
    app.post(
        "/api/v1/users/me/password",
        me,
        json!({"current_password": PASSWORD, "new_password": "another horse battery"}),
    )
    .await
    .assert(204);
    let root = platform_admin(&app, "root@example.com").await;
    for action in ["disable", "enable"] {
        app.post(
            &format!("/api/v1/admin/users/{}/{action}", ada.id),
            Some(&root.token),
            json!({}),
        )
        .await
        .assert(200);
    }

    let events = platform_events(&app, &subject).await;
    let got: Vec<(&str, Option<String>)> = events
        .iter()
        .map(|e| (e.0.as_str(), e.3.map(|u| u.to_string())))
        .collect();
    assert_eq!(
        got,
        [
            (EventType::UserRegistered.as_str(), Some(ada.id.clone())),
            (EventType::UserUpdated.as_str(), Some(ada.id.clone())),
            (
                EventType::UserPasswordChanged.as_str(),
                Some(ada.id.clone())
            ),
            (EventType::UserDisabled.as_str(), Some(root.id.clone())),
            (EventType::UserEnabled.as_str(), Some(root.id.clone())),
        ]
    );
    for e in &events {
        assert_eq!(e.1, format!("/users/{}", ada.id));
        assert_eq!(e.2, subject);
        assert_eq!(e.4["id"], ada.id);
    }
    assert_eq!(events[0].4, registered.body);
    let mut updated = events[1].4.clone();
    assert_eq!(
        updated.as_object_mut().unwrap().remove("changes"),
        Some(json!(["first_name"]))
    );
    assert_eq!(updated, changed.body);
    assert_eq!(events[2].4["first_name"], "Augusta");

    // The administrator: registered, then promoted from the command line.
    let types = |events: Vec<(String, Value)>| -> Vec<String> {
        events.into_iter().map(|(t, _)| t).collect()
    };
    assert_eq!(
        types(account_events(&app, &root.id).await),
        ["user.registered", "user.platform_admin_granted"]
    );
    // A guest and a new administrator are created without a sign-up.
    let guest = app.post("/api/v1/auth/guest", None, json!({})).await;
    guest.assert(201);
    let guest_id = guest.body["user"]["id"].as_str().unwrap();
    let events = account_events(&app, guest_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "user.created");
    assert_eq!(events[0].1, guest.body["user"]);
    let (created, _) = app
        .state
        .identity
        .create_superuser(
            tenantry_core::Email::parse("ops@example.com").unwrap(),
            tenantry_core::Password::parse(PASSWORD).unwrap(),
        )
        .await
        .unwrap();
    let events = account_events(&app, &created.id.to_string()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "user.created");
    assert_eq!(events[0].1["is_platform_admin"], true);

    // Each has its record in the account's audit chain, in its transaction.
    let user: uuid::Uuid = ada.id.parse().unwrap();
    let actions: Vec<String> = app
        .db()
        .await
        .read_all(
            Query::select()
                .column("action")
                .from("audit_logs")
                .and_where(Expr::col("chain_id").eq(user))
                .order_by("seq", Order::Asc),
        )
        .await
        .unwrap();
    for expected in [
        "user.registered",
        "user.updated",
        "user.password_changed",
        "user.disabled",
        "user.enabled",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected}: {actions:?}"
        );
    }
}
