//! Reads, ranges, listing, metadata, deletion, and the local sweep of dead uploads.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::Utc;
use futures::TryStreamExt;
use tenantry_core::TenantId;
use tenantry_storage::{BlobKey, ByteRange, KeyKind, StorageError};

use crate::fixture::{Fixture, data};

crate::on_both_backends!(
    range_reads,
    missing_objects_are_not_found,
    list_head_delete,
    incomplete_uploads_are_swept,
);

async fn read_range(
    f: &Fixture,
    key: &BlobKey,
    range: ByteRange,
) -> (std::ops::Range<u64>, Vec<u8>) {
    let read = f.store.get_range(key, Some(range)).await.unwrap();
    let range = read.range.clone();
    let chunks: Vec<Bytes> = read.body.try_collect().await.unwrap();
    (range, chunks.concat())
}

async fn range_reads(f: &Fixture) {
    let body = data(300_000, 7);
    let key = BlobKey::staging(f.tenant);
    f.put(&key, &body).await;

    let (range, bytes) = read_range(f, &key, ByteRange::Bounded(1000..2000)).await;
    assert_eq!((range, &bytes[..]), (1000..2000, &body[1000..2000]));
    let (range, bytes) = read_range(f, &key, ByteRange::Bounded(299_990..400_000)).await;
    assert_eq!((range, &bytes[..]), (299_990..300_000, &body[299_990..]));
    let (range, bytes) = read_range(f, &key, ByteRange::From(123_456)).await;
    assert_eq!((range, &bytes[..]), (123_456..300_000, &body[123_456..]));
    let (range, bytes) = read_range(f, &key, ByteRange::Last(10)).await;
    assert_eq!((range, &bytes[..]), (299_990..300_000, &body[299_990..]));

    let whole = f.store.get_range(&key, None).await.unwrap();
    assert_eq!(whole.range, 0..300_000);
    assert_eq!(whole.meta.size, 300_000);

    for unsatisfiable in [
        ByteRange::From(300_000),
        ByteRange::Bounded(400_000..400_010),
    ] {
        let error = f
            .store
            .get_range(&key, Some(unsatisfiable))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::RangeNotSatisfiable { size: 300_000, .. }
            ),
            "{error:?}"
        );
    }
}

async fn missing_objects_are_not_found(f: &Fixture) {
    let key = BlobKey::staging(f.tenant);
    assert!(matches!(
        f.store.head(&key).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        f.store.get_range(&key, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        f.store.get_range(&key, Some(ByteRange::From(0))).await,
        Err(StorageError::NotFound { .. })
    ));
    // Deleting what is not there succeeds (sweeps and retries race).
    f.store.delete(&key).await.unwrap();
}

async fn list_head_delete(f: &Fixture) {
    let before = Utc::now() - chrono::TimeDelta::seconds(5);
    let mut files = Vec::new();
    for n in 0..3u8 {
        let body = data(1000 + usize::from(n), u64::from(n) + 10);
        let staging = BlobKey::staging(f.tenant);
        let outcome = f.put(&staging, &body).await;
        let file_id = uuid::Uuid::now_v7();
        let key = BlobKey::file(f.tenant, file_id, &outcome.sha256, Utc::now()).unwrap();
        f.store.promote(&staging, &key).await.unwrap();
        files.push((key, file_id, outcome.sha256, body.len() as u64));
    }
    let staging = BlobKey::staging(f.tenant);
    f.put(&staging, b"in progress").await;
    // Another tenant whose id shares a prefix string with nothing of ours.
    let other = TenantId::new();
    f.put(&BlobKey::staging(other), b"someone else's").await;

    let mut listed: Vec<_> = f
        .store
        .list(&BlobKey::files_prefix(f.tenant))
        .try_collect()
        .await
        .unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), 3);
    for (meta, (key, file_id, sha256, size)) in listed.iter().zip(&files) {
        assert_eq!(&meta.key, key);
        assert_eq!(meta.size, *size);
        assert!(meta.last_modified > before && meta.last_modified <= Utc::now());
        assert_eq!(
            meta.key.kind(),
            Some(KeyKind::File {
                tenant_id: f.tenant,
                file_id: *file_id,
                sha256: sha256.clone(),
            })
        );
        assert_eq!(f.store.head(key).await.unwrap().size, *size);
    }
    let staged: Vec<_> = f
        .store
        .list(&BlobKey::staging_prefix(f.tenant))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(staged.len(), 1);
    assert!(
        matches!(staged[0].key.kind(), Some(KeyKind::Staging { tenant_id, .. }) if tenant_id == f.tenant)
    );
    assert_eq!(
        f.keys().await.len(),
        4,
        "the other tenant's object is not listed"
    );
    let everyone: Vec<_> = f
        .store
        .list(&BlobKey::all_tenants_prefix())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(everyone.len(), 5);

    f.store.delete(&files[0].0).await.unwrap();
    assert!(matches!(
        f.store.head(&files[0].0).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(f.keys().await.len(), 3);
    f.store.check().await.unwrap();
}

async fn incomplete_uploads_are_swept(f: &Fixture) {
    let key = BlobKey::staging(f.tenant);
    f.put(&key, b"complete").await;
    let Some(dir) = &f.dir else {
        // S3: incomplete multipart uploads are the bucket lifecycle rule's business.
        assert_eq!(
            f.store.sweep_incomplete_uploads(Utc::now()).await.unwrap(),
            0
        );
        return;
    };
    // What a process killed during an upload leaves: `<key>#<n>` next to where the object
    // would have gone.
    let object = dir.path().join("blobs").join(key.as_str());
    let dead = object.with_file_name(format!(
        "{}#3",
        object.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&dead, b"partial").unwrap();
    let recent = object.with_file_name("other#4");
    std::fs::write(&recent, b"partial").unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert_eq!(
        f.keys().await,
        vec![key.to_string()],
        "temporary files are not listed"
    );

    let cutoff = Utc::now() - chrono::TimeDelta::minutes(30);
    assert_eq!(f.store.sweep_incomplete_uploads(cutoff).await.unwrap(), 1);
    assert!(!dead.exists());
    assert!(
        recent.exists(),
        "an upload that may still be running is kept"
    );
    assert_eq!(f.read(&key).await, b"complete");
}
