//! The hourly quota: BMS allows 1500 calls an hour per endpoint. Each endpoint (method and path
//! template) has a rolling 60-minute window; a call past the limit is refused with 429, the
//! failure envelope and `Retry-After` (seconds until the window's oldest call ages out).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Quota {
    windows: HashMap<String, VecDeque<Instant>>,
}

impl Quota {
    /// Count a call to `endpoint`, or say how long until one is allowed.
    pub fn admit(&mut self, endpoint: &str, limit: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let w = self.windows.entry(endpoint.to_string()).or_default();
        while w.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            w.pop_front();
        }
        if w.len() >= limit.max(1) as usize {
            let oldest = w.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        w.push_back(now);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_has_its_own_window() {
        let mut q = Quota::default();
        assert!(q.admit("GET a", 2).is_ok());
        assert!(q.admit("GET a", 2).is_ok());
        let wait = q.admit("GET a", 2).unwrap_err();
        assert!(wait > Duration::from_secs(3500));
        assert!(q.admit("GET b", 2).is_ok());
    }
}
