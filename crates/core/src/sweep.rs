//! How many ticket-state reads a sweep may spend.
//!
//! Where a PSA cannot tell us that a ticket closed, the sweeper reads open tickets' states.
//! Those reads come out of the same request budget as deliveries, and some PSAs read one
//! ticket per request (Kaseya BMS), so a sweep that read every open ticket every interval
//! would spend more than the PSA allows as soon as enough tickets are open. A sweep instead
//! earns credit at a stated share of the connection's budget and spends only whole requests
//! of it; the stalest tickets are read first, the rest wait for the next sweep.

use std::time::Duration;

/// Credit a connection's sweeps have earned and not spent, in requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SweepAllowance {
    credit: f64,
}

impl SweepAllowance {
    /// Earn credit for `elapsed` at `share` (0–1) of `per_hour` requests, keeping at most
    /// what `burst` of time earns (at least one request), so an idle stretch never turns into
    /// a spike.
    pub fn earn(&mut self, elapsed: Duration, per_hour: u32, share: f64, burst: Duration) {
        let rate = f64::from(per_hour) * share.clamp(0.0, 1.0) / 3600.0;
        let cap = (rate * burst.as_secs_f64()).max(1.0);
        self.credit = (self.credit + rate * elapsed.as_secs_f64()).min(cap);
    }

    /// Whole requests that may be spent now.
    pub fn requests(&self) -> usize {
        self.credit.max(0.0).floor() as usize
    }

    /// How many tickets may be read now, at `per_request` tickets a request, out of `open`.
    pub fn tickets(&self, per_request: usize, open: usize) -> usize {
        (self.requests().saturating_mul(per_request.max(1))).min(open)
    }

    /// Spend `requests` (what the reads cost, counted).
    pub fn spend(&mut self, requests: usize) {
        self.credit -= requests as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_ticket_a_request_at_a_fifth_of_1200_an_hour() {
        // Kaseya BMS: 1,200 an hour is our share; a fifth is 240 an hour, 4 a minute.
        let mut a = SweepAllowance::default();
        let mut spent = 0;
        for _ in 0..180 {
            // an hour of 20-second sweeps, 15 open tickets each time
            a.earn(Duration::from_secs(20), 1200, 0.2, Duration::from_secs(40));
            let n = a.tickets(1, 15);
            a.spend(n);
            spent += n;
        }
        assert!((235..=241).contains(&spent), "{spent} requests in an hour");
    }

    #[test]
    fn batched_reads_cover_many_tickets_with_few_requests() {
        let mut a = SweepAllowance::default();
        a.earn(Duration::from_secs(20), 5000, 0.2, Duration::from_secs(40));
        assert_eq!(a.requests(), 5);
        assert_eq!(a.tickets(500, 1800), 1800);
        a.spend(1800usize.div_ceil(500));
        assert_eq!(a.requests(), 1);
    }

    proptest! {
        #[test]
        fn never_spends_more_than_the_share_plus_one_burst(
            per_hour in 1u32..20_000,
            share in 0.01f64..1.0,
            steps in proptest::collection::vec((0u64..120_000, 0usize..2_000, 1usize..500), 1..200),
        ) {
            let burst = Duration::from_secs(40);
            let mut a = SweepAllowance::default();
            let mut elapsed = 0f64;
            let mut requests = 0usize;
            for (ms, open, per_request) in steps {
                a.earn(Duration::from_millis(ms), per_hour, share, burst);
                elapsed += ms as f64 / 1000.0;
                let n = a.tickets(per_request, open);
                a.spend(n.div_ceil(per_request));
                requests += n.div_ceil(per_request);
                prop_assert!(a.requests() < usize::MAX);
            }
            let rate = f64::from(per_hour) * share / 3600.0;
            let allowed = rate * elapsed + (rate * burst.as_secs_f64()).max(1.0);
            prop_assert!(requests as f64 <= allowed + 1e-6, "{requests} > {allowed}");
        }
    }
}
