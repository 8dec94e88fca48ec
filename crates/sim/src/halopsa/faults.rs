//! Halo's answers to `status` and `html` faults; the rules themselves are shared
//! (`crate::faults`). A rule's `entity` is a resource (`Tickets`, `Actions`, `token`, …;
//! case-insensitive).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::faults::with_retry_after;
pub use crate::faults::{FaultKind, FaultRule, Faults};

/// The answer of a `status` or `html` fault.
pub fn answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let r = if rule.kind == FaultKind::Html {
        let title = format!(
            "{} - {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Server Error")
        );
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            format!("<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
        )
            .into_response()
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        super::errors::rate_limited(300, 300)
    } else {
        let msg = match status.as_u16() {
            502 => "Bad Gateway",
            503 => "The service is temporarily unavailable. Please try again later.",
            504 => "Gateway Timeout",
            _ => "An error has occurred. Please contact your administrator.",
        };
        super::errors::message(status, msg)
    };
    with_retry_after(r, rule)
}
