//! OpenAPI: the `Idempotency-Key` header on the POST operations the middleware covers (the
//! statuses it adds, 400/409/422, are documented with the other shared errors in
//! `crate::openapi_errors`, which recognises the header).

use std::collections::HashSet;

use utoipa::openapi::{
    ObjectBuilder, OpenApi, RefOr, Required, Type,
    path::{Operation, ParameterBuilder, ParameterIn},
};

const KEY_DESCRIPTION: &str = "Makes the request safe to retry: the first response to this \
    key (per tenant and caller) is stored for 24 hours and replayed to every retry, with \
    `Idempotent-Replayed: true`; the request's effect happens once. 1–255 visible ASCII \
    characters, e.g. a UUID. The same key with another method, path or body answers 422 \
    `idempotency_key_reused`; a retry while the first request still runs waits for it, then \
    answers 409 `idempotency_key_in_progress` (with `Retry-After`) if it has not finished. \
    Responses with status 5xx are not stored when nothing took effect, so the retry runs again.";

fn requires_bearer(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|s| !s.is_empty())
}

fn key_parameter() -> RefOr<utoipa::openapi::path::Parameter> {
    RefOr::T(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(KEY_DESCRIPTION))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(super::MAX_KEY_LEN))
                    // What `parse_key` accepts: visible ASCII only.
                    .pattern(Some("^[!-~]+$")),
            ))
            .build(),
    )
}

/// Whether the operation's body is a multipart upload, which streams to storage: it is
/// never buffered to compare a retry's body, so it takes no `Idempotency-Key`.
fn streams_body(operation: &utoipa::openapi::path::Operation) -> bool {
    operation
        .request_body
        .as_ref()
        .is_some_and(|body| match body {
            RefOr::T(body) => body.content.keys().any(|t| t.starts_with("multipart/")),
            RefOr::Ref(_) => false,
        })
}

/// Documents the header; returns the path templates of the POST operations
/// that take an `Idempotency-Key` (those that require a bearer credential).
pub fn document(openapi: &mut OpenApi) -> HashSet<String> {
    let mut covered = HashSet::new();
    for (path, item) in &mut openapi.paths.paths {
        if let Some(post) = item.post.as_mut()
            && requires_bearer(post)
            && !streams_body(post)
        {
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(key_parameter());
            covered.insert(path.clone());
        }
    }
    covered
}
