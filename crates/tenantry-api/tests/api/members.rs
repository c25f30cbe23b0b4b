use serde_json::json;

use crate::helpers::TestApp;

crate::backend_tests!(
    members_are_listed_with_profiles,
    members_are_added_by_id_or_email,
    adding_members_is_validated_and_permissioned,
    the_last_owner_cannot_be_removed_or_demoted,
    nobody_grants_more_than_they_hold,
    members_can_leave,
);

async fn members_are_listed_with_profiles(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/members", w.tenant);
    let r = app.get(&path, Some(&w.viewer.token)).await;
    r.assert(200);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let owner = items
        .iter()
        .find(|m| m["user_id"] == w.owner.id.as_str())
        .unwrap();
    assert_eq!(owner["role"], "owner");
    assert_eq!(owner["email"], "owner@example.com");
    let one = app
        .get(&format!("{path}/{}", w.member.id), Some(&w.viewer.token))
        .await;
    one.assert(200);
    assert_eq!(one.body["role"], "member");
    app.get(&format!("{path}/{}", w.outsider.id), Some(&w.owner.token))
        .await
        .assert(404);
    app.get(&path, Some(&w.outsider.token)).await.assert(404);
    app.get(&path, None).await.assert(401);
    let page = app
        .get(&format!("{path}?limit=3"), Some(&w.owner.token))
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("{path}?limit=3&cursor={cursor}"),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
}

/// Adding by address invites, with one answer whether or not the address has an account;
/// nobody is a member until they accept. Adding by id never adds.
async fn members_are_added_by_id_or_email(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/members", w.tenant);
    let newcomer = app.register("new@example.com").await;
    let existing = app
        .post(
            &path,
            Some(&w.admin.token),
            json!({"email": "NEW@example.com", "role": "viewer"}),
        )
        .await;
    let unknown = app
        .post(
            &path,
            Some(&w.admin.token),
            json!({"email": "ghost@example.com", "role": "viewer"}),
        )
        .await;
    for (r, email) in [
        (&existing, "new@example.com"),
        (&unknown, "ghost@example.com"),
    ] {
        r.assert(202);
        let invitation = &r.body["invitation"];
        assert_eq!(invitation["email"], email, "{}", r.body);
        assert_eq!(invitation["role"], "viewer");
        assert_eq!(invitation["invited_by"], w.admin.id.as_str());
    }
    assert_eq!(
        shape(&existing.body),
        shape(&unknown.body),
        "the same fields either way"
    );
    assert!(
        !existing.body.to_string().contains(&newcomer.id),
        "no account id"
    );
    // Nobody became a member.
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&newcomer.token),
    )
    .await
    .assert_problem(404, "not_found");
    let list = app.get(&path, Some(&w.owner.token)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 4);
    let pending = app
        .get(
            &format!("/api/v1/tenants/{}/invitations", w.tenant),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(pending.body["items"].as_array().unwrap().len(), 2);

    // By id: one answer for an account that exists and one that does not.
    let by_id = app
        .post(
            &path,
            Some(&w.admin.token),
            json!({"user_id": newcomer.id, "role": "member"}),
        )
        .await;
    by_id.assert_problem(422, "validation_failed");
    assert_eq!(by_id.body["errors"][0]["field"], "user_id");
    let nobody = app
        .post(
            &path,
            Some(&w.admin.token),
            json!({"user_id": "01a20000-0000-7000-8000-000000000000", "role": "member"}),
        )
        .await;
    assert_eq!(by_id.body, nobody.body);

    // The invitee accepts (with a verified address): now a member with the invited role.
    app.verify_email(&newcomer).await;
    let token = app.invitation_token(&w.tenant, "new@example.com").await;
    app.post(
        &format!("/api/v1/invitations/{token}/accept"),
        Some(&newcomer.token),
        json!({}),
    )
    .await
    .assert(200);
    let member = app
        .get(&format!("{path}/{}", newcomer.id), Some(&newcomer.token))
        .await;
    member.assert(200);
    assert_eq!(member.body["role"], "viewer");
    for body in [
        json!({"user_id": newcomer.id, "role": "member"}),
        json!({"email": "new@example.com", "role": "member"}),
    ] {
        app.post(&path, Some(&w.admin.token), body)
            .await
            .assert_problem(409, "already_exists");
    }
}

/// The keys of a JSON object, recursively (values left out).
fn shape(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), shape(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

async fn adding_members_is_validated_and_permissioned(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/members", w.tenant);
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"email": w.outsider.email, "role": "superuser"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"email": "not an address", "role": "member"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.post(&path, Some(&w.owner.token), json!({"role": "member"}))
        .await
        .assert(422);
    app.post(
        &path,
        Some(&w.owner.token),
        json!({"user_id": "nope", "role": "member"}),
    )
    .await
    .assert(422);
    for user in [&w.member, &w.viewer] {
        app.post(
            &path,
            Some(&user.token),
            json!({"email": w.outsider.email, "role": "viewer"}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    app.post(
        &path,
        Some(&w.admin.token),
        json!({"email": w.outsider.email, "role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post(
        &path,
        Some(&w.outsider.token),
        json!({"email": "x@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.post(
        &path,
        None,
        json!({"email": "x@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(401, "unauthenticated");
    let members = app.get(&path, Some(&w.owner.token)).await;
    assert_eq!(
        members.body["items"].as_array().unwrap().len(),
        4,
        "no write happened"
    );
    let pending = app
        .get(
            &format!("/api/v1/tenants/{}/invitations", w.tenant),
            Some(&w.owner.token),
        )
        .await;
    assert!(pending.body["items"].as_array().unwrap().is_empty());
}

async fn the_last_owner_cannot_be_removed_or_demoted(app: TestApp) {
    let w = app.world().await;
    let owner_path = format!("/api/v1/tenants/{}/members/{}", w.tenant, w.owner.id);
    app.patch(&owner_path, Some(&w.owner.token), json!({"role": "admin"}))
        .await
        .assert_problem(409, "last_owner");
    app.delete(&owner_path, Some(&w.owner.token))
        .await
        .assert_problem(409, "last_owner");
    // With a second owner, the first may step down.
    let admin_path = format!("/api/v1/tenants/{}/members/{}", w.tenant, w.admin.id);
    let r = app
        .patch(&admin_path, Some(&w.owner.token), json!({"role": "owner"}))
        .await;
    r.assert(200);
    assert_eq!(r.body["role"], "owner");
    app.patch(&owner_path, Some(&w.owner.token), json!({"role": "member"}))
        .await
        .assert(200);
    app.delete(&admin_path, Some(&w.admin.token))
        .await
        .assert_problem(409, "last_owner");
}

async fn nobody_grants_more_than_they_hold(app: TestApp) {
    let w = app.world().await;
    let members = format!("/api/v1/tenants/{}/members", w.tenant);
    // An admin lacks tenant:delete, so cannot make anyone owner or touch an owner.
    app.patch(
        &format!("{members}/{}", w.member.id),
        Some(&w.admin.token),
        json!({"role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(
        &format!("{members}/{}", w.admin.id),
        Some(&w.admin.token),
        json!({"role": "owner"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(
        &format!("{members}/{}", w.owner.id),
        Some(&w.admin.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.delete(&format!("{members}/{}", w.owner.id), Some(&w.admin.token))
        .await
        .assert_problem(403, "forbidden");
    // An admin may manage members below them.
    app.patch(
        &format!("{members}/{}", w.member.id),
        Some(&w.admin.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(200);
    app.patch(
        &format!("{members}/{}", w.viewer.id),
        Some(&w.member.token),
        json!({"role": "admin"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch(
        &format!("{members}/{}", w.outsider.id),
        Some(&w.owner.token),
        json!({"role": "viewer"}),
    )
    .await
    .assert(404);
}

async fn members_can_leave(app: TestApp) {
    let w = app.world().await;
    let path = format!("/api/v1/tenants/{}/members/{}", w.tenant, w.viewer.id);
    app.delete(&path, Some(&w.viewer.token)).await.assert(204);
    app.get(
        &format!("/api/v1/tenants/{}", w.tenant),
        Some(&w.viewer.token),
    )
    .await
    .assert(404);
    app.delete(
        &format!("/api/v1/tenants/{}/members/{}", w.tenant, w.member.id),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    let left = app
        .get(
            &format!("/api/v1/tenants/{}/members", w.tenant),
            Some(&w.owner.token),
        )
        .await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 2);
}
