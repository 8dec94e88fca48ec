//! Per-connection circuit breakers and pauses.
//!
//! A connection whose PSA keeps failing, or that told us to wait (429 with Retry-After), is
//! paused: the dispatcher does not claim its deliveries until the pause ends, so one broken
//! PSA never ties up workers that other partners' PSAs could use. A pause is per node and in
//! memory, and on PostgreSQL also written to `connection_pauses` ([`share_pause`]) so that no
//! node of the cluster claims the connection's deliveries before it ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
const TRIP_AFTER: u32 = 5;
/// How long an opened breaker stays open (doubling while failures continue, capped).
const OPEN_FOR: Duration = Duration::from_secs(15);
const OPEN_AT_MOST: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Failures since the last success or the last time the breaker opened.
    failures: u32,
    /// Times the breaker opened without a success in between (its next opening is longer).
    trips: u32,
    paused_until: Option<Instant>,
}

/// Breakers of every connection of this node.
#[derive(Debug, Default)]
pub struct Breakers {
    states: Mutex<HashMap<i64, State>>,
}

impl Breakers {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<i64, State>) -> R) -> R {
        f(&mut self.states.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A call to the PSA succeeded: close the breaker.
    pub fn success(&self, connection: i64) {
        self.with(|m| {
            m.remove(&connection);
        });
    }

    /// A retryable failure. `retry_after` pauses the connection at least that long.
    ///
    /// Failures of requests that were already in flight when the breaker opened do not count
    /// again: many deliveries failing in one burst are one outage, not many.
    pub fn failure(&self, connection: i64, retry_after: Option<Duration>) {
        let now = Instant::now();
        self.with(|m| {
            let s = m.entry(connection).or_default();
            let open = s.paused_until.is_some_and(|u| u > now);
            if !open {
                s.failures += 1;
            }
            let mut until = retry_after.map(|d| now + d);
            if !open && s.failures >= TRIP_AFTER {
                let pause = (OPEN_FOR * 2u32.pow(s.trips.min(5))).min(OPEN_AT_MOST);
                s.trips += 1;
                s.failures = 0;
                until = Some(until.map_or(now + pause, |u| u.max(now + pause)));
            }
            if let Some(u) = until {
                s.paused_until = Some(s.paused_until.map_or(u, |p| p.max(u)));
            }
        });
    }

    /// Connections not to claim for now.
    pub fn paused(&self) -> Vec<i64> {
        let now = Instant::now();
        self.with(|m| {
            m.iter()
                .filter(|(_, s)| s.paused_until.is_some_and(|u| u > now))
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// Is this connection paused, and until when (for the API)?
    pub fn paused_for(&self, connection: i64) -> Option<Duration> {
        let now = Instant::now();
        self.with(|m| {
            m.get(&connection)
                .and_then(|s| s.paused_until)
                .filter(|u| *u > now)
                .map(|u| u - now)
        })
    }
}

/// After a failure of `connection`: if its breaker is paused, tell every node (PostgreSQL;
/// a SQLite installation is one node and its in-memory breaker is the whole truth).
pub async fn share_pause(engine: &crate::Engine, connection: i64) {
    if engine.store.engine() != psabridge_store::Engine::Postgres {
        return;
    }
    let Some(left) = engine.breakers.paused_for(connection) else {
        return;
    };
    let until = crate::now_ms() + left.as_millis() as i64;
    if let Err(e) = engine.store.pause_connection(connection, until).await {
        tracing::warn!(connection, error = %e, "could not share a pause with the other nodes");
    }
}

/// Connections another node paused (PostgreSQL), to hold back beside this node's own.
pub async fn shared_pauses(engine: &crate::Engine) -> Vec<i64> {
    if engine.store.engine() != psabridge_store::Engine::Postgres {
        return Vec::new();
    }
    engine
        .store
        .paused_connections(crate::now_ms())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the cluster's pauses");
            Vec::new()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_repeated_failures_and_closes_on_success() {
        let b = Breakers::default();
        for _ in 0..TRIP_AFTER - 1 {
            b.failure(1, None);
        }
        assert!(b.paused().is_empty());
        b.failure(1, None);
        assert_eq!(b.paused(), vec![1]);
        b.success(1);
        assert!(b.paused().is_empty());
    }

    #[test]
    fn a_burst_of_failures_opens_once_and_escalates_only_after_reopening() {
        let b = Breakers::default();
        for _ in 0..50 {
            b.failure(4, None);
        }
        let first = b.paused_for(4).unwrap();
        assert!(first <= OPEN_FOR, "one burst is one outage: {first:?}");
    }

    #[test]
    fn retry_after_pauses_at_once() {
        let b = Breakers::default();
        b.failure(2, Some(Duration::from_secs(30)));
        assert_eq!(b.paused(), vec![2]);
        assert!(b.paused_for(2).unwrap() > Duration::from_secs(25));
        b.failure(3, Some(Duration::ZERO));
        assert!(!b.paused().contains(&3));
    }
}
