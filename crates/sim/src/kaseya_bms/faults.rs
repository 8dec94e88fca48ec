//! Faults on demand, with the same control JSON as the Autotask simulator: rules that make
//! matching API calls fail the ways a tenant and the network between fail. A rule matches by
//! method, path fragment and endpoint, and hits `count` calls or a share of them
//! (`probability`, drawn from a seeded generator so that runs repeat). Never applied to
//! `/_sim/`.

use std::sync::Mutex;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::envelope::Fail;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (429, 500, 502, 503…) with the failure envelope and an optional
    /// `Retry-After`.
    Status,
    /// Answer `status` with an HTML error page (a gateway in front of the API).
    Html,
    /// Wait `delay_ms`, then carry the call out normally.
    Delay,
    /// Hold the call `hold_ms` (default 120 s) without answering, then close the connection.
    Timeout,
    /// Close the connection without answering; nothing is carried out.
    Drop,
    /// Carry the call out, then close the connection without answering.
    AfterCommit,
}

/// One fault rule, as posted to `/_sim/faults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Matching calls still to hit; `None` (and no probability) hits every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Share (0..1) of matching calls to hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only calls whose path contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only calls whose endpoint (`POST /v2/servicedesk/tickets/{id}/notes`) contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Seed of the probability draws.
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
            return Err("count must be at least 1 (omit it to hit every call)".into());
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

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

fn next_random(state: &mut u64) -> f64 {
    // xorshift64*: repeatable draws without a dependency.
    if *state == 0 {
        *state = 0x9E37_79B9_7F4A_7C15;
    }
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }

    pub fn list(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The first rule that hits this call, consuming one of its hits.
    pub fn take(&self, method: &Method, path: &str, endpoint: &str) -> Option<FaultRule> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let path = path.to_ascii_lowercase();
        let endpoint = endpoint.to_ascii_lowercase();
        let idx = rules.iter_mut().position(|r| {
            let matches = r
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
                && r.path_contains
                    .as_ref()
                    .is_none_or(|p| path.contains(&p.to_ascii_lowercase()))
                && r.entity
                    .as_ref()
                    .is_none_or(|e| endpoint.contains(&e.to_ascii_lowercase()));
            if !matches {
                return false;
            }
            match r.probability {
                Some(p) => next_random(r.seed.get_or_insert(0x005E_ED0F_FA17)) < p,
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
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"),
    )
        .into_response();
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}
