//! Faults on demand, with the same rule JSON as the Autotask simulator: rules match requests
//! by resource, method and path fragment, and hit a number (`count`) or a share
//! (`probability`, from a seeded generator so runs repeat) of them. Never applied to `/_sim/`.

use std::sync::Mutex;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (default 500) with a Halo-style error body and optional `Retry-After`.
    Status,
    /// Answer `status` with an HTML error page (a proxy or IIS in front of Halo).
    Html,
    /// Wait `delay_ms` (default 1000), then answer normally.
    Delay,
    /// Hold the request `hold_ms` (default 120 s) unanswered, then close the connection.
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
    /// Only requests to this resource (`Tickets`, `Actions`, `token`, …; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose path contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
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

    /// The first rule that hits this request, consuming one of its hits.
    pub fn take(&self, method: &Method, resource: &str, path: &str) -> Option<FaultRule> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let lower = path.to_ascii_lowercase();
        let idx = rules.iter_mut().position(|r| {
            let matches = r
                .entity
                .as_ref()
                .is_none_or(|e| e.eq_ignore_ascii_case(resource))
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

/// The answer of a `status` or `html` fault.
pub fn answer(rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = if rule.kind == FaultKind::Html {
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
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}
