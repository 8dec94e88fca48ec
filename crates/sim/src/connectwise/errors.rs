//! The error answers ConnectWise gives, in one place so every module answers alike.
//!
//! ConnectWise answers failures with `{"code": …, "message": …}`; validation failures are 400
//! `{"code": "InvalidObject", "message": "ticket object is invalid", "errors": [{"code",
//! "message", "resource", "field"}]}`. The exact bodies of 401 and 404 are not published
//! (reference §6): these follow the same shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One element of an `InvalidObject` body's `errors`.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
    pub field: String,
}

impl FieldError {
    pub fn new(code: &'static str, field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            code,
            message: message.into(),
            field: field.to_string(),
        }
    }
}

/// An API failure, rendered as ConnectWise renders it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `InvalidObject` with field errors.
    #[error("{resource} object is invalid")]
    Invalid {
        resource: &'static str,
        errors: Vec<FieldError>,
    },
    /// 400 for a malformed request (bad JSON, bad conditions).
    #[error("{0}")]
    BadRequest(String),
    /// 401: bad credentials or client id.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such record or URL.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 429 with `Retry-After` seconds.
    #[error("too many requests")]
    TooManyRequests(u64),
}

impl ApiError {
    pub fn invalid(resource: &'static str, errors: Vec<FieldError>) -> ApiError {
        ApiError::Invalid { resource, errors }
    }

    pub fn one(resource: &'static str, e: FieldError) -> ApiError {
        ApiError::Invalid {
            resource,
            errors: vec![e],
        }
    }
}

fn body(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid { resource, errors } => body(
                StatusCode::BAD_REQUEST,
                json!({
                    "code": "InvalidObject",
                    "message": format!("{resource} object is invalid"),
                    "errors": errors.iter().map(|e| json!({
                        "code": e.code,
                        "message": e.message,
                        "resource": resource,
                        "field": e.field,
                    })).collect::<Vec<_>>(),
                }),
            ),
            ApiError::BadRequest(m) => body(
                StatusCode::BAD_REQUEST,
                json!({"code": "BadRequest", "message": m}),
            ),
            ApiError::Unauthorized(m) => body(
                StatusCode::UNAUTHORIZED,
                json!({"code": "Unauthorized", "message": m}),
            ),
            ApiError::NotFound(m) => body(
                StatusCode::NOT_FOUND,
                json!({"code": "NotFound", "message": m}),
            ),
            ApiError::MethodNotAllowed => body(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"code": "MethodNotAllowed", "message": "The requested resource does not support this http method."}),
            ),
            ApiError::TooManyRequests(secs) => {
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({
                        "code": "TooManyRequests",
                        "message": format!("Request volume exceeds capacity limits. Retry after {secs} seconds."),
                    }),
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
        }
    }
}
