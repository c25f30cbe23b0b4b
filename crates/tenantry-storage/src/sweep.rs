//! Temporary files of local uploads that never finished (the process died mid-upload).
//! `object_store` writes a local object to `<key>#<n>` and renames it when complete; those
//! files are invisible to [`BlobStore::list`], so the orphan sweep cannot see them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::{BlobStore, StorageError};

impl BlobStore {
    /// Removes temporary files of local uploads last written before `older_than` and
    /// returns how many. Use a cutoff far beyond the longest upload (e.g. a day).
    /// On S3 this does nothing (returns 0): incomplete multipart uploads are removed by the
    /// bucket's `AbortIncompleteMultipartUpload` lifecycle rule.
    pub async fn sweep_incomplete_uploads(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || sweep_dir(&root, older_than))
            .await
            .map_err(|e| StorageError::Io {
                context: "sweeping incomplete uploads".to_owned(),
                source: std::io::Error::other(e),
            })?
    }
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn sweep_dir(root: &Path, older_than: DateTime<Utc>) -> Result<u64, StorageError> {
    let io = |context: String| move |source| StorageError::Io { context, source };
    let mut removed = 0;
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if is_temporary(&path)
                && meta
                    .modified()
                    .is_ok_and(|m| DateTime::<Utc>::from(m) < older_than)
            {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(format!("removing {}", path.display()))(e)),
                }
            }
        }
    }
    Ok(removed)
}
