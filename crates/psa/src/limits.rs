//! Staying inside a PSA's limits before it has to refuse us.
//!
//! - [`TokenBucket`]: our share of the PSA's hourly request budget (Autotask: 10,000 an hour per
//!   database, shared with every other integration of the MSP). A small burst is allowed; past
//!   it, requests wait for tokens instead of spending the MSP's budget in a spike.
//! - [`EndpointSlots`]: the PSA's concurrency limit per endpoint (Autotask: three requests in
//!   flight per integration code and entity); a fourth waits instead of drawing a 429.
//! - [`SharedBudget`]: the same share held by a whole cluster. Each node's bucket paces that
//!   node; the shared budget caps what all nodes together send, by reserving small chunks of
//!   each window's allowance from a [`BudgetLedger`] (the database when several nodes share
//!   one), so most requests cost no round trip to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A token bucket refilled continuously.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket for `per_hour` requests an hour, with a burst of 2% of it (at least 10).
    pub fn per_hour(per_hour: u32) -> TokenBucket {
        let per_hour = f64::from(per_hour.max(1));
        let capacity = (per_hour * 0.02).max(10.0);
        TokenBucket {
            capacity,
            per_second: per_hour / 3600.0,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// How long until a token is available (zero when one is).
    pub fn ready_in(&self) -> Duration {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = (s.0 + s.1.elapsed().as_secs_f64() * self.per_second).min(self.capacity);
        if tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / self.per_second)
        }
    }

    /// Take a token, waiting for one if the bucket is empty.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let elapsed = now.duration_since(s.1).as_secs_f64();
                s.0 = (s.0 + elapsed * self.per_second).min(self.capacity);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A fixed number of in-flight requests per endpoint.
#[derive(Debug)]
pub struct EndpointSlots {
    per_endpoint: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl EndpointSlots {
    pub fn new(per_endpoint: u32) -> EndpointSlots {
        EndpointSlots {
            per_endpoint: per_endpoint.max(1) as usize,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for a slot of `endpoint`; it is given back when the permit drops.
    pub async fn acquire(&self, endpoint: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(endpoint.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
                .clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        match sem.acquire_owned().await {
            Ok(p) => p,
            Err(_) => unreachable!("endpoint semaphores are never closed"),
        }
    }
}

/// Where the nodes of a cluster count a connection's requests per window.
#[async_trait::async_trait]
pub trait BudgetLedger: Send + Sync + std::fmt::Debug {
    /// Reserve up to `want` requests of `limit` in the window of `connection_id` and `scope`
    /// starting at `window_start` (milliseconds since the epoch, UTC). Returns how many were
    /// granted, 0 when the window is spent. Nothing is ever given back: what a node reserved
    /// and did not use is lost when the window ends.
    async fn reserve(
        &self,
        connection_id: i64,
        scope: &str,
        window_start: i64,
        limit: u32,
        want: u32,
    ) -> Result<u32, String>;
}

/// A ledger for one node (SQLite, embedding, tests): counts in memory.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    used: Mutex<HashMap<(i64, String), (i64, u32)>>,
}

#[async_trait::async_trait]
impl BudgetLedger for MemoryLedger {
    async fn reserve(
        &self,
        connection_id: i64,
        scope: &str,
        window_start: i64,
        limit: u32,
        want: u32,
    ) -> Result<u32, String> {
        let mut m = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let e = m
            .entry((connection_id, scope.to_string()))
            .or_insert((window_start, 0));
        if e.0 != window_start {
            *e = (window_start, 0);
        }
        let granted = want.min(limit.saturating_sub(e.1));
        e.1 += granted;
        Ok(granted)
    }
}

/// How many slices a PSA's window is cut into for the ledger.
const SLICES: u32 = 10;

/// The cluster-wide share of one connection, in front of a ledger.
///
/// A PSA limit of `limit` per `window` may be a rolling window, so fixed windows of the full
/// length could let 2 × `limit` through across a boundary. The ledger counts slices of
/// `window / 10` that each allow `limit / 11`: any rolling window touches at most 11 slices,
/// so the cluster never sends more than `limit` in one, at the price of a tenth of the share.
/// Nodes reserve chunks of a slice (about a tenth of it), so a node that reserved and then
/// went idle strands at most one chunk per slice. Nodes' clocks are assumed to agree
/// within a second or so (NTP), as slice starts are taken from the wall clock.
#[derive(Debug)]
pub struct SharedBudget {
    ledger: Arc<dyn BudgetLedger>,
    connection_id: i64,
    /// Per scope: (slice start, requests reserved and not yet sent).
    held: tokio::sync::Mutex<HashMap<String, (i64, u32)>>,
    /// When the current slice of every scope was found spent: no request before its end.
    spent_until: Mutex<Option<(i64, String)>>,
}

impl SharedBudget {
    pub fn new(ledger: Arc<dyn BudgetLedger>, connection_id: i64) -> SharedBudget {
        SharedBudget {
            ledger,
            connection_id,
            held: tokio::sync::Mutex::new(HashMap::new()),
            spent_until: Mutex::new(None),
        }
    }

    /// The slice length and per-slice allowance for `limit` requests per `window`.
    pub fn slice(limit: u32, window: Duration) -> (i64, u32) {
        let ms = (window.as_millis() as i64 / i64::from(SLICES)).max(1);
        (ms, (limit / (SLICES + 1)).max(1))
    }

    /// Take one request of `limit` per `window` for `scope` (the connection as a whole, or
    /// one endpoint where the PSA counts per endpoint), waiting for the next slice when this
    /// one is spent across the cluster. A ledger that cannot be reached does not stop
    /// delivery: the node falls back to its own bucket for that request (logged).
    pub async fn acquire(&self, scope: &str, limit: u32, window: Duration) {
        let (slice_ms, per_slice) = Self::slice(limit, window);
        let chunk = (per_slice / 10).clamp(1, 50);
        loop {
            let now = wall_ms();
            let start = now - now.rem_euclid(slice_ms);
            let mut held = self.held.lock().await;
            let h = held.entry(scope.to_string()).or_insert((start, 0));
            if h.0 != start {
                *h = (start, 0);
            }
            if h.1 > 0 {
                h.1 -= 1;
                return;
            }
            match self
                .ledger
                .reserve(self.connection_id, scope, start, per_slice, chunk)
                .await
            {
                Ok(0) => {
                    drop(held);
                    let wait = (start + slice_ms - wall_ms()).max(1);
                    *self.spent_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((start + slice_ms, scope.to_string()));
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                Ok(n) => {
                    h.1 = n - 1;
                    return;
                }
                Err(e) => {
                    tracing::warn!(connection = self.connection_id, error = %e,
                        "shared request budget unreachable; this request counts on the node's own budget only");
                    return;
                }
            }
        }
    }

    /// How long until the cluster's share allows a request again (zero unless a slice was
    /// found spent and has not ended).
    pub fn ready_in(&self) -> Duration {
        let s = self.spent_until.lock().unwrap_or_else(|p| p.into_inner());
        match &*s {
            Some((until, _)) => Duration::from_millis((*until - wall_ms()).max(0) as u64),
            None => Duration::ZERO,
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nodes_sharing_a_ledger_stay_inside_one_slice() {
        let ledger: Arc<dyn BudgetLedger> = Arc::new(MemoryLedger::default());
        // 1,100 per 100 s: slices of 10 s allowing 100 each.
        let window = Duration::from_secs(100);
        assert_eq!(SharedBudget::slice(1100, window), (10_000, 100));
        let nodes: Vec<_> = (0..3)
            .map(|_| Arc::new(SharedBudget::new(ledger.clone(), 7)))
            .collect();
        let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for n in &nodes {
            for _ in 0..4 {
                let (n, sent) = (n.clone(), sent.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        n.acquire("", 1100, window).await;
                        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = sent.load(std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            t.abort();
        }
        // Unless the test straddled a slice boundary, exactly the slice's 100 went out.
        assert!(during == 100 || during == 200, "{during}");
        assert!(nodes.iter().any(|n| !n.ready_in().is_zero()));
        // Another connection has its own share.
        assert_eq!(ledger.reserve(8, "", 0, 5, 9).await.unwrap(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_paces() {
        let b = TokenBucket::per_hour(3600); // one a second, burst 72
        let start = Instant::now();
        for _ in 0..72 {
            b.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the burst is free"
        );
        b.acquire().await;
        b.acquire().await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1900) && waited <= Duration::from_millis(2100),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn slots_bound_concurrency_per_endpoint() {
        let s = EndpointSlots::new(3);
        let a = s.acquire("Tickets").await;
        let _b = s.acquire("tickets").await;
        let _c = s.acquire("Tickets").await;
        let other = tokio::time::timeout(Duration::from_millis(50), s.acquire("Contacts")).await;
        assert!(other.is_ok(), "another endpoint has its own slots");
        let fourth = tokio::time::timeout(Duration::from_millis(50), s.acquire("Tickets")).await;
        assert!(fourth.is_err(), "a fourth request on one endpoint waits");
        drop(a);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.acquire("Tickets"))
                .await
                .is_ok()
        );
    }
}
