//! The two backends, and a macro that instantiates a test for each.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use futures::{Stream, TryStreamExt, stream};
use secrecy::SecretString;
use tenantry_core::TenantId;
use tenantry_storage::{BlobKey, BlobStore, PutOutcome, S3Config, StorageConfig};
use tenantry_testkit::S3Server;

/// A store under test and what keeps its backend alive.
pub struct Fixture {
    pub store: BlobStore,
    pub tenant: TenantId,
    /// The local backend's directory.
    pub dir: Option<tempfile::TempDir>,
    /// Keeps the S3 server of this test running.
    _s3: Option<Arc<S3Server>>,
}

pub fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::resolve(
        Some(&format!("file://{}", dir.path().join("blobs").display())),
        &S3Config::default(),
        Path::new("/unused"),
    )
    .unwrap();
    Fixture {
        store: BlobStore::open(&config).unwrap(),
        tenant: TenantId::new(),
        dir: Some(dir),
        _s3: None,
    }
}

pub async fn s3(test: &str) -> Option<Fixture> {
    let server = tenantry_testkit::s3_server(test)?;
    let bucket = server.create_bucket().await;
    let config = StorageConfig::resolve(
        Some(&format!("s3://{bucket}")),
        &S3Config {
            endpoint: Some(server.endpoint.clone()),
            region: Some(tenantry_testkit::S3_REGION.to_owned()),
            access_key_id: Some(server.access_key_id.clone()),
            secret_access_key: Some(SecretString::from(server.secret_access_key.clone())),
            path_style: true,
        },
        Path::new("/unused"),
    )
    .unwrap();
    Some(Fixture {
        store: BlobStore::open(&config).unwrap(),
        tenant: TenantId::new(),
        dir: None,
        _s3: Some(Arc::new(server)),
    })
}

impl Fixture {
    /// Files of the local backend's directory, recursively (including temporary files).
    pub fn local_files(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut pending = vec![dir.path().to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path.display().to_string());
                }
            }
        }
        found
    }

    /// Every key under this fixture's tenant.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .list(&BlobKey::tenant_prefix(self.tenant))
            .map_ok(|m| m.key.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Asserts that nothing at all is stored (no object; locally no temporary file either).
    pub async fn assert_empty(&self) {
        assert_eq!(self.keys().await, Vec::<String>::new());
        assert_eq!(self.local_files(), Vec::<String>::new());
    }

    pub async fn put(&self, key: &BlobKey, data: &[u8]) -> PutOutcome {
        self.store
            .put_stream(key, chunks(data, 64 * 1024), u64::MAX)
            .await
            .unwrap()
    }

    pub async fn read(&self, key: &BlobKey) -> Vec<u8> {
        let read = self.store.get_range(key, None).await.unwrap();
        let chunks: Vec<Bytes> = read.body.try_collect().await.unwrap();
        chunks.concat()
    }
}

/// Deterministic, incompressible-looking bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data` as a stream of `size`-byte chunks.
pub fn chunks(
    data: &[u8],
    size: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

/// Runs each listed `async fn(&Fixture)` as a test on the local backend (`local::name`)
/// and on S3 (`s3::name`, skipped without a server unless TENANTRY_TEST_STRICT=1).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&$crate::fixture::local()).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = $crate::fixture::s3(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&fixture).await;
                }
            )*
        }
    };
}
