//! Faults on demand, with the same control JSON as the Autotask simulator: rules that make
//! matching API requests fail the ways a tenant and the network between fail.
//!
//! A rule matches by method, path fragment and endpoint (`entity`: `service/tickets`,
//! `service/tickets/notes`, …), and hits `count` requests or a share of them (`probability`,
//! drawn from a seeded generator so runs repeat). Rules never apply to `/_sim/`.

use std::sync::Mutex;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` with a ConnectWise error body and an optional `Retry-After`.
    Status,
    /// Answer `status` with an HTML page (a proxy or Cloudflare edge in front of the API).
    Html,
    /// Wait `delay_ms`, then answer normally.
    Delay,
    /// Hold the request `hold_ms` (default 120 s) without answering, then close the connection.
    Timeout,
    /// Close the connection without answering.
    Drop,
    /// Carry the request out, then close the connection without answering.
    AfterCommit,
}

/// One fault rule, as posted to `/_sim/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<u64>,
    /// Matching requests still to hit; `None` (and no probability) hits every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Share (0..1) of matching requests to hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Only requests to this endpoint (`service/tickets`, `service/tickets/notes`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose path contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Seed of the probability draws (default fixed, so runs repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultRule {
    /// Reject rules that cannot work, with a reason.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("probability must be between 0 and 1".into());
        }
        if self.count == Some(0) {
            return Err("count must be at least 1 (omit it to hit every request)".into());
        }
        if matches!(self.kind, FaultKind::Status | FaultKind::Html) {
            let s = self.status.unwrap_or(500);
            if !(400..=599).contains(&s) {
                return Err(format!("status {s} is not an error status (400..599)"));
            }
        }
        if let Some(m) = &self.method
            && Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_err()
        {
            return Err(format!("'{m}' is not an HTTP method"));
        }
        Ok(())
    }
}

/// The active rules.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

/// xorshift64*: enough for repeatable draws.
fn draw(state: &mut u64) -> f64 {
    if *state == 0 {
        *state = 0x2545_F491_4F6C_DD1D;
    }
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    pub fn list(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first rule that hits this request, consuming one of its hits.
    pub fn take(&self, method: &Method, endpoint: &str, path: &str) -> Option<FaultRule> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let lower = path.to_ascii_lowercase();
        let idx = rules.iter_mut().position(|r| {
            let hit = r
                .entity
                .as_ref()
                .is_none_or(|e| e.trim_matches('/').eq_ignore_ascii_case(endpoint))
                && r.method
                    .as_ref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
                && r.path_contains
                    .as_ref()
                    .is_none_or(|p| lower.contains(&p.to_ascii_lowercase()));
            if !hit {
                return false;
            }
            match r.probability {
                Some(p) => draw(r.seed.get_or_insert(0x00C0_FFEE_5EED)) < p,
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
}

fn with_retry_after(mut r: Response, rule: &FaultRule) -> Response {
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
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
