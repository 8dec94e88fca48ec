//! Autotask's two limits: requests per rolling hour for the whole database (with latency that
//! grows with usage), and requests in flight per (integration code, entity).
//!
//! The rolling hour is kept as per-second buckets, so memory stays bounded however high the
//! configured limit (benchmarks run with millions an hour).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests in the rolling 60 minutes.
pub struct Window {
    start: Instant,
    /// (second since start, requests in it)
    buckets: VecDeque<(u64, u32)>,
    total: u64,
}

const HOUR_SECS: u64 = 3600;

impl Window {
    pub fn new() -> Window {
        Window {
            start: Instant::now(),
            buckets: VecDeque::new(),
            total: 0,
        }
    }

    fn prune(&mut self) -> u64 {
        let now = self.start.elapsed().as_secs();
        while let Some(&(sec, n)) = self.buckets.front() {
            if sec + HOUR_SECS > now {
                break;
            }
            self.total -= u64::from(n);
            self.buckets.pop_front();
        }
        now
    }

    /// Requests counted in the last hour.
    pub fn count(&mut self) -> u64 {
        self.prune();
        self.total
    }

    /// Count a request unless the limit is reached; the usage before it, or `Err(usage)`.
    pub fn admit(&mut self, limit: u64) -> Result<u64, u64> {
        let now = self.prune();
        if self.total >= limit {
            return Err(self.total);
        }
        let used = self.total;
        match self.buckets.back_mut() {
            Some((sec, n)) if *sec == now => *n += 1,
            _ => self.buckets.push_back((now, 1)),
        }
        self.total += 1;
        Ok(used)
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
        self.total = 0;
    }
}

/// The latency Autotask adds as usage of the hourly threshold grows: none below 50%,
/// about half a second from 50%, about a second from 75%.
pub fn tier_latency(used: u64, limit: u64) -> Duration {
    if used * 4 >= limit * 3 {
        Duration::from_millis(1000)
    } else if used * 2 >= limit {
        Duration::from_millis(500)
    } else {
        Duration::ZERO
    }
}

/// Requests in flight per (integration code, entity).
#[derive(Default)]
pub struct Threads {
    in_flight: Mutex<BTreeMap<(String, String), u32>>,
}

impl Threads {
    /// Take a slot, or `None` when `limit` are already in flight.
    pub fn acquire(self: &Arc<Self>, code: &str, entity: &str, limit: u32) -> Option<ThreadSlot> {
        let key = (code.to_string(), entity.to_string());
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.clone()).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ThreadSlot {
            threads: self.clone(),
            key,
        })
    }

    /// Requests in flight, per entity (over all integration codes).
    pub fn snapshot(&self) -> BTreeMap<String, u32> {
        let m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = BTreeMap::new();
        for ((_, e), n) in m.iter().filter(|(_, n)| **n > 0) {
            *out.entry(e.clone()).or_default() += n;
        }
        out
    }
}

/// A request's slot; freed when the request ends, however it ends (even a dropped connection).
pub struct ThreadSlot {
    threads: Arc<Threads>,
    key: (String, String),
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        let mut m = self
            .threads
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_tiers() {
        let mut w = Window::new();
        assert_eq!(w.admit(2), Ok(0));
        assert_eq!(w.admit(2), Ok(1));
        assert_eq!(w.admit(2), Err(2));
        assert_eq!(w.count(), 2);
        assert_eq!(tier_latency(49, 100), Duration::ZERO);
        assert_eq!(tier_latency(50, 100), Duration::from_millis(500));
        assert_eq!(tier_latency(75, 100), Duration::from_millis(1000));
    }

    #[test]
    fn thread_slots_free_on_drop() {
        let t = Arc::new(Threads::default());
        let a = t.acquire("c", "Tickets", 1);
        assert!(a.is_some());
        assert!(t.acquire("c", "Tickets", 1).is_none());
        assert!(t.acquire("other", "Tickets", 1).is_some());
        drop(a);
        assert!(t.acquire("c", "Tickets", 1).is_some());
    }
}
