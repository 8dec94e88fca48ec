//! Halo's error answers. Halo's bodies vary by layer: the OAuth server answers RFC 6749
//! `{"error","error_description"}`; validation failures come back as 400 with a bare JSON
//! string; other API errors as `{"ClassName","Message"}`; the rate limiter as text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// 400: a validation failure, as a bare JSON string.
pub fn invalid(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!(msg.into()))).into_response()
}

/// Any status with `{"ClassName": "...", "Message": "..."}`.
pub fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    let class = match status.as_u16() {
        403 => "System.UnauthorizedAccessException",
        404 => "HaloRecordNotFoundException",
        _ => "System.Exception",
    };
    (
        status,
        axum::Json(json!({"ClassName": class, "Message": msg.into()})),
    )
        .into_response()
}

/// 404 for a record that does not exist.
pub fn not_found(what: &str, id: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("{what} {id} not found"))
}

/// 401 for a missing, bad or expired bearer token.
pub fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"",
        )],
    )
        .into_response()
}

/// An OAuth error of the token endpoint.
pub fn oauth(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// 429 of the rolling window: the text Halo answers (reported by users), `Retry-After`.
pub fn rate_limited(limit: u32, window_secs: u64) -> Response {
    let minutes = (window_secs as f64 / 60.0).round().max(1.0) as u64;
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        format!("Rate Limit Reached - {limit} Requests per rolling {minutes} minute window"),
    )
        .into_response()
}
