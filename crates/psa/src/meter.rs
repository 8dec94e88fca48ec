//! Counting PSA requests, the unit of the product's economy.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    /// Requests made by the current delivery attempt (see [`count_calls`]).
    static ATTEMPT_CALLS: Cell<u64>;
}

/// Counts the HTTP requests a connector sent (whatever their outcome). Cheap to clone; clones
/// share the count.
#[derive(Debug, Clone, Default)]
pub struct CallMeter(Arc<AtomicU64>);

impl CallMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one request: in the connector's total, and in the attempt being counted, if any.
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        let _ = ATTEMPT_CALLS.try_with(|c| c.set(c.get() + 1));
    }

    /// Requests sent so far.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Run `f` and count the PSA requests it makes itself (not those of concurrent tasks sharing
/// the connector), for the delivery log.
pub async fn count_calls<F: Future>(f: F) -> (F::Output, u64) {
    ATTEMPT_CALLS
        .scope(Cell::new(0), async {
            let out = f.await;
            (out, ATTEMPT_CALLS.with(Cell::get))
        })
        .await
}
