//! RFC 9457 problem details: the one error type every layer maps into.
//!
//! `code` is the stable, machine-readable contract (clients switch on it); `title` is a fixed
//! human summary per code; `detail` may add specifics but never internal error text.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::values::Invalid;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// A field-level validation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The request field (JSON pointer-like dotted path, e.g. `email` or `settings.theme`).
    pub field: Cow<'static, str>,
    pub message: Cow<'static, str>,
}

/// An error answered as `application/problem+json`. Boxed, so `Result<T, Problem>` stays
/// one pointer wide on the success path.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemBody>);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemBody {
        &mut self.0
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProblemBody as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }

    /// The schemas `Problem` refers to (`FieldError`): without them a document that uses
    /// `Problem` has a dangling `$ref`.
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <ProblemBody as ToSchema>::schemas(schemas);
    }
}

/// The fields of a [`Problem`].
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "urn:tenantry:problem:validation_failed", "title": "Validation failed",
    "status": 422, "detail": "The request has invalid fields.", "code": "validation_failed",
    "errors": [{"field": "email", "message": "must be a valid e-mail address"}]}))]
pub struct ProblemBody {
    /// `urn:tenantry:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: Cow<'static, str>,
    pub title: &'static str,
    #[serde(serialize_with = "ser_status")]
    #[schema(value_type = u16)]
    pub status: StatusCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Cow<'static, str>>,
    /// Stable machine-readable error code.
    pub code: &'static str,
    /// The invalid fields of a 422 (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// Seconds, sent as `Retry-After` for 429 and 503.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

fn ser_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

macro_rules! constructors {
    ($($fn_name:ident => ($status:ident, $code:literal, $title:literal);)*) => {
        impl Problem {
            $(
                #[doc = concat!("`", $code, "` (", stringify!($status), ")")]
                pub fn $fn_name() -> Self {
                    Self::new(StatusCode::$status, $code, $title)
                }
            )*
        }
        /// Every stable code with its status and title, for documentation and tests.
        pub const CODES: &[(&str, u16, &str)] = &[$(($code, StatusCode::$status.as_u16(), $title)),*];
    };
}

constructors! {
    malformed => (BAD_REQUEST, "malformed_request", "Malformed request");
    link_invalid => (BAD_REQUEST, "link_invalid", "The link is invalid, already used or expired");
    unauthenticated => (UNAUTHORIZED, "unauthenticated", "Authentication required");
    invalid_credentials => (UNAUTHORIZED, "invalid_credentials", "Invalid credentials");
    invalid_token => (UNAUTHORIZED, "invalid_token", "Invalid or expired token");
    mfa_required => (UNAUTHORIZED, "mfa_required", "Multi-factor code required");
    mfa_invalid => (UNAUTHORIZED, "mfa_invalid", "Invalid multi-factor code");
    forbidden => (FORBIDDEN, "forbidden", "Not permitted");
    tenant_suspended => (FORBIDDEN, "tenant_suspended", "Tenant suspended");
    not_found => (NOT_FOUND, "not_found", "Not found");
    method_not_allowed => (METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed");
    conflict => (CONFLICT, "conflict", "Conflict");
    already_exists => (CONFLICT, "already_exists", "Already exists");
    last_owner => (CONFLICT, "last_owner", "A tenant needs at least one owner");
    role_in_use => (CONFLICT, "role_in_use", "The role is still assigned");
    idempotency_key_in_progress => (CONFLICT, "idempotency_key_in_progress", "A request with this idempotency key is still in progress");
    idempotency_key_reused => (UNPROCESSABLE_ENTITY, "idempotency_key_reused", "The idempotency key was used with a different request");
    email_mismatch => (FORBIDDEN, "email_mismatch", "The invitation is for another e-mail address");
    email_not_verified => (FORBIDDEN, "email_not_verified", "The e-mail address is not verified");
    guest_not_allowed => (FORBIDDEN, "guest_not_allowed", "Guest accounts cannot do this");
    too_many_pending_invitations => (CONFLICT, "too_many_pending_invitations", "The tenant has too many pending invitations");
    platform_admin_required => (FORBIDDEN, "platform_admin_required", "Platform administrators only");
    signature_invalid => (FORBIDDEN, "signature_invalid", "The signed link is invalid or has expired");
    file_in_use => (CONFLICT, "file_in_use", "The file is still referenced by documents");
    range_not_satisfiable => (RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "Range not satisfiable");
    quota_exceeded => (PAYMENT_REQUIRED, "quota_exceeded", "Plan quota exceeded");
    feature_not_in_plan => (PAYMENT_REQUIRED, "feature_not_in_plan", "Feature not in plan");
    payload_too_large => (PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large");
    request_timeout => (REQUEST_TIMEOUT, "request_timeout", "The client sent the request too slowly");
    uri_too_long => (URI_TOO_LONG, "uri_too_long", "URI too long");
    header_fields_too_large => (REQUEST_HEADER_FIELDS_TOO_LARGE, "header_fields_too_large", "Request header fields too large");
    unsupported_media_type => (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type");
    validation_failed => (UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed");
    rate_limited => (TOO_MANY_REQUESTS, "rate_limited", "Too many requests");
    internal => (INTERNAL_SERVER_ERROR, "internal_error", "Internal server error");
    not_ready => (SERVICE_UNAVAILABLE, "not_ready", "Service not ready");
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self(Box::new(ProblemBody {
            kind: Cow::Owned(format!("urn:tenantry:problem:{code}")),
            title,
            status,
            detail: None,
            code,
            errors: Vec::new(),
            retry_after: None,
        }))
    }

    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_field(
        mut self,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A 422 naming one invalid field.
    pub fn invalid_field(field: &'static str, invalid: Invalid) -> Self {
        Self::validation_failed()
            .with_detail("The request has invalid fields.")
            .with_field(field, invalid.0)
    }

    /// An unexpected failure. The cause chain is logged here (inside the request's span, so
    /// the log line carries the request id); the client sees only an opaque 500.
    pub fn internal_error(error: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "internal error");
        Self::internal()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.title, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            Err(_) => br#"{"type":"urn:tenantry:problem:internal_error","title":"Internal server error","status":500,"code":"internal_error"}"#.to_vec(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // Lets the logging middleware record the stable code without parsing the body.
        response.extensions_mut().insert(ProblemCode(self.code));
        response
    }
}

/// Response extension carrying the problem code for access logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// Accumulates field errors so a request reports every invalid field at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one field, recording its error; returns `None` when invalid.
    pub fn field<T>(&mut self, field: &'static str, parsed: Result<T, Invalid>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(Invalid(message)) => {
                self.errors.push(FieldError {
                    field: field.into(),
                    message: message.into(),
                });
                None
            }
        }
    }

    pub fn error(&mut self, field: impl Into<Cow<'static, str>>, message: &'static str) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(())` when every field parsed, else the 422 listing all of them.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            let mut problem =
                Problem::validation_failed().with_detail("The request has invalid fields.");
            problem.errors = self.errors;
            Err(problem)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = CODES.iter().map(|(c, _, _)| *c).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(before, codes.len());
    }

    #[test]
    fn serialises_as_rfc9457() {
        let p = Problem::validation_failed().with_field("email", "bad");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["type"], "urn:tenantry:problem:validation_failed");
        assert_eq!(json["errors"][0]["field"], "email");
        assert!(json.get("detail").is_none());
    }

    #[test]
    fn validator_collects_every_field() {
        let mut v = Validator::new();
        assert!(v.field("a", Err::<(), _>(Invalid("x"))).is_none());
        assert_eq!(v.field("b", Ok(1)), Some(1));
        v.error("c", "y");
        let p = v.finish().unwrap_err();
        assert_eq!(p.errors.len(), 2);
    }

    #[test]
    fn response_has_problem_content_type_and_retry_after() {
        let r = Problem::rate_limited().with_retry_after(7).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
