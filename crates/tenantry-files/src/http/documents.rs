//! `/api/v1/tenants/{tenant_id}/documents*`: streaming uploads, listing, metadata, deletion
//! and download links.

use axum::{
    extract::{
        DefaultBodyLimit, FromRef, Multipart, State,
        multipart::{Field, MultipartRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenantry_core::{
    DocumentId, Page, Problem, ProjectId, UserId, page::PageParams, problem::Validator,
    values::Invalid,
};
use tenantry_http::{Gate, Ids, Json, Query, TenantCtx};
use tenantry_storage::sniff::MimeType;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{Document, DocumentChange, DocumentFilter, DownloadLink, Files, UploadMeta};

/// The upload's route (its request timeout is `files.upload_timeout_secs`).
pub const UPLOAD_ROUTE: &str = "/api/v1/tenants/{tenant_id}/documents";

pub(super) fn router<S: Gate>() -> OpenApiRouter<S>
where
    Files: FromRef<S>,
{
    // The upload streams its body to storage under its own limits (`files.max_upload_bytes`
    // and the quota), so the general body limit does not apply to it.
    let (schemas, paths, upload) = routes!(upload_document);
    OpenApiRouter::new()
        .routes(routes!(list_documents))
        .routes((schemas, paths, upload.layer(DefaultBodyLimit::disable())))
        .routes(routes!(
            get_document,
            patch_document,
            put_document,
            delete_document
        ))
        .routes(routes!(download_document))
}

/// The multipart form of an upload (for the OpenAPI document; the handler streams it).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The content. Its part's file name and content type are the defaults of `filename`
    /// and `mime_type`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The document's name (metadata only, never a storage path).
    filename: Option<String>,
    /// Declared type, checked against the content's magic bytes.
    mime_type: Option<String>,
    #[schema(value_type = Option<String>, format = Uuid)]
    project_id: Option<String>,
}

/// Longest text field of the form.
const MAX_TEXT_FIELD: usize = 1024;
/// Most parts a form may have (the file and three fields, with room for repeats): text
/// parts are small, but without a cap their number would make the body unbounded.
const MAX_PARTS: usize = 8;

async fn text(field: Field<'_>) -> Result<String, Problem> {
    let name = field.name().unwrap_or_default().to_owned();
    let bytes = field.bytes().await.map_err(|e| {
        Problem::malformed().with_detail(format!("the {name} part could not be read: {e}"))
    })?;
    if bytes.len() > MAX_TEXT_FIELD {
        return Err(Problem::validation_failed()
            .with_detail(format!("{name} is too long"))
            .with_field(name, format!("must be at most {MAX_TEXT_FIELD} bytes")));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Problem::validation_failed()
            .with_detail(format!("{name} is not UTF-8"))
            .with_field(name, "must be UTF-8 text")
    })
}

/// The fields of the form other than the file.
#[derive(Debug, Default)]
struct Form {
    filename: Option<String>,
    mime_type: Option<String>,
    project_id: Option<ProjectId>,
    part_filename: Option<String>,
    part_type: Option<String>,
}

impl Form {
    async fn read(&mut self, field: Field<'_>) -> Result<(), Problem> {
        match field.name() {
            Some("filename") => self.filename = Some(text(field).await?),
            Some("mime_type") => self.mime_type = Some(text(field).await?),
            Some("project_id") => {
                let raw = text(field).await?;
                let id = raw.trim().parse().map_err(|_| {
                    Problem::validation_failed()
                        .with_detail("project_id is not an id")
                        .with_field("project_id", "must be a project id")
                })?;
                self.project_id = Some(id);
            }
            other => {
                let name = other.unwrap_or_default().to_owned();
                return Err(Problem::validation_failed()
                    .with_detail(format!("unknown form field {name:?}"))
                    .with_field(name, "is not a field of an upload"));
            }
        }
        Ok(())
    }

    fn meta(self) -> UploadMeta {
        UploadMeta {
            filename: self.filename.or(self.part_filename),
            mime_type: self.mime_type.or(self.part_type),
            project_id: self.project_id,
        }
    }
}

/// Why a body is not a multipart form: another content type (415), or a multipart one
/// without a boundary (400).
fn not_a_form(headers: &HeaderMap, rejection: &MultipartRejection) -> Problem {
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if multipart {
        Problem::malformed().with_detail(format!(
            "the multipart/form-data content type has no usable boundary: {}",
            rejection.body_text()
        ))
    } else {
        Problem::unsupported_media_type()
            .with_detail("expected a body with Content-Type: multipart/form-data; boundary=…")
    }
}

fn unreadable(e: axum::extract::multipart::MultipartError) -> Problem {
    Problem::malformed().with_detail(format!("the multipart body could not be read: {e}"))
}

/// Upload a document (`documents:write`; in a project, there). Multipart form with a `file`
/// part and optional `filename`, `mime_type` and `project_id` parts, in any order. The
/// content streams to storage while its SHA-256 and MD5 are computed; identical content in
/// the tenant is stored once (the new document gets the existing `file_id`). Over
/// `files.max_upload_bytes` → 413 as soon as the limit is crossed (at once when the declared
/// `Content-Length` already exceeds it); beyond the tenant's storage quota → 402
/// `quota_exceeded`; content contradicting `mime_type` → 422; a body that pauses longer than
/// `files.upload_idle_timeout_secs` → 408 `request_timeout`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/documents", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Document), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 402, description = "Storage quota exceeded", body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 408, description = "The body paused longer than `files.upload_idle_timeout_secs`", body = Problem),
        (status = 413, description = "Larger than the upload limit", body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn upload_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Problem> {
    let mut multipart = multipart.map_err(|rejection| not_a_form(&headers, &rejection))?;
    let mut form = Form::default();
    let mut staged = None;
    let outcome: Result<(), Problem> = async {
        let mut parts = 0;
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Problem::validation_failed()
                    .with_detail("the form has too many parts")
                    .with_field("file", "the form may have at most 8 parts"));
            }
            if field.name() != Some("file") {
                form.read(field).await?;
                continue;
            }
            if staged.is_some() {
                return Err(Problem::validation_failed()
                    .with_detail("the form has more than one file")
                    .with_field("file", "must appear once"));
            }
            form.part_filename = field.file_name().map(str::to_owned);
            form.part_type = field.content_type().map(str::to_owned);
            staged = Some(files.stage(&ctx.scope, form.project_id, field).await?);
        }
        Ok(())
    }
    .await;
    let staged = match (outcome, staged) {
        (Ok(()), Some(staged)) => staged,
        (Ok(()), None) => {
            return Err(Problem::validation_failed()
                .with_detail("the form has no file")
                .with_field("file", "is required"));
        }
        (Err(problem), staged) => {
            if let Some(staged) = staged {
                files.discard(staged).await;
            }
            return Err(problem);
        }
    };
    let document = files.commit_upload(&ctx.scope, staged, form.meta()).await?;
    Ok((StatusCode::CREATED, Json(document)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentListParams {
    /// Case-insensitive substring of the file name.
    pub filename: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub project_id: Option<String>,
    /// Uploaded by this user.
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<String>,
    /// Uploaded at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Uploaded before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Documents the caller may read, newest first (`documents:read`; documents in projects the
/// caller cannot read are left out).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/documents", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), DocumentListParams),
    responses((status = 200, body = Page<Document>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_documents(
    State(files): State<Files>,
    ctx: TenantCtx,
    Query(params): Query<DocumentListParams>,
) -> Result<Json<Page<Document>>, Problem> {
    let mut v = Validator::new();
    let project_id: Option<ProjectId> = params.project_id.as_deref().and_then(|p| {
        v.field(
            "project_id",
            p.parse().map_err(|_| Invalid("must be a project id")),
        )
    });
    let user_id: Option<UserId> = params.user_id.as_deref().and_then(|u| {
        v.field(
            "user_id",
            u.parse().map_err(|_| Invalid("must be a user id")),
        )
    });
    if let Some(name) = &params.filename
        && name.chars().count() > 255
    {
        v.error("filename", "must be at most 255 characters");
    }
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        v.error("to", "must be after from");
    }
    v.finish()?;
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .try_into()?;
    let filter = DocumentFilter {
        filename: params.filename,
        project_id,
        user_id,
        from: params.from,
        to: params.to,
    };
    Ok(Json(
        files.list_documents(&ctx.scope, &filter, &page).await?,
    ))
}

/// One document (`documents:read`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/documents/{document_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Document), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    Ids(id): Ids<DocumentId>,
) -> Result<Json<Document>, Problem> {
    Ok(Json(files.get_document(&ctx.scope, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentPatch {
    #[schema(example = "invoice-2026-11.pdf")]
    pub filename: Option<String>,
    #[schema(example = "application/pdf")]
    pub mime_type: Option<String>,
}

fn parse_change(body: DocumentPatch, replace: bool) -> Result<DocumentChange, Problem> {
    let mut v = Validator::new();
    if replace && (body.filename.is_none() || body.mime_type.is_none()) {
        for (field, value) in [("filename", &body.filename), ("mime_type", &body.mime_type)] {
            if value.is_none() {
                v.error(field, "is required");
            }
        }
    }
    let filename = body.filename.and_then(|name| {
        let name = name.trim().to_owned();
        let valid = !name.is_empty()
            && name.chars().count() <= 255
            && tenantry_core::text::check_visible(&name, false).is_ok()
            && !name.chars().any(|c| c == '/' || c == '\\');
        if valid {
            Some(name)
        } else {
            v.error(
                "filename",
                "must be 1 to 255 characters, without slashes or control, bidirectional or \
                 invisible formatting characters",
            );
            None
        }
    });
    let mime_type = body.mime_type.and_then(|m| {
        v.field(
            "mime_type",
            MimeType::parse(&m).map_err(|_| Invalid("must be a MIME type (type/subtype)")),
        )
    });
    v.finish()?;
    Ok(DocumentChange {
        filename,
        mime_type,
    })
}

/// Rename a document or correct its MIME type (`documents:write`).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/documents/{document_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid)),
    request_body = DocumentPatch,
    responses((status = 200, body = Document), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    id: Result<Ids<DocumentId>, Problem>,
    Json(body): Json<DocumentPatch>,
) -> Result<Json<Document>, Problem> {
    update(&files, &ctx, id, body, false).await
}

/// Replace a document's metadata: `filename` and `mime_type` both required
/// (`documents:write`).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/documents/{document_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid)),
    request_body = DocumentPatch,
    responses((status = 200, body = Document), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    id: Result<Ids<DocumentId>, Problem>,
    Json(body): Json<DocumentPatch>,
) -> Result<Json<Document>, Problem> {
    update(&files, &ctx, id, body, true).await
}

/// PATCH (`replace: false`) and PUT (`true`) of a document's metadata. A rejected body is
/// answered before a malformed id (the body is extracted before the handler runs, the id's
/// 404 is taken here), as it always was.
async fn update(
    files: &Files,
    ctx: &TenantCtx,
    id: Result<Ids<DocumentId>, Problem>,
    body: DocumentPatch,
    replace: bool,
) -> Result<Json<Document>, Problem> {
    let Ids(id) = id?;
    let change = parse_change(body, replace)?;
    Ok(Json(files.update_document(&ctx.scope, id, change).await?))
}

/// Delete a document (`documents:delete`). A file no document references any longer is
/// collected after `files.orphan_grace_secs`.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/documents/{document_id}", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn delete_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    Ids(id): Ids<DocumentId>,
) -> Result<StatusCode, Problem> {
    files.delete_document(&ctx.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// `true`: answer 302 to the URL instead of `{url, expires_at}`.
    pub redirect: Option<bool>,
}

/// A URL of this server that serves the document's bytes until it expires
/// (`files.download_url_ttl_secs`, default 1 h) and only while the caller may still read the
/// document: every use re-checks the requester (member, active, key live, tenant active,
/// `documents:read`). Local storage serves the bytes (`Content-Disposition: attachment`, the
/// stored type, `nosniff`, ranges); S3 redirects to a URL presigned for 60 s. `documents:read`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/documents/{document_id}/download", tag = "files",
    security(("bearer" = [])),
    params(("tenant_id" = String, Path, format = Uuid), ("document_id" = String, Path, format = Uuid),
        DownloadParams),
    responses((status = 200, body = DownloadLink), (status = 302, description = "With `?redirect=true`",
            headers(("Location" = String, description = "The download URL"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn download_document(
    State(files): State<Files>,
    ctx: TenantCtx,
    // Before the id, so a rejected query string is answered first, as it always was.
    Query(params): Query<DownloadParams>,
    Ids(id): Ids<DocumentId>,
) -> Result<Response, Problem> {
    let link = files.download_link(&ctx.scope, id).await?;
    if params.redirect == Some(true) {
        return Ok((
            StatusCode::FOUND,
            [
                (header::LOCATION, link.url),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response());
    }
    Ok(Json(link).into_response())
}
