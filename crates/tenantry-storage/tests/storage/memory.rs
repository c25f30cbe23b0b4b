//! A large upload never sits in memory: the body is consumed only as fast as parts reach the
//! store, so what has been read but not stored stays within the documented bound.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};
use tenantry_storage::{BlobKey, BlobStore, MAX_PARTS_IN_FLIGHT, PART_SIZE};

use crate::{
    counting::{Counters, Counting},
    fixture::Fixture,
};

crate::on_both_backends!(large_upload_is_streamed_not_buffered);

const TOTAL: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

async fn large_upload_is_streamed_not_buffered(f: &Fixture) {
    let counters = Arc::new(Counters {
        // A store slower than the client: without back-pressure the body would race ahead.
        part_delay: std::time::Duration::from_millis(30),
        ..Counters::default()
    });
    let store = BlobStore::from_object_store(Arc::new(Counting {
        inner: f.store.object_store(),
        counters: counters.clone(),
    }));

    // The body is generated chunk by chunk (the test holds no 64 MiB buffer either). Before
    // handing out each chunk it records how far reading is ahead of what the store has.
    let max_ahead = Arc::new(AtomicU64::new(0));
    let produced = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(parking_lot::Mutex::new(Sha256::new()));
    let body = {
        let (counters, max_ahead, produced, expected) = (
            counters.clone(),
            max_ahead.clone(),
            produced.clone(),
            expected.clone(),
        );
        stream::iter(0..TOTAL / CHUNK as u64).map(move |n| {
            let chunk = Bytes::from(vec![(n % 251) as u8; CHUNK]);
            let ahead = produced.load(Ordering::SeqCst) - counters.persisted.load(Ordering::SeqCst);
            max_ahead.fetch_max(ahead, Ordering::SeqCst);
            produced.fetch_add(CHUNK as u64, Ordering::SeqCst);
            expected.lock().update(&chunk);
            Ok::<_, std::io::Error>(chunk)
        })
    };
    let key = BlobKey::staging(f.tenant);
    let outcome = store.put_stream(&key, body, TOTAL).await.unwrap();

    assert_eq!(outcome.size, TOTAL);
    assert_eq!(
        outcome.sha256,
        hex::encode(expected.lock().clone().finalize())
    );
    assert_eq!(f.store.head(&key).await.unwrap().size, TOTAL);
    assert_eq!(counters.multipart_uploads.load(Ordering::SeqCst), 1);
    assert_eq!(counters.persisted.load(Ordering::SeqCst), TOTAL);
    assert!(counters.largest_part.load(Ordering::SeqCst) <= PART_SIZE as u64);
    let bound = ((MAX_PARTS_IN_FLIGHT + 1) * PART_SIZE + CHUNK) as u64;
    let ahead = max_ahead.load(Ordering::SeqCst);
    eprintln!("read ahead of the store by at most {ahead} bytes (bound {bound})");
    assert!(
        ahead <= bound,
        "the upload read {ahead} bytes ahead of the store (bound {bound}): it buffers"
    );
}
