//! The engine's metrics, through the `metrics` facade (the binary installs the Prometheus
//! recorder and serves it on its own listener). Labels are bounded: connection id, PSA kind,
//! outcome; never a ticket, event or group.
//!
//! Counters are recorded where things happen (deliveries by outcome here, PSA requests in
//! `psa::CallMeter`); gauges of the backlog are sampled from the store by [`sample`], a few
//! index reads, at most once per [`SAMPLE_EVERY`] however often they are scraped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Engine, now_ms};

/// Deliveries finished by outcome (counter): created, noted, closed, nothing, retry, dead, expired.
pub const DELIVERIES: &str = "psabridge_deliveries_total";
/// Deliveries pending, retrying or in flight (gauge).
pub const PENDING: &str = "psabridge_deliveries_pending";
/// Age of the oldest unfinished delivery (gauge, seconds; 0 without any).
pub const OLDEST_AGE: &str = "psabridge_deliveries_oldest_pending_age_seconds";
/// PSA requests in the trailing hour (gauge).
pub const BUDGET_USED: &str = "psabridge_psa_budget_used";
/// The connector's share of the PSA's hourly request limit (gauge).
pub const BUDGET_LIMIT: &str = "psabridge_psa_budget_limit";
/// 1 while the connection's breaker holds its deliveries back (gauge).
pub const BREAKER_OPEN: &str = "psabridge_breaker_open";
/// Events accepted but not yet routed (gauge).
pub const UNROUTED: &str = "psabridge_events_unrouted";

/// The shortest time between two samples of the store.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Count a finished delivery attempt of `connection` by its outcome.
pub(crate) fn delivery(engine: &Engine, connection: i64, outcome: &str) {
    let kind = engine.kind_of(connection);
    metrics::counter!(DELIVERIES,
        "connection" => connection.to_string(), "kind" => kind, "outcome" => outcome.to_string())
    .increment(1);
}

/// When the store was last sampled, so scrapes from several scrapers cost one sample.
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// Refresh the gauges from the store and this node's connectors and breakers, unless that was
/// done less than [`SAMPLE_EVERY`] ago.
pub async fn sample(engine: &Engine) {
    {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let now = now_ms();
    let backlog = match engine.store.backlog_by_connection().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "sampling the backlog for metrics failed");
            return;
        }
    };
    let mut kinds = HashMap::new();
    for b in &backlog {
        kinds.insert(b.connection_id, b.kind.clone());
        let labels = [
            ("connection", b.connection_id.to_string()),
            ("kind", b.kind.clone()),
        ];
        metrics::gauge!(PENDING, &labels).set(b.pending as f64);
        let age = b
            .oldest_created_at
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        metrics::gauge!(OLDEST_AGE, &labels).set(age);
        if b.connection_id != 0 {
            let open = engine.breakers.paused_for(b.connection_id).is_some();
            metrics::gauge!(BREAKER_OPEN, &labels).set(if open { 1.0 } else { 0.0 });
        }
    }
    for (id, used, limit, _) in engine.connectors.budgets() {
        let kind = kinds.get(&id).cloned().unwrap_or_else(|| "unknown".into());
        let labels = [("connection", id.to_string()), ("kind", kind)];
        metrics::gauge!(BUDGET_USED, &labels).set(used as f64);
        metrics::gauge!(BUDGET_LIMIT, &labels).set(f64::from(limit));
    }
    if let Ok(n) = engine.store.unrouted_count().await {
        metrics::gauge!(UNROUTED).set(n as f64);
    }
    *engine.kinds.lock().unwrap_or_else(|p| p.into_inner()) = kinds;
}
