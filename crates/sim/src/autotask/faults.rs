//! Faults on demand: rules that make matching API requests fail the ways a real tenant and
//! the network between fail.
//!
//! A rule matches requests by entity, method and path fragment, and hits a number of them
//! (`count`) or a share of them (`probability`, drawn from a seeded generator so runs repeat).
//! Rules apply to the Autotask API only, never to the `/_sim/` control surface.

use std::sync::Mutex;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::errors::{errors_body, iis_page};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (429/500/502/503…) with an Autotask-style errors body and an optional
    /// `Retry-After`.
    Status,
    /// Answer `status` with an IIS-style HTML error page.
    Html,
    /// Wait `delay_ms`, then answer normally (holding the request's thread slot).
    Delay,
    /// Hold the request `hold_ms` (default 120 s) without answering, then close the connection.
    Timeout,
    /// Close the TCP connection without answering.
    Drop,
    /// Carry the request out, then close the connection without answering: "the PSA made it,
    /// the client never heard".
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
    /// Only requests to this entity (the URL's entity or, on child routes, the child's).
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

fn next_random(state: &mut u64) -> f64 {
    // xorshift64*: enough for repeatable fault draws.
    if *state == 0 {
        *state = 0x9E37_79B9_7F4A_7C15;
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
    pub fn take(&self, method: &Method, entities: &[&str], path: &str) -> Option<FaultRule> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let lower = path.to_ascii_lowercase();
        let idx = rules.iter_mut().position(|r| {
            let matches = r
                .entity
                .as_ref()
                .is_none_or(|e| entities.iter().any(|x| x.eq_ignore_ascii_case(e)))
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
                    let seed = r.seed.get_or_insert(0x005E_ED0F_FA17);
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
}

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
    let mut r = errors_body(status, &[msg]);
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
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
    let mut r = iis_page(status, &title);
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}
