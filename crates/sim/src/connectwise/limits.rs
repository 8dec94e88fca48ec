//! Throttling: a token bucket per company and client id. ConnectWise publishes no quota; it
//! answers 429 "request volume exceeds capacity limits" with a `Retry-After` in seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::RateLimit;

#[derive(Default)]
pub struct Buckets {
    state: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// Take a token from `key`'s bucket, or `Err(seconds until one is back)`.
    pub fn take(&self, key: &str, limit: &RateLimit) -> Result<(), u64> {
        let per_second = limit.per_second.max(0.001);
        let burst = f64::from(limit.burst.max(1));
        let mut map = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, at) = map.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / per_second).ceil() as u64).max(1))
        }
    }

    pub fn clear(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_a_wait() {
        let b = Buckets::default();
        let l = RateLimit {
            per_second: 0.5,
            burst: 3,
        };
        for _ in 0..3 {
            assert!(b.take("k", &l).is_ok());
        }
        assert_eq!(b.take("k", &l), Err(2));
        assert!(b.take("other", &l).is_ok(), "each key has its own bucket");
    }
}
