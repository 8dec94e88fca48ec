//! Kaseya BMS's answers to `status` and `html` faults; the rules themselves are shared
//! (`crate::faults`). A rule's `entity` is a fragment of the endpoint
//! (`POST /v2/servicedesk/tickets/{id}/notes`), and fields of its own are ignored.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::envelope::Fail;
use crate::faults::with_retry_after;
pub use crate::faults::{FaultKind, FaultRule, Faults};

/// Whether a rule's `entity` is part of this endpoint (case-insensitive); `endpoint` is
/// already lowercase.
pub fn endpoint_matches(rule_entity: &str, endpoint: &str) -> bool {
    endpoint.contains(&rule_entity.to_ascii_lowercase())
}

/// The answer of a `status` fault: the failure envelope.
pub fn status_answer(rule: &FaultRule) -> Response {
    let status = rule.status.unwrap_or(500);
    let message = match status {
        429 => "API rate limit exceeded: too many requests to this endpoint. Try again later.",
        502 => "Bad Gateway.",
        503 => "The service is temporarily unavailable. Please try again later.",
        504 => "Gateway Timeout.",
        s if s >= 500 => "An error occurred while processing your request.",
        _ => "The request could not be processed.",
    };
    Fail {
        retry_after: rule.retry_after_secs,
        ..Fail::new(status, message)
    }
    .into_response()
}

/// The answer of an `html` fault: a gateway's HTML page.
pub fn html_answer(rule: &FaultRule) -> Response {
    let status =
        StatusCode::from_u16(rule.status.unwrap_or(502)).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"),
    )
        .into_response();
    with_retry_after(page, rule)
}
