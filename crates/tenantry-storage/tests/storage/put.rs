//! Streaming uploads: hashes, limits, failures, cancellation, promotion.

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, stream};
use md5::Md5;
use sha2::{Digest, Sha256};
use tenantry_storage::{BlobKey, PART_SIZE, PutError, SNIFF_LEN, StorageError};

use crate::fixture::{Fixture, chunks, data};

crate::on_both_backends!(
    multi_mib_body_from_small_chunks_is_hashed_and_stored,
    small_body_is_one_put,
    empty_body,
    crossing_the_limit_leaves_nothing,
    crossing_the_limit_in_the_first_part_leaves_nothing,
    failing_body_leaves_nothing,
    dropped_upload_leaves_nothing,
    promote_moves_to_the_final_key,
);

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hex_md5(data: &[u8]) -> String {
    hex::encode(<Md5 as md5::Digest>::digest(data))
}

async fn multi_mib_body_from_small_chunks_is_hashed_and_stored(f: &Fixture) {
    // Two and a half parts, from 4 KiB chunks (a multipart upload of three parts).
    let body = data(PART_SIZE * 5 / 2, 1);
    let key = BlobKey::staging(f.tenant);
    let outcome = f
        .store
        .put_stream(&key, chunks(&body, 4096), body.len() as u64)
        .await
        .unwrap();
    assert_eq!(outcome.size, body.len() as u64);
    assert_eq!(outcome.sha256, hex_sha256(&body));
    assert_eq!(outcome.md5, hex_md5(&body));
    assert_eq!(&outcome.head[..], &body[..SNIFF_LEN]);
    assert_eq!(f.store.head(&key).await.unwrap().size, body.len() as u64);
    assert!(f.read(&key).await == body, "stored bytes differ");
    assert_eq!(f.keys().await, vec![key.to_string()]);
}

async fn small_body_is_one_put(f: &Fixture) {
    let key = BlobKey::staging(f.tenant);
    let outcome = f.put(&key, b"hello, world").await;
    assert_eq!(outcome.size, 12);
    assert_eq!(outcome.sha256, hex_sha256(b"hello, world"));
    assert_eq!(outcome.md5, hex_md5(b"hello, world"));
    assert_eq!(&outcome.head[..], b"hello, world");
    assert_eq!(f.read(&key).await, b"hello, world");
}

async fn empty_body(f: &Fixture) {
    let key = BlobKey::staging(f.tenant);
    let outcome = f.put(&key, b"").await;
    assert_eq!(outcome.size, 0);
    assert_eq!(outcome.sha256, hex_sha256(b""));
    assert_eq!(f.store.head(&key).await.unwrap().size, 0);
}

async fn crossing_the_limit_leaves_nothing(f: &Fixture) {
    // The limit falls in the second part, so a multipart upload is under way when it is
    // crossed; the chunk stream would go on for much longer.
    let limit = PART_SIZE as u64 + 100_000;
    let body = data(PART_SIZE * 3, 2);
    let key = BlobKey::staging(f.tenant);
    let consumed = std::sync::atomic::AtomicU64::new(0);
    let counted = chunks(&body, 10_000).inspect(|c| {
        if let Ok(c) = c {
            consumed.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let error = f.store.put_stream(&key, counted, limit).await.unwrap_err();
    assert!(
        matches!(error, PutError::TooLarge { limit: l } if l == limit),
        "{error:?}"
    );
    // Stopped at the chunk that crossed the limit.
    assert_eq!(
        consumed.load(std::sync::atomic::Ordering::Relaxed),
        limit.div_ceil(10_000) * 10_000
    );
    assert!(matches!(
        f.store.head(&key).await,
        Err(StorageError::NotFound { .. })
    ));
    f.assert_empty().await;
}

async fn crossing_the_limit_in_the_first_part_leaves_nothing(f: &Fixture) {
    let key = BlobKey::staging(f.tenant);
    let error = f
        .store
        .put_stream(&key, chunks(&data(11, 3), 3), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(error, PutError::TooLarge { limit: 10 }),
        "{error:?}"
    );
    // Exactly at the limit is fine.
    f.store
        .put_stream(&key, chunks(&data(10, 3), 3), 10)
        .await
        .unwrap();
    f.store.delete(&key).await.unwrap();
    f.assert_empty().await;
}

async fn failing_body_leaves_nothing(f: &Fixture) {
    let good = chunks(&data(PART_SIZE * 2, 4), 64 * 1024);
    let failing = good.chain(stream::iter([Err(std::io::Error::other(
        "client went away",
    ))]));
    let key = BlobKey::staging(f.tenant);
    let error = f
        .store
        .put_stream(&key, failing, u64::MAX)
        .await
        .unwrap_err();
    let PutError::Body(source) = error else {
        panic!("expected a body error, got {error:?}")
    };
    assert_eq!(source.to_string(), "client went away");
    f.assert_empty().await;
}

async fn dropped_upload_leaves_nothing(f: &Fixture) {
    // A body that delivers two parts' worth and then stalls: the request is cancelled
    // (timeout, client gone) while a multipart upload is open.
    let started = chunks(&data(PART_SIZE * 2, 5), 64 * 1024);
    let stalled = started.chain(stream::pending::<Result<Bytes, std::io::Error>>());
    let key = BlobKey::staging(f.tenant);
    let put = f.store.put_stream(&key, stalled, u64::MAX);
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), put)
            .await
            .is_err()
    );
    // The abort runs in a spawned task; the temporary file / parts go shortly after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f.local_files().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.assert_empty().await;
}

async fn promote_moves_to_the_final_key(f: &Fixture) {
    let body = data(100_000, 6);
    let staging = BlobKey::staging(f.tenant);
    let outcome = f.put(&staging, &body).await;
    let file_id = uuid::Uuid::now_v7();
    let created = chrono::Utc::now();
    let final_key = BlobKey::file(f.tenant, file_id, &outcome.sha256, created).unwrap();
    f.store.promote(&staging, &final_key).await.unwrap();
    assert!(matches!(
        f.store.head(&staging).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(f.read(&final_key).await, body);
    assert_eq!(f.keys().await, vec![final_key.to_string()]);
    assert_eq!(
        final_key.as_str(),
        format!(
            "tenants/{}/files/{}/{}_{}",
            f.tenant.as_uuid().simple(),
            created.format("%Y/%m"),
            file_id.simple(),
            outcome.sha256
        )
    );
    // Promoting what is no longer there is a NotFound (a retried promote after a crash).
    assert!(matches!(
        f.store.promote(&staging, &final_key).await,
        Err(StorageError::NotFound { .. })
    ));
}
