//! The tenant's trail shows records about projects, their documents and their project roles
//! only to readers who may see those: a reader whose project role hides a project does not
//! see what happened in it, and pages stay full and ordered.

use serde_json::{Value, json};

use super::all_pages;
use crate::{
    documents::{Upload, upload},
    helpers::TestApp,
};

crate::backend_tests!(the_trail_hides_records_of_projects_the_reader_cannot_see);

fn targets(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|r| r["target"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn the_trail_hides_records_of_projects_the_reader_cannot_see(app: TestApp) {
    let w = app.world().await;
    let t = &w.tenant;
    let base = format!("/api/v1/tenants/{t}");
    let seen = app.create_project(t, &w.owner, "Seen").await;
    let hidden = app.create_project(t, &w.owner, "Hidden").await;
    let up = |project: String, name: &'static str| {
        let (app, owner) = (&app, &w.owner);
        async move {
            let r = upload(
                app,
                t,
                &owner.token,
                Upload::text(name, name).in_project(&project),
            )
            .await;
            r.assert(201);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let seen_doc = up(seen.clone(), "seen.txt").await;
    let hidden_doc = up(hidden.clone(), "hidden.txt").await;
    app.patch(
        &format!("{base}/documents/{hidden_doc}"),
        Some(&w.owner.token),
        json!({"filename": "still-hidden.txt"}),
    )
    .await
    .assert(200);
    // An auditor: reads the trail, projects and documents, except in the hidden project.
    let auditor = app.register("auditor@example.com").await;
    app.post(
        &format!("{base}/roles"),
        Some(&w.owner.token),
        json!({"name": "auditor",
               "permissions": ["audit:read", "projects:read", "documents:read"]}),
    )
    .await
    .assert(201);
    app.post(
        &format!("{base}/roles"),
        Some(&w.owner.token),
        json!({"name": "hidden", "permissions": []}),
    )
    .await
    .assert(201);
    app.add_member(t, &w.owner, &auditor, "auditor").await;
    app.put(
        &format!("{base}/projects/{hidden}/members/{}", auditor.id),
        Some(&w.owner.token),
        json!({"role": "hidden"}),
    )
    .await
    .assert(200);

    let trail = format!("{base}/audit-logs");
    let owners = all_pages(&app, &trail, &w.owner.token).await;
    let everything = targets(&owners);
    let hidden_assignment = format!("{hidden}/{}", auditor.id);
    for id in [&hidden, &hidden_doc, &hidden_assignment, &seen, &seen_doc] {
        assert!(everything.contains(id), "the owner sees {id}");
    }
    let auditors = all_pages(&app, &trail, &auditor.token).await;
    let visible = targets(&auditors);
    for id in [&hidden, &hidden_doc, &hidden_assignment] {
        assert!(!visible.contains(id), "the auditor must not see {id}");
    }
    assert!(
        !serde_json::to_string(&auditors)
            .unwrap()
            .contains("hidden.txt"),
        "nor the hidden document's names"
    );
    for id in [&seen, &seen_doc] {
        assert!(visible.contains(id), "the auditor sees {id}");
    }
    // Nothing else is hidden: the auditor's list is the owner's without the hidden project's.
    let ids = |items: Vec<&Value>| -> Vec<String> {
        items
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let hidden_ids = [&hidden, &hidden_doc, &hidden_assignment];
    let expected = ids(owners
        .iter()
        .filter(|r| {
            let id = r["target"]["id"].as_str().unwrap_or_default().to_owned();
            !hidden_ids.contains(&&id)
        })
        .collect());
    assert_eq!(ids(auditors.iter().collect()), expected);

    // Filtering happens in the query: pages of one stay full and cover the same records.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{trail}?limit=1&cursor={c}"),
            None => format!("{trail}?limit=1"),
        };
        let page = app.get(&url, Some(&auditor.token)).await;
        page.assert(200);
        let items = page.body["items"].as_array().unwrap();
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), 1, "a page before the last is full");
                cursor = Some(next.to_owned());
                paged.extend(items.iter().cloned());
            }
            None => {
                paged.extend(items.iter().cloned());
                break;
            }
        }
    }
    assert_eq!(targets(&paged), visible);
}
