//! Faults on demand, and the control surface under `/_sim/`.
//!
//! A fault rule matches requests by entity, method and path fragment, and hits a number of
//! them (`count`) or a share of them (`probability`, from a seeded generator so runs repeat).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Shared, errors, query, webhooks};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with `status` and an Autotask-style errors body (optional `Retry-After`).
    Status,
    /// Answer with an IIS-style HTML error page.
    Html,
    /// Wait `delay_ms`, then answer normally.
    Delay,
    /// Hold the request `hold_ms` (default 120 s) without answering.
    Timeout,
    /// Close the connection without answering.
    Drop,
    /// Carry the request out, then close the connection without answering.
    AfterCommit,
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// Requests to hit; `None` with no probability means every matching request.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Seed of the probability draws.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn next_random(state: &mut u64) -> f64 {
    // xorshift64*: enough for repeatable fault draws.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// The first rule that matches this request, consuming one of its hits.
pub fn take(s: &Shared, method: &Method, entity: &str, path: &str) -> Option<FaultRule> {
    let mut rules = s.faults.lock().unwrap_or_else(|p| p.into_inner());
    let lower = path.to_ascii_lowercase();
    let idx = rules.iter_mut().position(|r| {
        let matches = r
            .entity
            .as_ref()
            .is_none_or(|e| e.eq_ignore_ascii_case(entity))
            && r.method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && r.path_contains
                .as_ref()
                .is_none_or(|p| lower.contains(&p.to_ascii_lowercase()));
        if !matches {
            return false;
        }
        match r.probability {
            Some(p) => {
                let seed = r.seed.get_or_insert(0x9E3779B97F4A7C15);
                next_random(seed) < p
            }
            None => true,
        }
    })?;
    let rule = rules[idx].clone();
    if let Some(c) = rules[idx].count.as_mut() {
        *c = c.saturating_sub(1);
        if *c == 0 {
            rules.remove(idx);
        }
    }
    Some(rule)
}

/// The answer of a `status` fault.
pub fn status_answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let msg = match status.as_u16() {
        429 => "Request rejected: the API request threshold has been exceeded. Try again later.",
        502 | 503 => "The service is temporarily unavailable.",
        _ => "An unexpected error occurred processing the request.",
    };
    let mut r = errors(status, &[msg]);
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}

/// `/_sim/...`: faults, statistics and technician actions. Never subject to faults or limits.
pub async fn control(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[&str],
    query_text: Option<&str>,
    body: &Bytes,
) -> Response {
    let lower: Vec<String> = segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["faults"]) => match serde_json::from_slice::<FaultRule>(body) {
            Ok(rule) => {
                s.faults.lock().unwrap_or_else(|p| p.into_inner()).push(rule);
                (StatusCode::CREATED, axum::Json(json!({"ok": true}))).into_response()
            }
            Err(e) => bad(format!("not a fault rule: {e}")),
        },
        ("GET", ["faults"]) => ok(json!({"faults": *s.faults.lock().unwrap_or_else(|p| p.into_inner())})),
        ("DELETE", ["faults"]) => {
            s.faults.lock().unwrap_or_else(|p| p.into_inner()).clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["stats"]) => {
            let stats = s.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let in_flight: u32 = s.in_flight.lock().unwrap_or_else(|p| p.into_inner()).values().sum();
            ok(json!({
                "total_requests": stats.get("total").copied().unwrap_or(0),
                "by_endpoint": stats
                    .iter()
                    .filter(|(k, _)| k.as_str() != "total")
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
                "threshold": {"limit": s.config.hourly_limit, "used_in_last_hour": s.window_count()},
                "in_flight": in_flight,
            }))
        }
        ("POST", ["reset-stats"]) => {
            s.stats.lock().unwrap_or_else(|p| p.into_inner()).clear();
            s.window.lock().unwrap_or_else(|p| p.into_inner()).clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["tickets"]) => {
            let params: Vec<(String, String)> = query_text
                .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default();
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let open_only = get("open").is_some_and(|v| v == "true");
            let limit: usize = get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
            let db = s.db.lock().unwrap_or_else(|p| p.into_inner());
            let tickets: Vec<Value> = db
                .records
                .get("Tickets")
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|t| !open_only || query::field(t, "status") != Some(&json!(super::ids::STATUS_COMPLETE)))
                .take(limit)
                .cloned()
                .collect();
            ok(json!({"tickets": tickets}))
        }
        ("POST", ["tickets", id, "complete"]) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(format!("'{id}' is not a ticket id"));
            };
            let change = {
                let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
                let Some(t) = db.records.get_mut("Tickets").and_then(|m| m.get_mut(&id)) else {
                    return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such ticket"}))).into_response();
                };
                let before = t.clone();
                let now = super::now_text();
                t["status"] = json!(super::ids::STATUS_COMPLETE);
                t["completedDate"] = json!(now);
                t["lastActivityDate"] = json!(now);
                (before, t.clone())
            };
            s.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
            // A technician's change is pushed before this answers, so that a test (or a demo)
            // that completes a ticket and then sends an alert sees the callout land first.
            webhooks::ticket_changed(s, "Update", Some(&change.0), &change.1, true).await;
            ok(json!({"ticket": change.1}))
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown control endpoint", "endpoints": [
                "POST /_sim/faults", "GET /_sim/faults", "DELETE /_sim/faults", "GET /_sim/stats",
                "POST /_sim/reset-stats", "GET /_sim/tickets?open=true&limit=N", "POST /_sim/tickets/{id}/complete"
            ]})),
        )
            .into_response(),
    }
}
