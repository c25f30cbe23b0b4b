//! `GET /api/v1/downloads/{tenant_id}/{document_id}`: what a download link serves. The
//! signature proves the link is ours and unexpired; the requester it names is re-authorized
//! on every use (member, active, tenant active, `documents:read` on the document now). Local
//! storage: an attachment with the stored type, `nosniff`, and single byte ranges; S3: a
//! redirect to a URL presigned for a minute.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tenantry_core::{ApiKeyId, DocumentId, Problem, TenantId, UserId};
use tenantry_files::Served;
use tenantry_storage::ByteRange;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    extract::{Client, Query},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(signed_download))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedParams {
    /// Who asked for the link (for an API key: the member who created it).
    pub by: Option<String>,
    /// The API key that asked for the link, if one did.
    pub key: Option<String>,
    /// Unix seconds after which the link no longer works.
    pub expires: Option<i64>,
    /// Hex HMAC-SHA256 over the path, `by`, `key` and `expires`.
    pub signature: Option<String>,
}

/// One `bytes=` range; anything else (several ranges, another unit, nonsense) is ignored
/// and the whole content served, as RFC 9110 allows.
fn parse_range(headers: &HeaderMap) -> Option<ByteRange> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    match (start.trim(), end.trim()) {
        ("", last) => last.parse().ok().map(ByteRange::Last),
        (start, "") => start.parse().ok().map(ByteRange::From),
        (start, end) => {
            let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
            (start <= end).then(|| ByteRange::Bounded(start..end.saturating_add(1)))
        }
    }
}

fn invalid_link() -> Problem {
    Problem::signature_invalid().with_detail("the download link is invalid or has expired")
}

/// The bytes of a document behind a link from `GET …/documents/{id}/download`. No bearer
/// credential: the signature is checked instead (tampered or expired → 403
/// `signature_invalid`), then the requester it names is authorized again: a link whose
/// requester can no longer read the document (removed, disabled, demoted, key revoked, tenant
/// suspended or deleted, document deleted) → 404 `not_found`. `Range: bytes=…` → 206 with
/// `Content-Range` (416 when unsatisfiable). With S3 storage → 302 to a URL of the object
/// store valid for 60 seconds.
#[utoipa::path(get, path = "/api/v1/downloads/{tenant_id}/{document_id}", tag = "files",
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid),
        SignedParams),
    responses((status = 200, description = "The content, as the document's stored `mime_type`",
            content_type = "*/*"),
        (status = 206, description = "The requested range (`Content-Range`)", content_type = "*/*"),
        (status = 302, description = "S3 storage: the object, at a URL valid for 60 seconds",
            headers(("Location" = String, description = "Presigned URL of the object"))),
        (status = 403, description = "Invalid or expired signature", body = Problem),
        (status = 404, description = "The document is gone or its requester may no longer read it",
            body = Problem),
        (status = 416, body = Problem)))]
pub async fn signed_download(
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    Query(params): Query<SignedParams>,
    Client(origin): Client,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tenant: TenantId = ids.0.parse().map_err(|_| invalid_link())?;
    let document: DocumentId = ids.1.parse().map_err(|_| invalid_link())?;
    let (Some(by), Some(expires), Some(signature)) = (params.by, params.expires, params.signature)
    else {
        return Err(invalid_link());
    };
    let by: UserId = by.parse().map_err(|_| invalid_link())?;
    let key: Option<ApiKeyId> = params
        .key
        .map(|k| k.parse().map_err(|_| invalid_link()))
        .transpose()?;
    let proof = state
        .files
        .verify_download(tenant, document, by, key, expires, &signature)?;
    let scope = tenantry_tenancy::authz::authorize_download_link(
        &state.db,
        tenant,
        proof.requester,
        &origin,
    )
    .await
    .map_err(|e| match e {
        tenantry_tenancy::TenancyError::Db(e) => Problem::from(e),
        _ => Problem::not_found(),
    })?;
    let range = parse_range(&headers);
    let partial = range.is_some();
    let (document, read) = match state.files.serve_download(&scope, &proof, range).await? {
        Served::Bytes(document, read) => (document, read),
        Served::Redirect(url) => {
            let mut response = StatusCode::FOUND.into_response();
            let h = response.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&url).map_err(|e| Problem::internal_error(&e.into()))?,
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            return Ok(response);
        }
    };
    let length = read.range.end - read.range.start;
    let mut response = Response::new(Body::from_stream(read.body));
    *response.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    let value = |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::CONTENT_TYPE, value(document.mime_type.clone()));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(tenantry_storage::attachment(&document.filename)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // The bytes are a member's upload: should a browser render them despite the attachment
    // disposition, they run nothing and load nothing (an HTML file cannot script our origin).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if partial {
        h.insert(
            header::CONTENT_RANGE,
            value(format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.meta.size
            )),
        );
    }
    Ok(response.into_response())
}
