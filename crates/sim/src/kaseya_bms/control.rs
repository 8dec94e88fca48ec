//! The control surface under `/_sim/`: faults, statistics, the seed's facts, and what a
//! technician does in BMS. No vendor authentication; never faulted, counted or limited.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::FaultRule;
use super::{Shared, now_text};
use crate::control::{bad, ok};

const ENDPOINTS: &[&str] = &[
    "GET /_sim",
    "POST /_sim/faults {kind: status|html|delay|timeout|drop|after_commit, status, retry_after_secs, delay_ms, hold_ms, count, probability, seed, method, path_contains, entity}",
    "GET /_sim/faults",
    "DELETE /_sim/faults",
    "GET /_sim/stats",
    "POST /_sim/reset (data back to the seed; faults, statistics and quotas cleared)",
    "GET /_sim/fixtures",
    "GET /_sim/billing (each contract's service lines in force now: contract_id, service_id, service_name, units, unit_cost, unit_price)",
    "GET /_sim/tickets?open=true",
    "GET /_sim/tickets/{id}",
    "POST /_sim/tickets/{id}/close (a technician resolves it with the tenant's completed status)",
    "POST /_sim/tickets/{id}/reopen",
    "POST /_sim/revoke-tokens (every access token becomes invalid: the next call meets 401)",
];

pub async fn handle(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[&str],
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let lower: Vec<String> = segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(r) =
        crate::control::faults_route_reading(&s.faults, method.as_str(), &parts, body, read_rule)
    {
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => ok(json!({
            "simulator": "Kaseya BMS REST API v2",
            "base_url": s.base_url,
            "endpoints": ENDPOINTS,
        })),
        ("GET", ["stats"]) => ok(s.stats_json()),
        ("POST", ["reset"]) => {
            s.reset();
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["revoke-tokens"]) => {
            s.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .revoke_all();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["fixtures"]) => ok(s.db().fixtures()),
        ("GET", ["billing"]) => ok(super::billing::billing_view(&s.db())),
        ("GET", ["tickets"]) => {
            let open_only = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .any(|(k, v)| k == "open" && (v == "true" || v == "1"));
            let db = s.db();
            let tickets: Vec<Value> = db
                .tickets
                .values()
                .filter(|t| !open_only || !db.is_closed(t))
                .map(|t| db.normalised(t))
                .collect();
            ok(json!({ "tickets": tickets }))
        }
        ("GET", ["tickets", id]) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("'{id}' is not a ticket id"),
                );
            };
            let db = s.db();
            match db.tickets.get(&id) {
                Some(t) => ok(db.normalised(t)),
                None => bad(StatusCode::NOT_FOUND, "no such ticket"),
            }
        }
        ("POST", ["tickets", id, action @ ("close" | "reopen")]) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("'{id}' is not a ticket id"),
                );
            };
            let mut db = s.db();
            let (close, reopen) = (db.default_close_status, db.reopen_status);
            let Some(mut t) = db.tickets.get(&id).cloned() else {
                return bad(StatusCode::NOT_FOUND, "no such ticket");
            };
            let now = now_text();
            if *action == "close" {
                t.status_id = close;
                t.completed_date.get_or_insert(now.clone());
            } else {
                t.status_id = reopen;
                t.completed_date = None;
                t.reopened_date = Some(now.clone());
            }
            t.last_status_update = now.clone();
            t.modified_on = now;
            let view = db.normalised(&t);
            db.tickets.insert(id, t);
            ok(view)
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown control endpoint", "endpoints": ENDPOINTS})),
        )
            .into_response(),
    }
}

/// A posted rule as this simulator has always read it: fields of its own ignored, and
/// reasons speaking of calls.
fn read_rule(body: &[u8]) -> Result<FaultRule, String> {
    let rule = FaultRule::from_slice_ignoring_unknown(body)
        .map_err(|e| format!("not a fault rule: {e}"))?;
    rule.check_hitting("call")?;
    Ok(rule)
}
