//! JSON bodies and query strings whose rejections are problems.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, header, request::Parts},
};
use serde::de::DeserializeOwned;
use tenantry_core::Problem;

/// `axum::Json` whose rejections are problems: 415 without a JSON content type, 400 for
/// malformed JSON, 422 for a well-formed body of the wrong shape or with a NUL character in a
/// string, 413 when too large.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        if !json_content_type(req.headers()) {
            return Err(json_problem(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => return Err(json_problem(rejection.into())),
        };
        if has_nul_escape(&bytes) {
            return Err(nul_problem());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

/// `application/json` or `application/<anything>+json`, as `axum::Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// Whether a JSON text has a string with the escape `\u0000` (a raw NUL cannot appear in
/// valid JSON). PostgreSQL cannot store NUL in `text` or `jsonb` (the statement fails, a 500)
/// while SQLite would: refusing it here answers the same 422 on both backends.
fn has_nul_escape(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, window)| {
        window == b"\\u0000"
            && json[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

fn nul_problem() -> Problem {
    Problem::validation_failed().with_detail("text must not contain NUL characters (\\u0000)")
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::unsupported_media_type()
            .with_detail("expected a body with Content-Type: application/json"),
        JsonRejection::JsonSyntaxError(e) => Problem::malformed()
            .with_detail(format!("the body is not valid JSON: {}", e.body_text())),
        JsonRejection::JsonDataError(e) => Problem::validation_failed().with_detail(format!(
            "the body does not match the expected shape: {}",
            e.body_text()
        )),
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            Problem::payload_too_large().with_detail("the request body is too large")
        }
        other => Problem::malformed().with_detail(other.body_text()),
    }
}

/// The same response as `axum::Json` (status, `Content-Type: application/json`, body), but
/// serialised into a `Vec`: serde_json makes many small writes (every quote, comma and
/// string piece), which a `Vec` takes as inlined copies where `axum::Json`'s `BytesMut` writer
/// makes a call and a `memcpy` per write.
impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        let mut buf = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                )],
                axum::body::Body::from(buf),
            )
                .into_response(),
            // Like every 500: a problem, the cause only in the log.
            Err(error) => Problem::internal_error(
                &anyhow::Error::new(error).context("serialising the response body"),
            )
            .into_response(),
        }
    }
}

/// A JSON body that may be left out entirely (no `Content-Type`, no bytes) → `None`;
/// a body that is sent is read as by [`Json`] (415, 400, 422).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let headers = req.headers();
        let absent = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|length| length.as_bytes() == b"0");
        if absent {
            return Ok(Self(None));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(body)| Self(Some(body)))
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in a PATCH
/// body: `#[serde(default, deserialize_with = "tenantry_http::present")]`.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Request bodies that carry secrets (passwords, tokens) print only their name, so no log
/// line or panic message shows one: `redacted_debug!(LoginRequest, RefreshRequest);`.
#[macro_export]
macro_rules! redacted_debug {
    ($($ty:ident),* $(,)?) => {$(
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($ty), " { .. }"))
            }
        }
    )*};
}

/// Query-string extractor with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // `%00` is an encoded NUL (see `has_nul_escape`); `%2500` is the text "%00".
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(nul_problem());
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| {
                Problem::validation_failed()
                    .with_detail(format!("invalid query string: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_escapes_only_inside_strings() {
        assert!(has_nul_escape(br#"{"role": "a\u0000b"}"#));
        assert!(has_nul_escape(br#"{"a\u0000": 1}"#));
        assert!(has_nul_escape(br#"["\\\u0000"]"#));
        // An escaped backslash followed by the text "u0000".
        assert!(!has_nul_escape(br#"{"role": "a\\u0000b"}"#));
        assert!(!has_nul_escape(br#"{"role": "\u0001"}"#));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(v));
            json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/Merge-Patch+JSON"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
