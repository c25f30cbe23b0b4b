//! What the database and the blob store hold, read directly (not through the API), and the
//! invariants that must hold between them once the sweep has run.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use sea_query::Query;
use sha2::Digest;
use tenantry_db::{AdminScope, Db, DbError, FromRow, Row};
use tenantry_storage::BlobKey;
use uuid::Uuid;

use crate::Env;

#[derive(Debug, Clone)]
pub struct FileRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub sha256: String,
    pub size: i64,
    pub storage_key: String,
}

impl FromRow for FileRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant_id: row.uuid()?,
            id: row.uuid()?,
            sha256: row.string()?,
            size: row.i64()?,
            storage_key: row.string()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub file_id: Uuid,
    pub size: i64,
}

impl FromRow for DocumentRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            tenant_id: row.uuid()?,
            id: row.uuid()?,
            file_id: row.uuid()?,
            size: row.i64()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: i64,
    pub files: i64,
    pub documents: i64,
}

struct UsageRow(Uuid, Usage);

impl FromRow for UsageRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self(
            row.uuid()?,
            Usage {
                bytes: row.i64()?,
                files: row.i64()?,
                documents: row.i64()?,
            },
        ))
    }
}

/// One object in the blob store: key, size and the SHA-256 of its content.
#[derive(Debug, Clone)]
pub struct Object {
    pub size: u64,
    pub sha256: String,
}

/// Rows and objects at one moment (nothing may be writing).
#[derive(Debug)]
pub struct Snapshot {
    pub files: Vec<FileRow>,
    pub documents: Vec<DocumentRow>,
    pub usage: BTreeMap<Uuid, Usage>,
    pub objects: BTreeMap<String, Object>,
    /// Local backend: files under the blob directory that are not objects (temporary files
    /// of unfinished writes, `<key>#<n>`).
    pub stray_files: Vec<String>,
}

impl Snapshot {
    pub async fn read(env: &Env) -> Self {
        let db = Db::connect(&env.database_url(), &Default::default())
            .await
            .unwrap();
        let mut tx = db
            .begin_admin(&AdminScope::for_housekeeping())
            .await
            .unwrap();
        let files: Vec<FileRow> = tx
            .fetch_all(
                Query::select()
                    .columns(["tenant_id", "id", "sha256", "size", "storage_key"])
                    .from("files"),
            )
            .await
            .unwrap();
        let documents: Vec<DocumentRow> = tx
            .fetch_all(
                Query::select()
                    .columns(["tenant_id", "id", "file_id", "size"])
                    .from("documents"),
            )
            .await
            .unwrap();
        let usage: Vec<UsageRow> = tx
            .fetch_all(
                Query::select()
                    .columns(["tenant_id", "bytes", "files", "documents"])
                    .from("storage_usage"),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let store = env.blob_store();
        let mut objects = BTreeMap::new();
        let mut listing = store.list(&BlobKey::all_tenants_prefix());
        while let Some(meta) = listing.next().await {
            let meta = meta.unwrap();
            let mut read = store.get_range(&meta.key, None).await.unwrap();
            let mut hash = sha2::Sha256::new();
            while let Some(chunk) = read.body.next().await {
                hash.update(chunk.unwrap());
            }
            objects.insert(
                meta.key.as_str().to_owned(),
                Object {
                    size: meta.size,
                    sha256: hex::encode(hash.finalize()),
                },
            );
        }
        let mut stray_files = Vec::new();
        if matches!(env.storage, crate::Storage::Local) {
            let root = env.data_dir().join("blobs");
            let mut pending = vec![root.clone()];
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        pending.push(path);
                        continue;
                    }
                    let key = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    if !objects.contains_key(&key) {
                        stray_files.push(key);
                    }
                }
            }
        }
        Self {
            files,
            documents,
            usage: usage.into_iter().map(|UsageRow(t, u)| (t, u)).collect(),
            objects,
            stray_files,
        }
    }

    /// Every invariant of a swept store: no document without its file, no file without its
    /// complete object, no file without a document, no object or temporary file without a
    /// row, and usage counters equal to what the rows add up to.
    pub fn assert_consistent(&self) {
        let files: BTreeMap<(Uuid, Uuid), &FileRow> = self
            .files
            .iter()
            .map(|f| ((f.tenant_id, f.id), f))
            .collect();
        for document in &self.documents {
            let file = files
                .get(&(document.tenant_id, document.file_id))
                .unwrap_or_else(|| panic!("document {document:?} points at no file row"));
            assert_eq!(document.size, file.size, "{document:?} vs {file:?}");
        }
        for file in &self.files {
            let object = self
                .objects
                .get(&file.storage_key)
                .unwrap_or_else(|| panic!("file {file:?} has no object in storage"));
            assert_eq!(
                object.size,
                u64::try_from(file.size).unwrap(),
                "object size of {file:?}"
            );
            assert_eq!(object.sha256, file.sha256, "object content of {file:?}");
        }
        let referenced: BTreeSet<(Uuid, Uuid)> = self
            .documents
            .iter()
            .map(|d| (d.tenant_id, d.file_id))
            .collect();
        for file in &self.files {
            assert!(
                referenced.contains(&(file.tenant_id, file.id)),
                "file {file:?} has no document after the sweep"
            );
        }
        let keys: BTreeSet<&str> = self.files.iter().map(|f| f.storage_key.as_str()).collect();
        let orphans: Vec<&String> = self
            .objects
            .keys()
            .filter(|k| !keys.contains(k.as_str()))
            .collect();
        assert!(
            orphans.is_empty(),
            "objects without a file row after the sweep: {orphans:?}"
        );
        assert!(
            self.stray_files.is_empty(),
            "temporary files left in the blob directory after the sweep: {:?}",
            self.stray_files
        );
        let mut expected: BTreeMap<Uuid, Usage> = BTreeMap::new();
        for file in &self.files {
            let usage = expected.entry(file.tenant_id).or_default();
            usage.bytes += file.size;
            usage.files += 1;
        }
        for document in &self.documents {
            expected.entry(document.tenant_id).or_default().documents += 1;
        }
        let tenants: BTreeSet<&Uuid> = expected.keys().chain(self.usage.keys()).collect();
        for tenant in tenants {
            assert_eq!(
                self.usage.get(tenant).copied().unwrap_or_default(),
                expected.get(tenant).copied().unwrap_or_default(),
                "storage usage of tenant {tenant} (counters vs. rows)"
            );
        }
    }
}
