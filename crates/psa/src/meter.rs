//! Counting PSA requests, the unit of the product's economy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the HTTP requests a connector sent (whatever their outcome). Cheap to clone; clones
/// share the count.
#[derive(Debug, Clone, Default)]
pub struct CallMeter(Arc<AtomicU64>);

impl CallMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one request.
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent so far.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
