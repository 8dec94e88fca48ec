//! Counting PSA requests, the unit of the product's economy, and publishing them as metrics.
//!
//! Every request a connector sends goes through [`CallMeter::request`]: it is counted in the
//! connector's total (the economy figure), in the trailing hour (the budget an operator
//! graphs against the connector's limit), and in the `metrics` facade by connection, PSA kind,
//! endpoint template and status, with its latency. Labels are bounded: an endpoint is a
//! template (`GET service/tickets/{id}/notes`), never a ticket id.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

tokio::task_local! {
    /// Requests made by the current delivery attempt (see [`count_calls`]).
    static ATTEMPT_CALLS: Cell<u64>;
}

/// Requests by PSA endpoint and status (counter).
pub const REQUESTS: &str = "psabridge_psa_requests_total";
/// Latency of PSA requests, answered or not (histogram, seconds).
pub const REQUEST_SECONDS: &str = "psabridge_psa_request_duration_seconds";

/// Counts the HTTP requests a connector sent (whatever their outcome). Cheap to clone; clones
/// share the count.
#[derive(Debug, Clone, Default)]
pub struct CallMeter(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    total: AtomicU64,
    /// (connection id, PSA kind), set by whoever knows which connection this connector serves.
    labels: OnceLock<(String, String)>,
    /// Requests per minute over the trailing hour: (minute since the epoch, count).
    minutes: Mutex<VecDeque<(u64, u64)>>,
    /// The cluster's share of this connection's budget, when nodes share a ledger.
    shared: OnceLock<Arc<crate::limits::SharedBudget>>,
}

impl CallMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name the connection and PSA kind this meter's requests are published under. Only the
    /// first call counts (a connector serves one connection for its whole life).
    pub fn label(&self, connection_id: i64, kind: &str) {
        let _ = self
            .0
            .labels
            .set((connection_id.to_string(), kind.to_string()));
    }

    /// Count this connector's requests in `budget` too (set by whoever builds connectors for
    /// a cluster; only the first call counts).
    pub fn share_budget(&self, budget: Arc<crate::limits::SharedBudget>) {
        let _ = self.0.shared.set(budget);
    }

    /// Take one request of the cluster's share for `scope` (`limit` per `window`), if this
    /// connector has one; the connector's own bucket has already paced it.
    pub async fn admit(&self, scope: &str, limit: u32, window: std::time::Duration) {
        if let Some(b) = self.0.shared.get() {
            b.acquire(scope, limit, window).await;
        }
    }

    /// How long until the cluster's share allows a request again.
    pub fn shared_ready_in(&self) -> std::time::Duration {
        self.0
            .shared
            .get()
            .map(|b| b.ready_in())
            .unwrap_or_default()
    }

    /// The PSA kind this meter was labelled with.
    pub fn kind(&self) -> Option<String> {
        self.0.labels.get().map(|(_, k)| k.clone())
    }

    fn labels(&self) -> (String, String) {
        self.0
            .labels
            .get()
            .cloned()
            .unwrap_or_else(|| ("unsaved".to_string(), "unknown".to_string()))
    }

    /// Record one request: in the connector's total, and in the attempt being counted, if any.
    pub fn record(&self) {
        self.0.total.fetch_add(1, Ordering::Relaxed);
        let _ = ATTEMPT_CALLS.try_with(|c| c.set(c.get() + 1));
        let minute = minute_now();
        let mut m = self.0.minutes.lock().unwrap_or_else(|p| p.into_inner());
        match m.back_mut() {
            Some((at, n)) if *at == minute => *n += 1,
            _ => m.push_back((minute, 1)),
        }
        while m.front().is_some_and(|(at, _)| *at + 60 <= minute) {
            m.pop_front();
        }
    }

    /// Start one request to `path` (a path or URL; ids in it are replaced by `{id}`). The
    /// request is counted now; its status and latency are published when the returned
    /// guard is dropped.
    pub fn request(&self, method: &str, path: &str) -> Request<'_> {
        self.record();
        Request {
            meter: self,
            endpoint: endpoint_template(method, path),
            started: Instant::now(),
            status: "none",
            code: None,
        }
    }

    /// Requests sent so far.
    pub fn total(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }

    /// Requests sent in the trailing hour (by whole minutes).
    pub fn last_hour(&self) -> u64 {
        let minute = minute_now();
        let m = self.0.minutes.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|(at, _)| *at + 60 > minute)
            .map(|(_, n)| n)
            .sum()
    }
}

fn minute_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or_default()
}

/// One request in progress; see [`CallMeter::request`].
#[derive(Debug)]
pub struct Request<'a> {
    meter: &'a CallMeter,
    endpoint: String,
    started: Instant,
    status: &'static str,
    code: Option<u16>,
}

impl Request<'_> {
    /// The PSA answered with this HTTP status.
    pub fn answered(&mut self, status: u16) {
        self.code = Some(status);
    }

    /// The request got no answer.
    pub fn failed(&mut self, e: &reqwest::Error) {
        self.status = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "unreachable"
        } else {
            "lost"
        };
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        let (connection, kind) = self.meter.labels();
        let status = match self.code {
            Some(c) => c.to_string(),
            None => self.status.to_string(),
        };
        metrics::counter!(REQUESTS,
            "connection" => connection.clone(), "kind" => kind.clone(),
            "endpoint" => self.endpoint.clone(), "status" => status)
        .increment(1);
        metrics::histogram!(REQUEST_SECONDS,
            "connection" => connection, "kind" => kind, "endpoint" => std::mem::take(&mut self.endpoint))
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// `GET service/tickets/{id}/notes` from a method and a path or URL: the query string and
/// host dropped, and every segment that looks like an id (digits, or a long hex/uuid run)
/// replaced by `{id}`, so the label's values stay few whatever tickets are touched.
pub fn endpoint_template(method: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path,
    };
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if looks_like_id(s) { "{id}" } else { s })
        .collect();
    format!("{method} {}", segments.join("/"))
}

fn looks_like_id(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    (digits > 0 && s.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        || (s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        || s.len() > 40
}

/// Run `f` and count the PSA requests it makes itself (not those of concurrent tasks sharing
/// the connector), for the delivery log.
pub async fn count_calls<F: Future>(f: F) -> (F::Output, u64) {
    ATTEMPT_CALLS
        .scope(Cell::new(0), async {
            let out = f.await;
            (out, ATTEMPT_CALLS.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_templates_without_ids_or_hosts() {
        assert_eq!(
            endpoint_template("GET", "service/tickets/12345/notes?pageSize=5"),
            "GET service/tickets/{id}/notes"
        );
        assert_eq!(
            endpoint_template(
                "POST",
                "https://zone.example/atservicesrest/V1.0/Tickets/query"
            ),
            "POST atservicesrest/V1.0/Tickets/query"
        );
        assert_eq!(
            endpoint_template("GET", "api/Tickets/0b8e4a52-9c1d-4f7e-8a2b-3c4d5e6f7a8b"),
            "GET api/Tickets/{id}"
        );
        assert_eq!(endpoint_template("GET", "V1.0"), "GET V1.0");
    }

    #[test]
    fn the_trailing_hour_counts_every_request() {
        let m = CallMeter::new();
        for _ in 0..3 {
            drop(m.request("GET", "x"));
        }
        assert_eq!((m.total(), m.last_hour()), (3, 3));
    }
}
