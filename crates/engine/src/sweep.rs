//! Reading the state of open tickets in batches, within a share of each PSA's budget.
//!
//! Where the PSA pushes ticket changes (webhooks), the sweep is a safety net and runs rarely
//! per ticket; where it cannot, it is how we learn that a ticket was closed. Either way it
//! also learns ticket numbers, which a create does not return.
//!
//! A sweep's reads come out of the connection's request budget, and some PSAs read one ticket
//! per request (Kaseya BMS). So each connection's sweeps spend at most
//! `EngineConfig::sweep_share` of its budget ([`psabridge_core::sweep::SweepAllowance`],
//! with the connector's [`psabridge_psa::SweepCost`]), whatever the number of open tickets:
//! the stalest tickets are read first and the rest wait for the next sweep. Deliveries come
//! first: a connection with deliveries due, or whose budget is spent, is not swept.

use std::collections::HashMap;
use std::time::Instant;

use psabridge_core::sweep::SweepAllowance;
use psabridge_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::{Engine, Stats, now_ms};

/// Tickets asked about per read at most (PSAs read fewer per request: see `SweepCost`).
const BATCH: usize = 500;

/// What each connection's sweeps have earned and not spent.
#[derive(Debug, Default)]
pub struct Sweeper {
    allowances: HashMap<i64, (SweepAllowance, Instant)>,
}

/// The name of the sweep's lease in `job_leases`.
pub const SWEEP_JOB: &str = "sweep";

/// How long a node holds the sweep without renewing it: a few intervals, so a live holder
/// (which renews every interval) keeps it, and a dead one's is taken over soon after.
pub fn sweep_lease(engine: &Engine) -> std::time::Duration {
    (engine.config.sweep_interval * 3).max(std::time::Duration::from_secs(3))
}

/// Sweep every `sweep_interval`, on one node of the cluster at a time: the node holding the
/// `sweep` lease (`job_leases`). Two nodes sweeping would spend the PSA's budget twice for
/// the same answers. The lease is given up at shutdown so another node takes over at once.
pub async fn run(engine: Engine, shutdown: CancellationToken) {
    let mut sweeper = Sweeper::default();
    let holder = engine.config.node_name.clone();
    let lease = sweep_lease(&engine).as_millis() as i64;
    let mut held = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(engine.config.sweep_interval) => {}
        }
        let holds = match engine
            .store
            .hold_job(SWEEP_JOB, &holder, now_ms(), lease)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the sweep's lease; skipping this sweep");
                false
            }
        };
        if holds != held {
            tracing::info!(
                node = holder,
                holds,
                "the ticket sweep's lease changed hands"
            );
            held = holds;
        }
        if !holds {
            // Another node sweeps; a new holder starts with fresh allowances.
            sweeper = Sweeper::default();
            continue;
        }
        if let Err(e) = sweeper.sweep_once(&engine).await {
            tracing::warn!(error = %e, "ticket sweep failed; will try again");
        }
    }
    if held && let Err(e) = engine.store.release_job(SWEEP_JOB, &holder).await {
        tracing::warn!(error = %e, "could not give up the sweep's lease; it will expire");
    }
}

impl Sweeper {
    /// Sweep every connection once, each within its allowance; returns the number of tickets
    /// checked.
    pub async fn sweep_once(&mut self, engine: &Engine) -> Result<usize, StoreError> {
        let mut checked = 0;
        let mut paused = engine.breakers.paused();
        paused.extend(crate::breaker::shared_pauses(engine).await);
        for conn in engine.store.connections(None).await? {
            if !conn.enabled || paused.contains(&conn.id) {
                continue;
            }
            let connector = match engine.connectors.get(&engine.store, &conn).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(connection = conn.id, error = %e, "cannot sweep: connector unavailable");
                    continue;
                }
            };
            let cost = connector.sweep_cost();
            let per_request = cost.tickets_per_request.max(1);
            let now = Instant::now();
            let (allowance, last) = self
                .allowances
                .entry(conn.id)
                .or_insert((SweepAllowance::default(), now));
            allowance.earn(
                now.duration_since(*last),
                cost.requests_per_hour,
                engine.config.sweep_share,
                engine.config.sweep_interval * 2,
            );
            *last = now;
            if allowance.requests() == 0
                || !connector.ready_in().is_zero()
                || engine.store.lane_has_due(conn.id, now_ms()).await?
            {
                // Nothing earned yet, or deliveries go first.
                continue;
            }
            let age = if conn.webhook_id.is_some() {
                engine.config.trust_with_webhook / 2
            } else {
                engine.config.sweep_age
            };
            let before = now_ms() - age.as_millis() as i64;
            let most = allowance.tickets(per_request, BATCH * 4);
            let groups = engine
                .store
                .groups_to_sweep(conn.id, before, most as i64)
                .await?;
            if groups.is_empty() {
                continue;
            }
            for chunk in groups.chunks(BATCH.min(per_request * allowance.requests().max(1))) {
                let ids: Vec<String> = chunk.iter().map(|g| g.ticket_id.clone()).collect();
                let (states, calls) =
                    psabridge_psa::count_calls(connector.ticket_states(&ids)).await;
                allowance.spend(calls as usize);
                engine
                    .stats
                    .sweep_requests
                    .fetch_add(calls, std::sync::atomic::Ordering::Relaxed);
                let states = match states {
                    Ok(s) => s,
                    Err(e) => {
                        if e.is_retryable() {
                            engine.breakers.failure(conn.id, e.retry_after());
                            crate::breaker::share_pause(engine, conn.id).await;
                        }
                        tracing::warn!(connection = conn.id, error = %e, "ticket sweep request failed");
                        break;
                    }
                };
                Stats::inc(&engine.stats.sweeps);
                checked += ids.len();
                record(engine, conn.id, &ids, &states).await?;
                if allowance.requests() == 0 {
                    break;
                }
            }
        }
        Ok(checked)
    }
}

/// What a read said: open tickets confirmed, closed (or gone) ones close their groups.
async fn record(
    engine: &Engine,
    connection_id: i64,
    ids: &[String],
    states: &[psabridge_psa::TicketState],
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut open = Vec::new();
    let mut closed = Vec::new();
    let mut closed_numbers = Vec::new();
    for id in ids {
        match states.iter().find(|s| &s.id == id) {
            Some(s) if !s.closed => open.push((id.clone(), s.number.clone())),
            Some(s) => {
                closed.push(id.clone());
                closed_numbers.push((id.clone(), s.number.clone()));
            }
            None => closed.push(id.clone()), // deleted or merged away
        }
    }
    engine.store.confirm_open(connection_id, &open, now).await?;
    engine
        .store
        .record_ticket_numbers(connection_id, &closed_numbers)
        .await?;
    if !closed.is_empty() {
        let n = engine
            .store
            .close_tickets(connection_id, &closed, now)
            .await?;
        for _ in 0..n {
            Stats::inc(&engine.stats.tickets_found_closed);
        }
    }
    Ok(())
}
