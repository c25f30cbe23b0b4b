//! Download URLs: presigned S3 URLs fetched over HTTP, and the local backend's HMAC URLs.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tenantry_storage::{BackendKind, BlobKey, DownloadHeaders, StorageError, UrlSigner};

use crate::fixture::{Fixture, data};

crate::on_both_backends!(download_urls);

const HEADERS: DownloadHeaders<'static> = DownloadHeaders {
    content_type: "application/pdf",
    filename: Some("Quarterly report.pdf"),
};

async fn download_urls(f: &Fixture) {
    let body = data(200_000, 8);
    let key = BlobKey::staging(f.tenant);
    f.put(&key, &body).await;
    match f.store.backend() {
        BackendKind::S3 => presigned(f, &key, &body).await,
        BackendKind::Local => signed_by_the_server(f, &key, &body).await,
        BackendKind::Other => unreachable!(),
    }
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

async fn presigned(f: &Fixture, key: &BlobKey, body: &[u8]) {
    let url = f
        .store
        .presigned_get(key, Duration::from_secs(300), &HEADERS)
        .await
        .unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        param("response-content-disposition").as_deref(),
        Some(
            "attachment; filename=\"Quarterly report.pdf\"; \
             filename*=UTF-8''Quarterly%20report.pdf"
        )
    );
    assert_eq!(
        param("response-content-type").as_deref(),
        Some("application/pdf")
    );
    assert_eq!(param("X-Amz-Expires").as_deref(), Some("300"));

    let response = get(url.as_str()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.unwrap() == body,
        "downloaded bytes differ"
    );

    // Tampering with anything signed is refused: the signature itself, the response headers
    // the URL asks for, the object it names, the expiry.
    let signature = param("X-Amz-Signature").unwrap();
    let mut flipped = signature.clone().into_bytes();
    flipped[5] = if flipped[5] == b'a' { b'b' } else { b'a' };
    let tampered = [
        url.as_str()
            .replace(&signature, &String::from_utf8(flipped).unwrap()),
        url.as_str().replace(
            "response-content-type=application%2Fpdf",
            "response-content-type=text%2Fhtml",
        ),
        url.as_str()
            .replace("X-Amz-Expires=300", "X-Amz-Expires=600"),
        url.as_str().replace(
            key.as_str().rsplit('/').next().unwrap(),
            &uuid::Uuid::now_v7().to_string(),
        ),
    ];
    for tampered in tampered {
        assert_ne!(tampered, url.as_str());
        let status = get(&tampered).await.status();
        assert_eq!(status, 403, "{tampered}");
    }

    // Expired.
    let short = f
        .store
        .presigned_get(key, Duration::from_secs(1), &HEADERS)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = get(short.as_str()).await.status();
    assert_eq!(status, 403, "an expired URL is refused");
}

async fn signed_by_the_server(f: &Fixture, key: &BlobKey, body: &[u8]) {
    // The local backend has no URLs of its own; the server signs a path of its download
    // route and serves the object after verifying it.
    assert!(matches!(
        f.store
            .presigned_get(key, Duration::from_secs(60), &HEADERS)
            .await,
        Err(StorageError::Unsupported(_))
    ));
    let signer = UrlSigner::new(&[42; 32]).unwrap();
    let path = format!("/api/v1/blobs/{key}");
    let query = signer.sign(&path, Utc::now() + TimeDelta::minutes(5));
    let (expires, signature) = query
        .split_once('&')
        .map(|(e, s)| {
            (
                e.trim_start_matches("expires=").parse::<i64>().unwrap(),
                s.trim_start_matches("signature=").to_owned(),
            )
        })
        .unwrap();
    signer.verify(&path, expires, &signature).unwrap();
    assert_eq!(f.read(key).await, body);
    let other = format!("/api/v1/blobs/{}", BlobKey::staging(f.tenant));
    assert!(signer.verify(&other, expires, &signature).is_err());
}
