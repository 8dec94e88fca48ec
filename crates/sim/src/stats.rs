//! Request counts for `/_sim/stats`, shared by the simulators that count per endpoint and
//! per outcome (each names the outcome key of its stats itself).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// What has been counted.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub requests: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    /// Per outcome: a status code, or what a connection fault did.
    pub by_outcome: BTreeMap<String, u64>,
}

/// Requests served so far.
#[derive(Default)]
pub struct RequestCounts(Mutex<Counts>);

impl RequestCounts {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a request to `endpoint`, and its outcome when the simulator counts outcomes.
    pub fn record(&self, endpoint: &str, outcome: Option<&str>) {
        let mut c = self.lock();
        c.requests += 1;
        *c.by_endpoint.entry(endpoint.to_string()).or_default() += 1;
        if let Some(outcome) = outcome {
            *c.by_outcome.entry(outcome.to_string()).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Counts {
        self.lock().clone()
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub fn clear(&self) {
        *self.lock() = Counts::default();
    }
}
