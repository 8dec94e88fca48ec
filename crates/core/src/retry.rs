//! When a failed delivery is tried again.
//!
//! Exponential backoff with jitter, never sooner than the PSA's `Retry-After`, capped. The
//! jitter is an input (a number in `[0, 1)`) so the arithmetic is deterministic under test.

use std::time::Duration;

/// Backoff parameters; the defaults suit a PSA that is down for minutes to hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// After this many failed attempts the delivery is dead (retryable by hand).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failed_attempts + 1`. `jitter` in `[0, 1)` spreads retries
    /// over the upper half of the window so that a fleet of deliveries does not return at once.
    pub fn delay(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(30);
        let window = self.base.saturating_mul(1u32 << exp.min(20)).min(self.cap);
        let jitter = jitter.clamp(0.0, 1.0);
        let backoff = window.mul_f64(0.5 + 0.5 * jitter);
        match retry_after {
            Some(ra) => backoff.max(ra),
            None => backoff,
        }
    }

    /// Is a delivery that has failed `failed_attempts` times dead?
    pub fn is_exhausted(&self, failed_attempts: u32) -> bool {
        failed_attempts >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn grows_then_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, None, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(40, None, 1.0), p.cap);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(10, Some(Duration::from_secs(1)), 1.0),
            p.delay(10, None, 1.0)
        );
    }

    proptest! {
        #[test]
        fn delay_is_bounded_and_monotone_in_attempts(a in 1u32..60, j in 0.0f64..1.0, ra in proptest::option::of(0u64..3600)) {
            let p = RetryPolicy::default();
            let ra = ra.map(Duration::from_secs);
            let d = p.delay(a, ra, j);
            prop_assert!(d <= p.cap.max(ra.unwrap_or_default()));
            prop_assert!(d >= ra.unwrap_or_default());
            prop_assert!(p.delay(a + 1, None, j) >= p.delay(a, None, j));
        }
    }
}
