//! The README's configuration table against the composed defaults: every key has a row, every
//! row names a key, each environment variable is its key's, and where the README states a
//! default as a value (a code span first in the cell), it is the real one. Defaults that are
//! unset in the types (the README then says what takes their place, e.g. `sqlite://<data_dir>/…`)
//! and keys without a default (`required`) are checked for what they are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tenantry_identity::config::OidcProviderConfig;

use super::Config;

const README: &str = include_str!("../../../../README.md");

/// What the types say about one key.
#[derive(Debug, Clone, PartialEq)]
enum KeyDefault {
    Required,
    Value(Value),
}

/// The leaves of `value` as dotted keys (`auth.access_token_ttl_secs`).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, KeyDefault>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), KeyDefault::Value(leaf.clone()));
        }
    }
}

/// The keys of a list element such as `[[auth.oidc]]`: fields serde demands are found by
/// deserializing an empty table and filling in what it asks for.
fn element_keys<T: serde::de::DeserializeOwned + serde::Serialize>(
    prefix: &str,
    out: &mut BTreeMap<String, KeyDefault>,
) {
    let mut table = Map::new();
    let mut required = Vec::new();
    let element: T = loop {
        match serde_json::from_value(Value::Object(table.clone())) {
            Ok(element) => break element,
            Err(error) => {
                let message = error.to_string();
                let field = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                    .unwrap_or_else(|| panic!("{prefix}: {message}"))
                    .to_owned();
                table.insert(field.clone(), Value::String("placeholder".into()));
                required.push(field);
            }
        }
    };
    flatten(prefix, &serde_json::to_value(element).unwrap(), out);
    for field in required {
        out.insert(format!("{prefix}.{field}"), KeyDefault::Required);
    }
}

/// Every key of the composed configuration with its default.
fn composed() -> BTreeMap<String, KeyDefault> {
    let mut keys = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut keys,
    );
    element_keys::<OidcProviderConfig>("auth.oidc[]", &mut keys);
    keys
}

/// A row of the README table: its keys, environment variables and default cell.
#[derive(Debug)]
struct Row {
    keys: Vec<String>,
    env: Vec<String>,
    default_cell: String,
    default_spans: Vec<String>,
}

/// The code spans of a table cell, in order.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The cells of a table row (a `|` inside a code span does not separate cells).
fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let (mut start, mut in_code) = (0, false);
    for (i, c) in inner.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '|' if !in_code => {
                cells.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    cells.push(inner[start..].trim());
    cells
}

fn readme_rows() -> Vec<Row> {
    let section = README
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a `## Configuration` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let rows: Vec<Row> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells = cells(line);
            assert_eq!(cells.len(), 4, "README row with other than 4 cells: {line}");
            let named = spans(cells[0]);
            let first = named[0].clone();
            let parent = first.rsplit_once('.').map(|(parent, _)| parent);
            // `auth.oidc[].email_claim`, `email_verified_claim`: later keys may omit the parent.
            let keys = named
                .iter()
                .map(|key| match parent {
                    Some(parent) if !key.contains('.') && *key != first => {
                        format!("{parent}.{key}")
                    }
                    _ => key.clone(),
                })
                .collect();
            Row {
                keys,
                env: spans(cells[1])
                    .into_iter()
                    .filter(|span| span.starts_with("TENANTRY_"))
                    .collect(),
                default_cell: cells[2].to_owned(),
                default_spans: spans(cells[2]),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "no configuration table in the README");
    rows
}

/// The value as the README writes it: strings bare, everything else as JSON (`[]`, `true`).
fn rendered(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn env_var(key: &str) -> String {
    format!("TENANTRY_{}", key.to_ascii_uppercase().replace('.', "__"))
}

#[test]
fn the_readme_configuration_table_matches_the_composed_defaults() {
    let composed = composed();
    let rows = readme_rows();
    let mut problems = Vec::new();
    let mut documented = BTreeMap::new();
    for row in &rows {
        for key in &row.keys {
            if documented.insert(key.clone(), ()).is_some() {
                problems.push(format!("`{key}` has more than one row"));
            }
            if !composed.contains_key(key) {
                problems.push(format!(
                    "`{key}` is in the README but is no configuration key"
                ));
            }
        }
        // List elements are configured with their list, not one variable each.
        let expected: Vec<String> = row
            .keys
            .iter()
            .filter(|key| !key.contains("[]"))
            .map(|key| env_var(key))
            .collect();
        if row.env != expected {
            problems.push(format!(
                "{:?}: environment variables {:?}, expected {expected:?}",
                row.keys, row.env
            ));
        }
        for (i, key) in row.keys.iter().enumerate() {
            match composed.get(key) {
                Some(KeyDefault::Required) if row.default_cell != "required" => problems.push(
                    format!("`{key}` has no default: the README should say `required`"),
                ),
                // Unset in the types: the README says what takes its place.
                Some(KeyDefault::Value(Value::Null)) | Some(KeyDefault::Required) | None => {}
                Some(KeyDefault::Value(value)) => {
                    let stated = row.default_spans.get(i);
                    let first_is_a_span = row.default_cell.starts_with('`');
                    if !first_is_a_span || stated != Some(&rendered(value)) {
                        problems.push(format!(
                            "`{key}`: the README's default is {:?}, the real one `{}`",
                            row.default_cell,
                            rendered(value)
                        ));
                    }
                }
            }
        }
    }
    for key in composed.keys() {
        if !documented.contains_key(key) {
            problems.push(format!("`{key}` has no row in the README"));
        }
    }
    assert!(
        problems.is_empty(),
        "README configuration table:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn secrets_serialize_as_unset() {
    let mut config = Config {
        database_url: Some("postgres://u:hunter2@h/db".into()),
        secret_key: Some("hunter2".into()),
        smtp_url: Some("smtp://u:hunter2@h".into()),
        bootstrap_admin_password: Some("hunter2".into()),
        ..Config::default()
    };
    config.s3.secret_access_key = Some("hunter2".into());
    config.http.metrics_token = Some("hunter2".into());
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
}
