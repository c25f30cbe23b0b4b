//! Metadata changes, deletion, collection of unreferenced files, the files API, events and
//! audit.

use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{AdminScope, DbError, FromRow, Row};

use super::{Upload, documents, stored_objects, upload, usage};
use crate::helpers::TestApp;

crate::backend_tests!(
    metadata_changes_need_write_and_are_validated,
    deleting_documents_collects_their_file_after_the_grace_period,
    files_are_deleted_only_when_unreferenced,
    uploads_and_deletions_record_cloud_events_and_audit,
);

async fn metadata_changes_need_write_and_are_validated(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let doc = upload(&app, t, &w.member.token, Upload::text("x", "draft.txt")).await;
    doc.assert(201);
    let path = format!("{}/{}", documents(t), doc.body["id"].as_str().unwrap());
    let renamed = app
        .patch(
            &path,
            Some(&w.member.token),
            json!({"filename": " final.txt "}),
        )
        .await;
    renamed.assert(200);
    assert_eq!(renamed.body["filename"], "final.txt");
    assert_eq!(renamed.body["mime_type"], "text/plain");
    assert_eq!(renamed.body["sha256"], doc.body["sha256"]);
    let replaced = app
        .put(
            &path,
            Some(&w.member.token),
            json!({"filename": "data.csv", "mime_type": "text/csv; charset=utf-8"}),
        )
        .await;
    replaced.assert(200);
    assert_eq!(replaced.body["mime_type"], "text/csv");
    for (body, field) in [
        (json!({"filename": ""}), "filename"),
        (json!({"filename": "a/b"}), "filename"),
        (json!({"mime_type": "nope"}), "mime_type"),
    ] {
        let r = app.patch(&path, Some(&w.member.token), body).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let r = app
        .put(&path, Some(&w.member.token), json!({"filename": "x"}))
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "mime_type");
    app.patch(&path, Some(&w.member.token), json!({"size": 1}))
        .await
        .assert(422);
    app.patch(&path, Some(&w.viewer.token), json!({"filename": "v.txt"}))
        .await
        .assert_problem(403, "forbidden");
    // Members write but do not delete.
    app.delete(&path, Some(&w.member.token))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&path, Some(&w.admin.token)).await.assert(204);
    app.get(&path, Some(&w.admin.token))
        .await
        .assert_problem(404, "not_found");
    app.delete(&path, Some(&w.admin.token))
        .await
        .assert_problem(404, "not_found");
}

async fn sweep(app: &TestApp) -> tenantry_files::SweepReport {
    app.state
        .files
        .sweep(&AdminScope::for_housekeeping(), std::time::Duration::ZERO)
        .await
        .unwrap()
}

async fn deleting_documents_collects_their_file_after_the_grace_period(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let one = upload(&app, t, &w.owner.token, Upload::text("shared", "1.txt")).await;
    let two = upload(&app, t, &w.owner.token, Upload::text("shared", "2.txt")).await;
    let file = one.body["file_id"].as_str().unwrap().to_owned();
    let file_path = format!("/api/v1/tenants/{t}/files/{file}");
    app.delete(
        &format!("{}/{}", documents(t), one.body["id"].as_str().unwrap()),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    // Still referenced by the second document: the sweep leaves it.
    assert_eq!(sweep(&app).await.files, 0);
    let still = app.get(&file_path, Some(&w.owner.token)).await;
    still.assert(200);
    assert_eq!(still.body["unreferenced_since"], Value::Null);
    app.delete(
        &format!("{}/{}", documents(t), two.body["id"].as_str().unwrap()),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    let marked = app.get(&file_path, Some(&w.owner.token)).await;
    marked.assert(200);
    assert_eq!(marked.body["document_count"], 0);
    assert!(marked.body["unreferenced_since"].is_string());
    // Within the grace period (the configured hour) nothing is collected; a re-upload of the
    // same content reuses the file and clears the mark.
    let configured = app.state.files.settings().orphan_grace;
    let report = app
        .state
        .files
        .sweep(&AdminScope::for_housekeeping(), configured)
        .await
        .unwrap();
    assert_eq!(report.files, 0);
    let again = upload(&app, t, &w.owner.token, Upload::text("shared", "3.txt")).await;
    assert_eq!(again.body["file_id"], file.as_str());
    let reused = app.get(&file_path, Some(&w.owner.token)).await;
    assert_eq!(reused.body["unreferenced_since"], Value::Null);
    app.delete(
        &format!("{}/{}", documents(t), again.body["id"].as_str().unwrap()),
        Some(&w.owner.token),
    )
    .await
    .assert(204);
    let before = usage(&app, t, &w.owner.token).await;
    assert_eq!(
        before,
        json!({"bytes": 6, "files": 1, "documents": 0, "quota_bytes": null})
    );
    assert_eq!(sweep(&app).await.files, 1);
    app.get(&file_path, Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        usage(&app, t, &w.owner.token).await,
        json!({"bytes": 0, "files": 0, "documents": 0, "quota_bytes": null})
    );
    assert!(
        stored_objects(&app).is_empty(),
        "{:?}",
        stored_objects(&app)
    );
}

async fn files_are_deleted_only_when_unreferenced(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let doc = upload(&app, t, &w.member.token, Upload::text("keep me", "k.txt")).await;
    let file = doc.body["file_id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{t}/files/{file}");
    let list = app
        .get(&format!("/api/v1/tenants/{t}/files"), Some(&w.admin.token))
        .await;
    list.assert(200);
    assert_eq!(list.body["items"][0]["id"], file);
    assert_eq!(list.body["items"][0]["document_count"], 1);
    // files:* are for owners and admins.
    app.get(&format!("/api/v1/tenants/{t}/files"), Some(&w.member.token))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&path, Some(&w.member.token))
        .await
        .assert_problem(403, "forbidden");
    app.delete(&path, Some(&w.admin.token))
        .await
        .assert_problem(409, "file_in_use");
    app.delete(
        &format!("{}/{}", documents(t), doc.body["id"].as_str().unwrap()),
        Some(&w.admin.token),
    )
    .await
    .assert(204);
    app.delete(&path, Some(&w.admin.token)).await.assert(204);
    app.get(&path, Some(&w.admin.token))
        .await
        .assert_problem(404, "not_found");
    assert!(stored_objects(&app).is_empty());
    assert_eq!(usage(&app, t, &w.admin.token).await["bytes"], 0);
    // Another tenant's file id answers like a missing one.
    let theirs = upload(
        &app,
        &w.other_tenant,
        &w.outsider.token,
        Upload::text("b", "b"),
    )
    .await;
    let foreign = format!(
        "/api/v1/tenants/{t}/files/{}",
        theirs.body["file_id"].as_str().unwrap()
    );
    app.get(&foreign, Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
    app.delete(&foreign, Some(&w.owner.token))
        .await
        .assert_problem(404, "not_found");
    // A project with documents cannot be deleted.
    let project = app.create_project(t, &w.owner, "Busy").await;
    upload(
        &app,
        t,
        &w.owner.token,
        Upload::text("p", "p").in_project(&project),
    )
    .await
    .assert(201);
    app.delete(
        &format!("/api/v1/tenants/{t}/projects/{project}"),
        Some(&w.owner.token),
    )
    .await
    .assert_problem(409, "conflict");
}

struct Event(String, String, String, Option<uuid::Uuid>, Value);

impl FromRow for Event {
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

async fn uploads_and_deletions_record_cloud_events_and_audit(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let doc = upload(&app, t, &w.member.token, Upload::text("evented", "e.txt")).await;
    let id = doc.body["id"].as_str().unwrap();
    app.delete(&format!("{}/{id}", documents(t)), Some(&w.owner.token))
        .await
        .assert(204);
    let tenant: uuid::Uuid = t.parse().unwrap();
    let events: Vec<Event> = app
        .db()
        .await
        .read_all(
            Query::select()
                .columns(["type", "source", "subject", "user_id", "data"])
                .from("domain_events")
                .and_where(Expr::col("tenant_id").eq(tenant))
                // The world's tenancy events (tenant.created, member.added, …) come first.
                .and_where(Expr::col("type").like("document.%"))
                .order_by("id", Order::Asc),
        )
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(types, ["document.uploaded", "document.deleted"]);
    let uploaded = &events[0];
    assert_eq!(uploaded.1, format!("/tenants/{t}"));
    assert_eq!(uploaded.2, format!("documents/{id}"));
    assert_eq!(uploaded.3.map(|u| u.to_string()), Some(w.member.id.clone()));
    assert_eq!(uploaded.4["sha256"], doc.body["sha256"]);
    assert_eq!(uploaded.4["deduplicated"], false);
    assert_eq!(events[1].3.map(|u| u.to_string()), Some(w.owner.id.clone()));
    let audit = app
        .get(
            &format!("/api/v1/tenants/{t}/audit-logs?action=document.uploaded"),
            Some(&w.owner.token),
        )
        .await;
    audit.assert(200);
    assert_eq!(audit.body["items"][0]["target"]["id"], id, "{}", audit.body);
}
