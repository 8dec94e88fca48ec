//! The dispatcher: claims due deliveries fairly across connections and hands them to workers.
//!
//! - **Fair.** Free slots are shared among connections (*lanes*; the email channel is lane 0)
//!   by `psabridge_core::fair::shares`, round-robin from a rotating start, each lane within its
//!   room: its concurrency cap (`EngineConfig::per_connection_concurrency`) minus what it has
//!   in flight, and none while the [`ClaimGate`] holds it (open breaker, spent budget). So a
//!   slow PSA or one partner's burst never takes every worker.
//! - **Asleep when idle.** With nothing to claim, the dispatcher sleeps until the soonest queue
//!   head is due (a retry's time or a lease's end), or until woken: by this node's commits (in
//!   memory) and, on PostgreSQL, by any node's (LISTEN/NOTIFY). It polls only while due work
//!   is held back by a gate, at `poll_interval`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psabridge_core::fair::Lane;
use psabridge_store::queues::ClaimTerms;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{Engine, now_ms};

/// What holds a connection's deliveries back before they are claimed. One node keeps this
/// in memory ([`LocalGate`]); a cluster may share it through the database.
pub trait ClaimGate: Send + Sync {
    /// Connections whose deliveries must not be claimed now.
    fn held(&self) -> Vec<i64>;
}

/// This node's breakers and its connectors' request budgets.
pub struct LocalGate {
    pub breakers: Arc<crate::breaker::Breakers>,
    pub connectors: crate::ConnectorRegistry,
}

impl ClaimGate for LocalGate {
    fn held(&self) -> Vec<i64> {
        // A budget spent for more than a moment holds the lane: its deliveries would only
        // wait, holding leases and workers.
        let mut held = self.breakers.paused();
        held.extend(self.connectors.waiting(Duration::from_secs(2)));
        held
    }
}

/// Deliveries in flight per lane on this node.
#[derive(Default)]
struct InFlight(Mutex<HashMap<i64, usize>>);

impl InFlight {
    fn count(&self, lane: i64) -> usize {
        self.lock().get(&lane).copied().unwrap_or(0)
    }
    fn add(&self, lane: i64) {
        *self.lock().entry(lane).or_default() += 1;
    }
    fn done(&self, lane: i64) {
        if let Some(n) = self.lock().get_mut(&lane) {
            *n = n.saturating_sub(1);
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Longest sleep with nothing queued at all (a safety net; commits wake us sooner).
const IDLE_AT_MOST: Duration = Duration::from_secs(60);

/// Longest sleep while every due head is in a lane at its cap.
const AT_CAP_SAFETY: Duration = Duration::from_secs(5);

/// Claim and deliver until shut down.
pub async fn run(engine: Engine, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(engine.config.concurrency));
    let cap = engine.config.lane_cap();
    let in_flight = Arc::new(InFlight::default());
    let tasks = tokio_util::task::TaskTracker::new();
    // Cancelled when the drain's time is up: deliveries still running give their claims back.
    let interrupt = CancellationToken::new();
    let mut round = 0usize;
    loop {
        let free = slots.available_permits();
        let mut claimed = 0;
        let mut held_back = false;
        if free > 0 {
            round += 1;
            match claim_round(&engine, &in_flight, cap, free, round).await {
                Ok((list, owner, held)) => {
                    held_back = held;
                    claimed = list.len();
                    for d in list {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let engine = engine.clone();
                        let owner = owner.clone();
                        let in_flight = in_flight.clone();
                        let interrupt = interrupt.clone();
                        in_flight.add(d.connection_id);
                        tasks.spawn(async move {
                            let lane = d.connection_id;
                            let id = d.id;
                            tokio::select! {
                                _ = crate::deliver::deliver_one(&engine, &owner, d) => {}
                                _ = interrupt.cancelled() => give_back(&engine, id, &owner).await,
                            }
                            in_flight.done(lane);
                            drop(permit);
                            // A lane at its cap may have more due.
                            engine.work.notify_one();
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed; will retry");
                    held_back = true;
                }
            }
        }
        if claimed > 0 && claimed == free {
            // There may be more due: claim again as soon as a slot frees up.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = slots.clone().acquire_owned() => {}
            }
            continue;
        }
        let sleep = if held_back {
            engine.config.poll_interval
        } else {
            until_next_due(&engine).await
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = engine.work.notified() => {
                // Wake-ups come in bursts (every routing batch, every finished delivery):
                // one claim serves a burst.
                tokio::time::sleep(engine.config.coalesce).await;
            }
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    // Drain: claim nothing more, let deliveries in progress finish within the drain time, then
    // interrupt the rest and give their claims back, so no lease outlives the process.
    tasks.close();
    if tokio::time::timeout(engine.config.drain_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            deliveries = tasks.len(),
            "deliveries still in progress after the drain time; giving them back"
        );
        interrupt.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    }
}

/// Release a delivery interrupted by shutdown: due again at once (or after the settle time
/// if it had sent something), its attempt not counted.
async fn give_back(engine: &Engine, id: i64, owner: &str) {
    let settle = engine.config.settle.as_millis() as i64;
    if let Err(e) = engine
        .store
        .release_interrupted(id, owner, now_ms(), settle)
        .await
    {
        tracing::warn!(delivery = id, error = %e, "could not give a claim back; it will expire");
    }
}

/// One fair claim. Also says whether a gate held some lane back, in which case the next look
/// comes after `poll_interval` (a lane at its cap is woken when one of its deliveries ends).
async fn claim_round(
    engine: &Engine,
    in_flight: &InFlight,
    cap: usize,
    free: usize,
    round: usize,
) -> Result<(Vec<psabridge_store::outbox::Delivery>, String, bool), psabridge_store::StoreError> {
    let mut held = engine.gate.held();
    // Pauses other nodes recorded (PostgreSQL; one indexed read per claim round).
    held.extend(crate::breaker::shared_pauses(engine).await);
    let lanes: Vec<Lane> = engine
        .store
        .lane_ids()
        .await?
        .into_iter()
        .map(|id| Lane {
            id,
            room: if held.contains(&id) {
                0
            } else {
                cap.saturating_sub(in_flight.count(id))
            },
        })
        .collect();
    // Each claim has its own owner token: a claim that expired and was taken again, even by
    // this node, can no longer write.
    let owner = format!("{}:{round}", engine.config.node_name);
    let terms = ClaimTerms {
        owner: &owner,
        now: now_ms(),
        lease_ms: engine.config.lease.as_millis() as i64,
        settle_ms: engine.config.settle.as_millis() as i64,
    };
    let start = if lanes.is_empty() {
        0
    } else {
        round % lanes.len()
    };
    let list = engine
        .store
        .claim_fairly(&terms, &lanes, free, start)
        .await?;
    Ok((list, owner, !held.is_empty()))
}

/// How long until the soonest queue head is due (a retry, a lease's end); long when nothing
/// is queued. A head due now but not claimed is in a lane at its cap, whose deliveries wake
/// us when they end; a slow look is only a safety net.
async fn until_next_due(engine: &Engine) -> Duration {
    match engine.store.next_due_at().await {
        Ok(Some(at)) => {
            let wait = at - now_ms();
            if wait <= 0 {
                AT_CAP_SAFETY
            } else {
                Duration::from_millis(wait as u64 + 1).min(IDLE_AT_MOST)
            }
        }
        Ok(None) => IDLE_AT_MOST,
        Err(e) => {
            tracing::warn!(error = %e, "reading the next due time failed");
            engine.config.poll_interval
        }
    }
}
