//! `GET /api/v1/downloads/{tenant_id}/{document_id}`: what a download link serves. The
//! signature proves the link is ours and unexpired; the requester it names is re-authorized
//! on every use (member, active, tenant active, `documents:read` on the document now). Local
//! storage: an attachment with the stored type, `nosniff`, and single byte ranges; S3: a
//! redirect to a URL presigned for a minute.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{FromRef, FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tenantry_core::{ApiKeyId, DocumentId, Problem, TenantId, UserId};
use tenantry_db::TenantScope;
use tenantry_http::{Authorize, Client, Gate, Query};
use tenantry_storage::ByteRange;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Files, Served, SignedDownload};

pub(super) fn router<S: Gate>() -> OpenApiRouter<S>
where
    Files: FromRef<S>,
{
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

/// A download link whose signature holds, with the scope its requester holds now: the
/// requester is re-authorized through the state's [`Gate`] (tenancy decides, files does not
/// depend on it). Malformed ids or parameters and a bad or expired signature → 403
/// `signature_invalid`; a requester who may no longer read in the tenant → 404.
#[derive(Debug)]
pub struct SignedLink {
    pub proof: SignedDownload,
    pub scope: TenantScope,
}

impl<S: Gate> FromRequestParts<S> for SignedLink
where
    Files: FromRef<S>,
{
    /// The path's own rejection (a segment that is not UTF-8) is answered as axum words it.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(ids) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Query(params) = Query::<SignedParams>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Client(origin) = Client::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let files = Files::from_ref(state);
        Self::verify(&files, state, ids, params, origin)
            .await
            .map_err(IntoResponse::into_response)
    }
}

impl SignedLink {
    async fn verify<S: Gate>(
        files: &Files,
        state: &S,
        (tenant, document): (String, String),
        params: SignedParams,
        origin: tenantry_core::Origin,
    ) -> Result<Self, Problem> {
        let tenant: TenantId = tenant.parse().map_err(|_| invalid_link())?;
        let document: DocumentId = document.parse().map_err(|_| invalid_link())?;
        let (Some(by), Some(expires), Some(signature)) =
            (params.by, params.expires, params.signature)
        else {
            return Err(invalid_link());
        };
        let by: UserId = by.parse().map_err(|_| invalid_link())?;
        let key: Option<ApiKeyId> = params
            .key
            .map(|k| k.parse().map_err(|_| invalid_link()))
            .transpose()?;
        let proof = files.verify_download(tenant, document, by, key, expires, &signature)?;
        let scope = state
            .authz()
            .requester_scope(tenant, proof.requester, Arc::new(origin))
            .await?;
        Ok(Self { proof, scope })
    }
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
    State(files): State<Files>,
    SignedLink { proof, scope }: SignedLink,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let range = parse_range(&headers);
    let partial = range.is_some();
    let (document, read) = match files.serve_download(&scope, &proof, range).await? {
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
