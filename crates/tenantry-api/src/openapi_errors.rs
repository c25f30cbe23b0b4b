//! The error half of the OpenAPI document, written in one place for every operation.
//!
//! Errors do not come only from handlers: the extractors answer 400/415/422/413 for bodies
//! and query strings, the authentication layer 401, the tenant layer 403/404/429, the
//! idempotency middleware 400/409/422, and the timeout and panic layers 503/500. Annotating
//! each of those on every handler would drift as soon as someone adds an endpoint, so
//! [`document`] walks the generated document and derives each operation's shared statuses
//! from what the operation has (a body, a query, path ids, a credential, a tenant path).
//! Statuses an annotation already lists keep their specific description; every error
//! response, annotated or added, is `application/problem+json` with the `Problem` schema.

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Content, ContentBuilder, Header, ObjectBuilder, OpenApi, Ref, RefOr, Response,
        ResponseBuilder, Type,
        path::{Operation, ParameterIn},
    },
};

use tenantry_core::{
    Problem,
    problem::{FieldError, PROBLEM_CONTENT_TYPE},
};

/// A shared error response: status, its name under `#/components/responses`, description.
struct Shared {
    status: &'static str,
    name: &'static str,
    description: &'static str,
}

const SHARED: &[Shared] = &[
    Shared {
        status: "400",
        name: "BadRequest",
        description: "Malformed request (`malformed_request`): the body is not valid JSON or \
            multipart, or the `Idempotency-Key` header is not 1–255 visible ASCII characters",
    },
    Shared {
        status: "401",
        name: "Unauthorized",
        description: "No or bad credentials (`unauthenticated`, `invalid_token`)",
    },
    Shared {
        status: "403",
        name: "Forbidden",
        description: "Authenticated but not permitted (`forbidden`), the tenant is suspended \
            (`tenant_suspended`), or not a platform administrator (`platform_admin_required`)",
    },
    Shared {
        status: "404",
        name: "NotFound",
        description: "Unknown, malformed or another tenant's id (`not_found`): the same answer \
            whether or not the object exists elsewhere",
    },
    Shared {
        status: "409",
        name: "Conflict",
        description: "Conflict: a request with this `Idempotency-Key` is still in progress \
            (`idempotency_key_in_progress`, with `Retry-After`), or the state does not allow it",
    },
    Shared {
        status: "413",
        name: "PayloadTooLarge",
        description: "The request body is larger than the limit (`payload_too_large`)",
    },
    Shared {
        status: "415",
        name: "UnsupportedMediaType",
        description: "The body is not of the operation's content type \
            (`unsupported_media_type`)",
    },
    Shared {
        status: "422",
        name: "ValidationFailed",
        description: "Invalid fields, body shape or query parameters (`validation_failed`, \
            with `errors` naming the fields), or an `Idempotency-Key` reused with another \
            request (`idempotency_key_reused`)",
    },
    Shared {
        status: "429",
        name: "TooManyRequests",
        description: "Rate limited (`rate_limited`): too many requests for this tenant, with \
            this API key or from this address; retry after `Retry-After` seconds",
    },
    Shared {
        status: "500",
        name: "InternalServerError",
        description: "Unexpected failure (`internal_error`); the body never carries internal \
            error text",
    },
    Shared {
        status: "503",
        name: "ServiceUnavailable",
        description: "Not ready, overloaded or too slow (`not_ready`): the database or storage \
            does not answer, the request timed out, or too many sign-ins wait for a password \
            hash; retry after `Retry-After` seconds",
    },
];

/// What of an operation decides which shared errors it can answer.
struct Traits {
    body: bool,
    query: bool,
    path_ids: bool,
    credential: bool,
    idempotent: bool,
    tenant: bool,
    admin: bool,
}

impl Traits {
    fn of(path: &str, operation: &Operation) -> Self {
        let params = operation
            .parameters
            .iter()
            .flatten()
            .filter_map(|p| match p {
                RefOr::T(p) => Some(p),
                RefOr::Ref(_) => None,
            });
        let (mut query, mut path_ids, mut idempotent) = (false, false, false);
        for param in params {
            match param.parameter_in {
                ParameterIn::Query | ParameterIn::QueryString => query = true,
                ParameterIn::Path => path_ids = true,
                ParameterIn::Header => idempotent |= param.name == "Idempotency-Key",
                ParameterIn::Cookie => {}
            }
        }
        Self {
            body: operation.request_body.is_some(),
            query,
            path_ids: path_ids || path.contains('{'),
            credential: operation.security.as_ref().is_some_and(|s| !s.is_empty()),
            idempotent,
            tenant: path.starts_with("/api/v1/tenants/{tenant_id}"),
            admin: path.starts_with("/api/v1/admin/"),
        }
    }

    /// Whether the operation can answer `status` whatever its handler does.
    fn answers(&self, status: &str) -> bool {
        match status {
            // The body extractors and the idempotency header.
            "400" | "413" => self.body || self.idempotent,
            "401" => self.credential,
            "403" => self.credential && (self.tenant || self.admin),
            "404" => self.path_ids,
            "409" => self.idempotent,
            "415" => self.body,
            "422" => self.body || self.query || self.idempotent,
            // Per tenant and per API key on every tenant path; the per-address limits of the
            // sign-in endpoints are annotated where they apply.
            "429" => self.tenant,
            // The panic and timeout layers wrap every route.
            "500" | "503" => true,
            _ => false,
        }
    }
}

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(Problem::name())))
        .build()
}

fn retry_after() -> Header {
    let mut header = Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
    );
    header.description = Some("Seconds to wait before retrying".to_owned());
    header
}

fn shared_response(shared: &Shared) -> Response {
    let mut response = ResponseBuilder::new()
        .description(shared.description)
        .content(PROBLEM_CONTENT_TYPE, problem_content())
        .build();
    add_retry_after(shared.status, &mut response);
    response
}

fn add_retry_after(status: &str, response: &mut Response) {
    if matches!(status, "429" | "503") {
        response
            .headers
            .entry("Retry-After".to_owned())
            .or_insert_with(|| RefOr::T(retry_after()));
    }
}

/// An annotated error response: its body is a problem whatever the annotation said (utoipa
/// writes `body = Problem` as `application/json`).
fn fix_annotated(status: &str, response: &mut Response) {
    response.content.clear();
    response
        .content
        .insert(PROBLEM_CONTENT_TYPE.to_owned(), RefOr::T(problem_content()));
    if response.description.is_empty() {
        let shared = SHARED.iter().find(|s| s.status == status);
        response.description = shared
            .map_or_else(|| reason(status), |s| s.description)
            .to_owned();
    }
    add_retry_after(status, response);
}

fn reason(status: &str) -> &'static str {
    status
        .parse::<u16>()
        .ok()
        .and_then(|code| http::StatusCode::from_u16(code).ok())
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Response")
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// Adds the shared error responses (and the `Problem` and `FieldError` schemas) to every
/// operation of `openapi`, makes every error response `application/problem+json`, and gives
/// responses without a description their status's reason phrase.
pub fn document(openapi: &mut OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    components
        .schemas
        .insert(FieldError::name().into_owned(), FieldError::schema());
    for shared in SHARED {
        components
            .responses
            .insert(shared.name.to_owned(), RefOr::T(shared_response(shared)));
    }
    for (path, item) in &mut openapi.paths.paths {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let traits = Traits::of(path, operation);
            let responses = &mut operation.responses.responses;
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if is_error(status) {
                    fix_annotated(status, response);
                } else if response.description.is_empty() {
                    // OpenAPI 3.1 requires a description; annotations often leave it out.
                    response.description = reason(status).to_owned();
                }
            }
            for shared in SHARED.iter().filter(|s| traits.answers(s.status)) {
                responses
                    .entry(shared.status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(shared.name)));
            }
        }
    }
}
