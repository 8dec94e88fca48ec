//! ConnectWise's answers to `status` and `html` faults; the rules themselves are shared
//! (`crate::faults`). A rule's `entity` is an endpoint (`service/tickets`,
//! `service/tickets/notes`, …), its draws seeded apart from the other simulators'.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::faults::{DrawSeeds, with_retry_after};
pub use crate::faults::{FaultKind, FaultRule, Faults};

/// ConnectWise's own draw seeds (kept so seeded runs repeat as they always have).
pub const DRAW_SEEDS: DrawSeeds = DrawSeeds {
    default_seed: 0x00C0_FFEE_5EED,
    zero_state: 0x2545_F491_4F6C_DD1D,
};

/// Whether a rule's `entity` names this endpoint (slashes around it ignored).
pub fn endpoint_matches(rule_entity: &str, endpoint: &str) -> bool {
    rule_entity.trim_matches('/').eq_ignore_ascii_case(endpoint)
}

/// The answer of a `status` fault, in ConnectWise's error shape.
pub fn status_answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, msg) = match status.as_u16() {
        429 => ("TooManyRequests", "Request volume exceeds capacity limits."),
        401 => ("Unauthorized", "Authentication failed."),
        403 => (
            "Forbidden",
            "You do not have permission to perform this action.",
        ),
        404 => ("NotFound", "The requested resource was not found."),
        502 => ("BadGateway", "Bad gateway."),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        ),
        504 => ("GatewayTimeout", "The request timed out."),
        _ => (
            "Unexpected",
            "An unexpected error has occurred. Please try again.",
        ),
    };
    with_retry_after(
        (status, axum::Json(json!({"code": code, "message": msg}))).into_response(),
        rule,
    )
}

/// The answer of an `html` fault: an edge proxy's HTML page.
pub fn html_answer(rule: &FaultRule) -> Response {
    let status =
        StatusCode::from_u16(rule.status.unwrap_or(502)).unwrap_or(StatusCode::BAD_GATEWAY);
    let page = format!(
        "<!DOCTYPE html><html><head><title>{0} {1}</title></head><body><h1>{0} {1}</h1></body></html>",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut r = (status, page).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    with_retry_after(r, rule)
}
