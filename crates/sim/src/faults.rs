//! Faults on demand, shared by every simulator so that `/_sim/faults` takes the same rule JSON
//! everywhere: rules that make matching API requests fail the ways a real tenant and the
//! network between fail.
//!
//! A rule matches requests by method, path fragment and `entity` (what `entity` names is the
//! simulator's business: Autotask's entity, Halo's resource, a Kaseya or ConnectWise endpoint),
//! and hits a number of them (`count`) or a share of them (`probability`, drawn from a seeded
//! generator so runs repeat). Rules never apply to the `/_sim/` control surface. How a
//! `status` or `html` fault answers is each vendor's own, and stays in its simulator.

use std::sync::Mutex;

use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (429/500/502/503…) with the vendor's error body and an optional
    /// `Retry-After`.
    Status,
    /// Answer `status` with an HTML error page (IIS, a proxy or a gateway in front of the API).
    Html,
    /// Wait `delay_ms`, then answer normally (holding the request's thread slot).
    Delay,
    /// Hold the request `hold_ms` (default 120 s) without answering, then close the connection.
    Timeout,
    /// Close the TCP connection without answering; nothing is carried out.
    Drop,
    /// Carry the request out, then close the connection without answering: "the PSA made it,
    /// the client never heard".
    AfterCommit,
    /// Answer `status` (default 200) with `body` as it is, as JSON: a malformed or unexpected
    /// answer (truncated, wrong types, missing fields), for checking that clients refuse it
    /// cleanly. Nothing is carried out.
    Body,
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
    /// Only requests to this entity, resource or endpoint, as the simulator names them.
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
    /// The answer's body of a `body` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The JSON names of [`FaultRule`]'s fields, for simulators that ignore any other.
const FIELDS: [&str; 12] = [
    "kind",
    "status",
    "retry_after_secs",
    "delay_ms",
    "hold_ms",
    "count",
    "probability",
    "entity",
    "method",
    "path_contains",
    "seed",
    "body",
];

impl FaultRule {
    /// Reject rules that cannot work, with a reason.
    pub fn check(&self) -> Result<(), String> {
        self.check_hitting("request")
    }

    /// [`FaultRule::check`], naming what a rule hits (`request`, `call`) in its reasons.
    pub(crate) fn check_hitting(&self, hit: &str) -> Result<(), String> {
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("probability must be between 0 and 1".into());
        }
        if self.count == Some(0) {
            return Err(format!(
                "count must be at least 1 (omit it to hit every {hit})"
            ));
        }
        if matches!(self.kind, FaultKind::Status | FaultKind::Html) {
            let s = self.status.unwrap_or(500);
            if !(400..=599).contains(&s) {
                return Err(format!("status {s} is not an error status (400..599)"));
            }
        }
        if self.kind == FaultKind::Body {
            let s = self.status.unwrap_or(200);
            if !(200..=599).contains(&s) {
                return Err(format!("status {s} is not an HTTP status (200..599)"));
            }
            if self.body.is_none() {
                return Err("a body fault needs \"body\"".into());
            }
        }
        if let Some(m) = &self.method
            && Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_err()
        {
            return Err(format!("'{m}' is not an HTTP method"));
        }
        Ok(())
    }

    /// A rule from JSON that may carry fields of its own, ignored (the Kaseya BMS simulator
    /// has always taken such rules).
    pub(crate) fn from_slice_ignoring_unknown(body: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body).or_else(|strict| {
            let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_slice(body) else {
                return Err(strict);
            };
            let before = fields.len();
            fields.retain(|k, _| FIELDS.contains(&k.as_str()));
            if fields.len() == before {
                return Err(strict);
            }
            serde_json::from_value(serde_json::Value::Object(fields))
        })
    }
}

/// Where a rule's probability draws start: the seed of rules without one, and the state that
/// replaces a zero seed (xorshift stays at zero forever).
#[derive(Debug, Clone, Copy)]
pub struct DrawSeeds {
    pub default_seed: u64,
    pub zero_state: u64,
}

impl Default for DrawSeeds {
    fn default() -> Self {
        DrawSeeds {
            default_seed: 0x005E_ED0F_FA17,
            zero_state: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// The active rules.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    seeds: DrawSeeds,
}

/// xorshift64*: enough for repeatable fault draws, without a dependency.
fn next_random(state: &mut u64, zero_state: u64) -> f64 {
    if *state == 0 {
        *state = zero_state;
    }
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    /// No rules, with draws starting from `seeds`.
    pub fn with_seeds(seeds: DrawSeeds) -> Self {
        Faults {
            rules: Mutex::default(),
            seeds,
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first rule that hits this request, consuming one of its hits. `entity_matches`
    /// says whether a rule's `entity` names this request, in the simulator's own terms.
    pub fn take(
        &self,
        method: &Method,
        path: &str,
        entity_matches: impl Fn(&str) -> bool,
    ) -> Option<FaultRule> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let lower = path.to_ascii_lowercase();
        let seeds = self.seeds;
        let idx = rules.iter_mut().position(|r| {
            let matches = r.entity.as_deref().is_none_or(&entity_matches)
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
                    let seed = r.seed.get_or_insert(seeds.default_seed);
                    next_random(seed, seeds.zero_state) < p
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

/// The answer of a `body` fault: its status and its body, unchanged, as JSON.
pub fn body_answer(rule: &FaultRule) -> Response {
    let status = axum::http::StatusCode::from_u16(rule.status.unwrap_or(200))
        .unwrap_or(axum::http::StatusCode::OK);
    let mut r = Response::new(axum::body::Body::from(
        rule.body.clone().unwrap_or_default(),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    with_retry_after(r, rule)
}

/// `r` with the rule's `Retry-After`, if it has one.
pub fn with_retry_after(mut r: Response, rule: &FaultRule) -> Response {
    if let Some(secs) = rule.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_or_ignored_as_asked() {
        let body = br#"{"kind":"status","status":503,"entity":"tickets","note":"mine"}"#;
        let strict = serde_json::from_slice::<FaultRule>(body).unwrap_err();
        assert!(
            strict.to_string().contains("unknown field `note`"),
            "{strict}"
        );
        let rule = FaultRule::from_slice_ignoring_unknown(body).unwrap();
        assert_eq!(
            (rule.status, rule.entity.as_deref()),
            (Some(503), Some("tickets"))
        );
        let wrong = br#"{"kind":"status","status":"x"}"#;
        assert!(FaultRule::from_slice_ignoring_unknown(wrong).is_err());
    }

    #[test]
    fn rules_match_by_entity_method_and_path_and_run_out() {
        let faults = Faults::default();
        let rule: FaultRule = serde_json::from_str(
            r#"{"kind":"drop","count":1,"entity":"Tickets","method":"post","path_contains":"/V1"}"#,
        )
        .unwrap();
        faults.add(rule);
        let tickets = |e: &str| e.eq_ignore_ascii_case("tickets");
        assert!(faults.take(&Method::GET, "/v1/tickets", tickets).is_none());
        assert!(faults.take(&Method::POST, "/v2/tickets", tickets).is_none());
        assert!(
            faults
                .take(&Method::POST, "/v1/tickets", |_| false)
                .is_none()
        );
        assert!(faults.take(&Method::POST, "/v1/tickets", tickets).is_some());
        assert!(faults.list().is_empty());
    }
}
