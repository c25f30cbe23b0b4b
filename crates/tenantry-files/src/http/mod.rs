//! The files context's HTTP surface: documents (uploads, metadata, download links), stored
//! files and storage usage under `/api/v1/tenants/{tenant_id}/…`, and the signed download
//! route `/api/v1/downloads/{tenant_id}/{document_id}`.

mod documents;
mod downloads;
mod files;

use axum::extract::FromRef;
use tenantry_http::Gate;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::Files;

/// The upload's route, whose body the assembly's middleware times and limits apart.
pub use documents::UPLOAD_ROUTE;
pub use downloads::SignedLink;

/// The `data` schemas of the files context's domain events: no response uses them, so the
/// document names them here (docs/events.md).
#[derive(OpenApi)]
#[openapi(components(schemas(crate::DocumentUploaded, crate::DocumentDeleted)))]
struct FilesDoc;

/// The files context's routes, for any state that authorizes ([`Gate`]) and holds the files
/// service.
pub fn router<S: Gate>() -> OpenApiRouter<S>
where
    Files: FromRef<S>,
{
    OpenApiRouter::with_openapi(FilesDoc::openapi())
        .merge(documents::router())
        .merge(files::router())
        .merge(downloads::router())
}
