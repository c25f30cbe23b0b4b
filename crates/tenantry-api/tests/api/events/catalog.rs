//! `docs/events.md` is the catalog of event types rendered with their `data` schemas.

use serde_json::Value;
use tenantry_events::{EventScope, EventType};

/// The catalog as `docs/events.md` shows it: each type with its subject and the fields of
/// its `data` schema, taken from the OpenAPI document so the two cannot disagree.
fn render_catalog(openapi: &Value) -> String {
    let schemas = &openapi["components"]["schemas"];
    let mut out = String::from(
        "# Domain events\n\n\
         <!-- Generated from `tenantry_events::EventType` and the OpenAPI document by the test \
         `events::event_catalog_is_documented`; run it with `TENANTRY_WRITE_DOCS=1` to refresh. -->\n\n\
         Every change of a tenant's state is recorded in the transaction of the change as an audit \
         record and a CloudEvents 1.0 event (`tenantry_events::record_change`; table \
         `domain_events`, the outbox). The event's `source` is `/tenants/{tenant_id}`, `tenantid` \
         the tenant, `userid` the person who caused it (an API key's creator; a platform \
         administrator for suspensions), `subject` the resource below. `data` is the resource as \
         its GET returns it (the OpenAPI component named here); for `*.updated` it also carries \
         `changes`, the names of the fields the update set.\n\n\
         Changes of an account, which belongs to no tenant, are recorded the same way in the \
         account's audit chain and the platform outbox `platform_events` (`tenantry_events::\
         record_account_change`): `source` `/users/{user_id}`, no `tenantid`; the request role \
         cannot read that table ([ADR 0012](adr/0012-account-events-in-a-platform-outbox.md)).\n",
    );
    let mut used = Vec::new();
    for (scope, title) in [
        (EventScope::Tenant, "Tenant events (`domain_events`)"),
        (EventScope::Account, "Account events (`platform_events`)"),
    ] {
        out.push_str(&format!(
            "\n## {title}\n\n| type | subject | `data` | when |\n|---|---|---|---|\n"
        ));
        for t in EventType::ALL.into_iter().filter(|t| t.scope() == scope) {
            let schema = t.data_schema();
            let link = format!("[`{schema}`](#{})", schema.to_lowercase());
            let data = if t.is_update() {
                format!("{link} + `changes`")
            } else {
                link
            };
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                t.as_str(),
                t.subject_pattern(),
                data,
                t.description()
            ));
            if !used.contains(&schema) {
                used.push(schema);
            }
        }
    }
    out.push_str("\n## `data` schemas\n");
    for name in used {
        let schema = &schemas[name];
        assert!(
            schema.is_object(),
            "{name} is not in the OpenAPI components"
        );
        out.push_str(&format!("\n### {name}\n\n| field | type |\n|---|---|\n"));
        let mut fields = Vec::new();
        collect_fields(schemas, schema, &mut fields);
        for (field, ty) in fields {
            out.push_str(&format!("| `{field}` | {ty} |\n"));
        }
    }
    out
}

/// The properties of `schema`, following `allOf` (flattened fields) and `$ref`s.
fn collect_fields(schemas: &Value, schema: &Value, out: &mut Vec<(String, String)>) {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap();
        return collect_fields(schemas, &schemas[name], out);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect_fields(schemas, part, out);
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (field, property) in schema["properties"].as_object().into_iter().flatten() {
        let mut ty = type_of(property);
        if !required.contains(&field.as_str()) {
            ty.push_str(" (optional)");
        }
        out.push((field.clone(), ty));
    }
}

fn type_of(property: &Value) -> String {
    if let Some(target) = property["$ref"].as_str() {
        return format!("`{}`", target.rsplit('/').next().unwrap());
    }
    if let Some(parts) = property["oneOf"]
        .as_array()
        .or(property["anyOf"].as_array())
    {
        return parts.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    let base = match &property["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    let base = match property["items"].is_object() {
        true => base.replace(
            "array",
            &format!("array of {}", type_of(&property["items"])),
        ),
        false => base,
    };
    match property["format"].as_str() {
        Some(format) => format!("{base} ({format})"),
        None => base,
    }
}

#[tokio::test]
async fn event_catalog_is_documented() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite, "event_catalog")
        .await
        .unwrap();
    let openapi = app.get("/openapi.json", None).await.body;
    assert!(openapi["components"]["schemas"]["CloudEvent"].is_object());
    let rendered = render_catalog(&openapi);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    if std::env::var_os("TENANTRY_WRITE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let documented = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        documented == rendered,
        "docs/events.md is not the catalog: run this test with TENANTRY_WRITE_DOCS=1"
    );
}
