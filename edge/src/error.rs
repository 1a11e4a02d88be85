//! The HTTP edge's closed set of error answers: [`ErrorCode`] (status + stable code) and
//! [`ApiError`] (code, client message, `Retry-After`, and an internal detail that is logged
//! once and never sent).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every error code gatelog's HTTP routes answer with. Also the label set of
/// `gatelog_rejected_requests_total{code}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 401: no or wrong token.
    Unauthorized,
    /// 413: body over `max_body_bytes`, inflated body over `max_decompressed_bytes`, or a
    /// batch too large for one spool record.
    PayloadTooLarge,
    /// 400: empty body, corrupt gzip, or a batch with no usable line.
    BadRequest,
    /// 404: unknown dataset or route.
    NotFound,
    /// 429 (spool full) or 503 (sinks lag, or requests hold `max_buffered_bytes`): retry
    /// after `Retry-After`.
    Overloaded,
    /// 503: the spool failed (I/O, disk full, closed); nothing was acknowledged.
    Unavailable,
    /// 415: a `Content-Encoding` other than `gzip`, `x-gzip` or `identity`.
    UnsupportedEncoding,
    /// 408: the body stopped arriving, or arrived too slowly.
    RequestTimeout,
    /// 403: a known credential whose role may not use the route.
    Forbidden,
    /// 409: the request conflicts with the state of what it acts on (an alert already
    /// resolved).
    Conflict,
    /// 500: stored evidence does not match its stored SHA-256 (`GET /v1/raw/{event_id}`).
    Integrity,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Unauthorized,
        ErrorCode::PayloadTooLarge,
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::UnsupportedEncoding,
        ErrorCode::RequestTimeout,
        ErrorCode::Forbidden,
        ErrorCode::Conflict,
        ErrorCode::Integrity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::UnsupportedEncoding => "unsupported_encoding",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Integrity => "integrity",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// An error answer: `{"error":{"code","message"}}` plus optional extra top-level fields.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub status: StatusCode,
    /// Safe to show the client: no paths, no OS errors.
    pub message: String,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
    /// Logged once by the handler, never sent.
    pub internal: Option<String>,
    /// Extra top-level JSON fields (e.g. the batch id of spooled dead letters).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    fn new(code: ErrorCode, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { code, status, message: message.into(), retry_after: None, internal: None, extra: None }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "missing or invalid credential (send Authorization: Bearer <token>)",
        )
    }
    /// 401 with why a presented credential was refused (an identity token's
    /// [`gatelog_identity::AuthError`], which never holds the token).
    pub fn unauthorized_with(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, StatusCode::UNAUTHORIZED, message)
    }
    /// 403: the caller is known, its role may not use the route. `message` names the role,
    /// never the credential.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, StatusCode::FORBIDDEN, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, StatusCode::CONFLICT, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, StatusCode::NOT_FOUND, message)
    }
    /// 429 when the spool is full; 503 (via [`ApiError::lagging`]) when the sinks lag.
    pub fn spool_full(retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::Overloaded, StatusCode::TOO_MANY_REQUESTS, "spool is full; retry later");
        e.retry_after = Some(retry_after);
        e
    }
    pub fn lagging(retry_after: u64, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Overloaded, StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after = Some(retry_after);
        e
    }
    pub fn unavailable(retry_after: u64, message: impl Into<String>, internal: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Unavailable, StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after = Some(retry_after);
        e.internal = Some(internal.into());
        e
    }

    /// 500: stored bytes that do not hash to their stored SHA-256; `internal` (logged, never
    /// sent) says which.
    pub fn integrity(message: impl Into<String>, internal: impl Into<String>) -> Self {
        Self::new(ErrorCode::Integrity, StatusCode::INTERNAL_SERVER_ERROR, message).with_internal(internal)
    }

    pub fn unsupported_encoding(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedEncoding, StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RequestTimeout, StatusCode::REQUEST_TIMEOUT, message)
    }
    /// 503 when the receiver holds as much memory as it may: retry after `Retry-After`.
    pub fn busy(retry_after: u64, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::Overloaded, StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn with_internal(mut self, internal: impl Into<String>) -> Self {
        self.internal = Some(internal.into());
        self
    }

    pub fn with_extra(mut self, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra = Some(extra);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra.unwrap_or_default();
        body.insert("error".into(), json!({ "code": self.code.as_str(), "message": self.message }));
        let mut response = (self.status, Json(serde_json::Value::Object(body))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == ErrorCode::RequestTimeout {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.code == ErrorCode::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"gatelog\""));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_indexed_in_order() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        let names: std::collections::BTreeSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn retry_after_and_www_authenticate_headers() {
        let r = ApiError::spool_full(7).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        let r = ApiError::unauthorized().into_response();
        assert!(r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
    }
}
