//! Staying inside a PSA's limits before it has to refuse us.
//!
//! - [`TokenBucket`]: our share of the PSA's hourly request budget (Autotask: 10,000 an hour per
//!   database, shared with every other integration of the MSP). A small burst is allowed; past
//!   it, requests wait for tokens instead of spending the MSP's budget in a spike.
//! - [`EndpointSlots`]: the PSA's concurrency limit per endpoint (Autotask: three requests in
//!   flight per integration code and entity); a fourth waits instead of drawing a 429.

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

#[cfg(test)]
mod tests {
    use super::*;

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
