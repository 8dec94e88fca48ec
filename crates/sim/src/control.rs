//! What every simulator's `/_sim/` control surface shares: its JSON answers and the fault
//! rule book (`/_sim/faults`), so that tests and demos drive each simulator the same way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{FaultRule, Faults};

/// A JSON answer, 200.
pub fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// `{"error": msg}` with `status`.
pub fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": msg.into()}))).into_response()
}

/// A posted rule, refused with a reason if it is not JSON of a rule or cannot work.
pub fn read_rule(body: &[u8]) -> Result<FaultRule, String> {
    let rule: FaultRule =
        serde_json::from_slice(body).map_err(|e| format!("not a fault rule: {e}"))?;
    rule.check()?;
    Ok(rule)
}

/// `POST /_sim/faults` (a rule, read by [`read_rule`]), `GET /_sim/faults` and
/// `DELETE /_sim/faults`; `None` for any other control route. `parts` are lowercase.
pub fn faults_route(
    faults: &Faults,
    method: &str,
    parts: &[&str],
    body: &[u8],
) -> Option<Response> {
    faults_route_reading(faults, method, parts, body, read_rule)
}

/// [`faults_route`], with posted rules read by `read`.
pub fn faults_route_reading(
    faults: &Faults,
    method: &str,
    parts: &[&str],
    body: &[u8],
    read: fn(&[u8]) -> Result<FaultRule, String>,
) -> Option<Response> {
    Some(match (method, parts) {
        ("POST", ["faults"]) => match read(body) {
            Ok(rule) => {
                faults.add(rule.clone());
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"ok": true, "fault": rule})),
                )
                    .into_response()
            }
            Err(e) => bad(StatusCode::BAD_REQUEST, e),
        },
        ("GET", ["faults"]) => ok(json!({"faults": faults.list()})),
        ("DELETE", ["faults"]) => {
            faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => return None,
    })
}
