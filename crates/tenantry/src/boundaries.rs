//! Workspace tripwires: the bounded contexts stay bounded.
//!
//! They read the sources rather than the types because what they guard is a convention the
//! compiler cannot see: a table name is a string, and a scope constructor is a public function
//! (crates below the authorization layer must be able to define it).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The workspace's crates: name → directory.
fn crates() -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect()
}

/// The production part of a source file: unit tests build fixture tables of their own
/// (`CREATE TABLE t`), which neither own nor name anything.
fn production(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// A string literal's contents and the code character before it (`(` for `.from("x")`).
struct Literal {
    text: String,
    after: char,
}

/// The contents of every string literal in `source` (plain, raw and byte strings), comments
/// and character literals skipped.
fn string_literals(source: &str) -> Vec<Literal> {
    let chars: Vec<char> = source.chars().collect();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            // A character literal ('"', '\'', 'x'); otherwise a lifetime.
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 3,
            'r' if (chars.get(i + 1) == Some(&'"') || chars.get(i + 1) == Some(&'#'))
                && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    i = j;
                    continue;
                }
                let start = j + 1;
                let mut end = start;
                loop {
                    if end >= chars.len() {
                        break;
                    }
                    if chars[end] == '"'
                        && (0..hashes).all(|h| chars.get(end + 1 + h) == Some(&'#'))
                    {
                        break;
                    }
                    end += 1;
                }
                literals.push(Literal {
                    text: chars[start..end.min(chars.len())].iter().collect(),
                    after: before(&chars, i),
                });
                i = end + 1 + hashes;
            }
            '"' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '"' {
                    if chars[end] == '\\' {
                        end += 1;
                    }
                    end += 1;
                }
                literals.push(Literal {
                    text: chars[start..end.min(chars.len())].iter().collect(),
                    after: before(&chars, i),
                });
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    literals
}

/// The last non-blank character before position `i`.
fn before(chars: &[char], i: usize) -> char {
    chars[..i]
        .iter()
        .rev()
        .find(|c| !c.is_whitespace())
        .copied()
        .unwrap_or(' ')
}

fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Tables named in one string literal: the whole literal when it is an argument (a sea-query
/// identifier such as `.from("tenants")` or `("tenants", "id")`; not `tag = "files"` or an
/// object-key segment) or a word after an SQL keyword (written in capitals, as every statement
/// here is; "Create and update projects" is prose) that takes a table. A table after
/// `REFERENCES` is not counted: a foreign key reads and writes nothing, it lets the database
/// keep the owner's rows and the dependent's consistent (the dependency it expresses points
/// the same way as the crate graph, and the owner's migrations run first).
fn tables_named(literal: &Literal) -> Vec<String> {
    let trimmed = literal.text.trim();
    if matches!(literal.after, '(' | ',' | '[')
        && !trimmed.is_empty()
        && trimmed
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return vec![trimmed.to_owned()];
    }
    let words = words(&literal.text);
    words
        .windows(2)
        .filter(|pair| {
            matches!(
                pair[0],
                "FROM" | "JOIN" | "INTO" | "UPDATE" | "TABLE" | "EXISTS" | "ON" | "TRUNCATE"
            )
        })
        .map(|pair| pair[1].to_owned())
        .collect()
}

/// Which crate's migrations create each table.
fn table_owners(crates: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for (name, dir) in crates {
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for literal in string_literals(production(&text)) {
                let words = words(&literal.text);
                for (i, pair) in words.windows(2).enumerate() {
                    if pair[0].eq_ignore_ascii_case("CREATE")
                        && pair[1].eq_ignore_ascii_case("TABLE")
                    {
                        let mut table = words[i + 2..].iter();
                        let mut next = table.next();
                        // CREATE TABLE IF NOT EXISTS name
                        if next.is_some_and(|w| w.eq_ignore_ascii_case("IF")) {
                            next = table.nth(2);
                        }
                        let table = next.unwrap().to_string();
                        if let Some(other) = owners.insert(table.clone(), name.clone()) {
                            assert_eq!(&other, name, "{table} created by two crates");
                        }
                    }
                }
            }
        }
    }
    owners
}

/// Crossings that stand, each with its reason. Nothing else may be added without one.
const KNOWN_CROSSINGS: &[(&str, &str, &str)] = &[(
    "tenantry-audit",
    "tenants",
    "the trigger and policy in audit's migration admit deleting records only of a tenant \
         whose status is `deleted`: the database guards the trail, no code reads the table",
)];

/// Every place a crate names (in its `src/`) a table another crate's migrations create.
fn foreign_table_names() -> Vec<String> {
    let crates = crates();
    let owners = table_owners(&crates);
    let mut offenders = BTreeSet::new();
    for (name, dir) in &crates {
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for literal in string_literals(production(&text)) {
                for table in tables_named(&literal) {
                    if let Some(owner) = owners.get(&table)
                        && owner != name
                        && !KNOWN_CROSSINGS
                            .iter()
                            .any(|(by, known, _)| by == name && *known == table)
                    {
                        let path = file.strip_prefix(crates_dir()).unwrap_or(&file);
                        offenders.insert(format!(
                            "{} names {table} (owned by {owner})",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    offenders.into_iter().collect()
}

/// No context reads or writes another context's tables: it calls the owner's functions.
#[test]
fn contexts_name_only_their_own_tables() {
    let owners = table_owners(&crates());
    // The scan must see the schema, or it proves nothing.
    for (table, owner) in [
        ("tenants", "tenantry-tenancy"),
        ("users", "tenantry-identity"),
        ("mail_outbox", "tenantry-notify"),
        ("audit_logs", "tenantry-audit"),
        ("files", "tenantry-files"),
        ("idempotency_keys", "tenantry-api"),
    ] {
        assert_eq!(
            owners.get(table).map(String::as_str),
            Some(owner),
            "{table}"
        );
    }
    let offenders = foreign_table_names();
    assert!(
        offenders.is_empty(),
        "tables named outside their owner:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn table_names_are_found_in_literals() {
    let source = r##"
        // .from("commented")
        let c = '"'; let q = Query::select().from("projects").column(("tenants", "id"));
        let s = "DELETE FROM audit_logs WHERE x"; let r = r#"SELECT 1 FROM "users" u"#;
        let fk = "FOREIGN KEY (tenant_id) REFERENCES tenants (id)";
        let prose = ("Create and update projects", "projects:read"); const K: &str = "files";
    "##;
    let named: Vec<String> = string_literals(source)
        .iter()
        .flat_map(tables_named)
        .collect();
    assert_eq!(named, ["projects", "tenants", "id", "audit_logs", "users"]);
}

/// Every scope constructor and the only places that may call it: its authorization path. A
/// new scope (relay, worker, agent) adds a row. An entry ending in `/` is a directory.
const SCOPE_ISSUERS: &[(&str, &[&str])] = &[
    // After membership, tenant status and permission checks.
    (
        "issue_after_authorization",
        &["tenantry-tenancy/src/authz.rs"],
    ),
    // After checking the platform-admin flag.
    (
        "issue_for_platform_admin",
        &["tenantry-tenancy/src/authz.rs"],
    ),
    // To an authenticated user, for their own rows.
    (
        "for_authenticated",
        &[
            "tenantry-tenancy/src/authz.rs",
            // The database layer's own test of `begin_user`.
            "tenantry-db/tests/",
        ],
    ),
    // Work no request causes: the scheduler hands it to periodic tasks, the command line is
    // the operator on the machine, and integration tests stand in for both.
    (
        "for_housekeeping",
        &[
            "tenantry-db/src/periodic.rs",
            "tenantry/src/main.rs",
            "/tests/",
        ],
    ),
];

/// Each scope is constructed only on its authorization path, so holding one proves the
/// check was made.
#[test]
fn scopes_are_issued_only_by_their_authorization_path() {
    let root = crates_dir();
    let mut offenders = Vec::new();
    for file in rust_files(&root) {
        let relative = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        // This file names them to guard them.
        if relative == "tenantry/src/boundaries.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (constructor, allowed) in SCOPE_ISSUERS {
            let calls = text.matches(&format!("{constructor}(")).count();
            let definitions = text.matches(&format!("fn {constructor}(")).count();
            let permitted = allowed.iter().any(|place| {
                if place.ends_with('/') {
                    relative.contains(place) || relative.starts_with(&place[1..])
                } else {
                    relative == *place
                }
            });
            if calls > definitions && !permitted {
                offenders.push(format!("{relative} calls {constructor}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "scopes constructed outside their authorization path:\n{}",
        offenders.join("\n")
    );
}

/// The `tenantry-*` crates a crate's manifest depends on (normal dependencies).
fn workspace_dependencies(dir: &Path) -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("\n[dependencies]")
        .nth(1)
        .map(|rest| rest.split("\n[").next().unwrap_or(rest))
        .unwrap_or("");
    dependencies
        .lines()
        .filter_map(|line| line.split(['=', ' ', '.']).next())
        .filter(|name| name.starts_with("tenantry-"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn shared_crates_depend_on_no_context() {
    let crates = crates();
    let shared = ["tenantry-core", "tenantry-db", "tenantry-http"];
    for name in shared {
        let dependencies = workspace_dependencies(&crates[name]);
        let contexts: Vec<_> = dependencies
            .iter()
            .filter(|d| !shared.contains(&d.as_str()))
            .collect();
        assert!(
            contexts.is_empty(),
            "{name} is shared vocabulary, yet depends on {contexts:?}"
        );
    }
    assert!(
        workspace_dependencies(&crates["tenantry-http"]).contains("tenantry-core"),
        "the manifest parser found the dependencies"
    );
}

/// Inserts write each column beside its value (`tenantry_db::InsertRow`): two parallel lists
/// can disagree in order, and sea-query's `values_panic` panics when they disagree in length.
#[test]
fn inserts_pair_columns_with_values() {
    let mut offenders = Vec::new();
    for dir in crates().values() {
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            if production(&text).contains(".values_panic(") {
                offenders.push(file.strip_prefix(crates_dir()).unwrap_or(&file).to_owned());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use InsertRow::row / row_in instead of columns + values_panic in {offenders:?}"
    );
}

/// Files reaches projects and the download-link requester's grant through what the assembly
/// wires (`ProjectLookup`, the router state's `Gate`), never by depending on their owners.
#[test]
fn files_depends_on_neither_identity_nor_tenancy() {
    let dependencies = workspace_dependencies(&crates()["tenantry-files"]);
    for owner in ["tenantry-identity", "tenantry-tenancy"] {
        assert!(
            !dependencies.contains(owner),
            "tenantry-files depends on {owner}"
        );
    }
    assert!(
        dependencies.contains("tenantry-http"),
        "the manifest parser found the dependencies"
    );
}

/// The assembly holds no context's handler: its only operations are the operations endpoints
/// (health, readiness, metrics, keys). A context's routes live in its own `src/http/`.
#[test]
fn the_assembly_has_no_context_handlers() {
    let api = &crates()["tenantry-api"];
    let with_operations: Vec<_> = rust_files(&api.join("src"))
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            production(&text).contains("#[utoipa::path(")
        })
        .map(|file| file.strip_prefix(api).unwrap_or(&file).to_owned())
        .collect();
    assert_eq!(
        with_operations,
        vec![PathBuf::from("src/routes/ops.rs")],
        "handlers belong to the context that owns their service"
    );
}

/// Where production code may read the system clock directly; everything else reads the
/// deployment's `Clock` (`Db::now`, `Tx::now`), which tests advance instead of sleeping.
const SYSTEM_CLOCK_READERS: &[(&str, &str)] = &[
    ("tenantry-core/src/lib.rs", "defines `now`"),
    ("tenantry-core/src/clock.rs", "the `Clock` itself"),
    (
        "tenantry-identity/src/tokens.rs",
        "`jsonwebtoken` checks `exp`/`nbf` against the system clock",
    ),
    (
        "tenantry-identity/src/mfa.rs",
        "TOTP codes follow real time",
    ),
    (
        "tenantry-storage/src/signer.rs",
        "`UrlSigner::verify`; the server calls `verify_at` with its clock",
    ),
];

#[test]
fn services_read_the_time_from_the_clock() {
    let root = crates_dir();
    let mut offenders = Vec::new();
    for (name, dir) in crates() {
        if name == "tenantry-testkit" {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            let relative = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            if relative == "tenantry/src/boundaries.rs"
                || SYSTEM_CLOCK_READERS
                    .iter()
                    .any(|(place, _)| relative == *place)
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let code = production(&text);
            for read in ["Utc::now()", "tenantry_core::now()", "SystemTime::now()"] {
                if code.contains(read) {
                    offenders.push(format!("{relative} calls {read}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "wall-clock reads outside the Clock (use db.now() or tx.now()):\n{}",
        offenders.join("\n")
    );
}
