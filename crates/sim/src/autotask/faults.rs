//! Autotask's answers to `status` and `html` faults; the rules themselves are shared
//! (`crate::faults`). A rule's `entity` is the URL's entity or, on child routes, the child's.

use axum::http::StatusCode;
use axum::response::Response;

use super::errors::{errors_body, iis_page};
use crate::faults::with_retry_after;
pub use crate::faults::{FaultKind, FaultRule, Faults};

/// The answer of a `status` fault: Autotask-style errors body, optional `Retry-After`.
pub fn status_answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let msg = match status.as_u16() {
        429 => "Request rejected: the API request threshold has been exceeded. Try again later.",
        502 => "Bad Gateway: the server received an invalid response from an upstream server.",
        503 => "The service is temporarily unavailable. Please try again later.",
        _ => "An unexpected error has occurred. Please contact support with the time of the error.",
    };
    with_retry_after(errors_body(status, &[msg]), rule)
}

/// The answer of an `html` fault: an IIS error page.
pub fn html_answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = format!(
        "{} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Server Error")
    );
    with_retry_after(iis_page(status, &title), rule)
}
