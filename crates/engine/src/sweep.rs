//! Reading the state of open tickets in batches.
//!
//! Where the PSA pushes ticket changes (webhooks), the sweep is a safety net and runs rarely
//! per ticket; where it cannot, it is how we learn that a ticket was closed. Either way it
//! also learns ticket numbers, which a create does not return. One PSA request covers up to
//! 500 tickets (Autotask's `in` filter), so its cost per event is tiny.

use psabridge_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::{Engine, Stats, now_ms};

/// Tickets asked about per request.
const BATCH: usize = 500;

pub async fn run(engine: Engine, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.config.sweep_interval) => {}
        }
        if let Err(e) = sweep_once(&engine).await {
            tracing::warn!(error = %e, "ticket sweep failed; will try again");
        }
    }
}

/// Sweep every connection once; returns the number of tickets checked.
pub async fn sweep_once(engine: &Engine) -> Result<usize, StoreError> {
    let mut checked = 0;
    let paused = engine.breakers.paused();
    for conn in engine.store.connections(None).await? {
        if !conn.enabled || paused.contains(&conn.id) {
            continue;
        }
        let age = if conn.webhook_id.is_some() {
            engine.config.trust_with_webhook / 2
        } else {
            engine.config.sweep_age
        };
        let before = now_ms() - age.as_millis() as i64;
        let groups = engine
            .store
            .groups_to_sweep(conn.id, before, BATCH as i64 * 4)
            .await?;
        if groups.is_empty() {
            continue;
        }
        let connector = match engine.connectors.get(&engine.store, &conn).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(connection = conn.id, error = %e, "cannot sweep: connector unavailable");
                continue;
            }
        };
        for chunk in groups.chunks(BATCH) {
            let ids: Vec<String> = chunk.iter().map(|g| g.ticket_id.clone()).collect();
            let states = match connector.ticket_states(&ids).await {
                Ok(s) => s,
                Err(e) => {
                    if e.is_retryable() {
                        engine.breakers.failure(conn.id, e.retry_after());
                    }
                    tracing::warn!(connection = conn.id, error = %e, "ticket sweep request failed");
                    break;
                }
            };
            Stats::inc(&engine.stats.sweeps);
            checked += ids.len();
            let now = now_ms();
            let mut open = Vec::new();
            let mut closed = Vec::new();
            let mut closed_numbers = Vec::new();
            for id in &ids {
                match states.iter().find(|s| &s.id == id) {
                    Some(s) if !s.closed => open.push((id.clone(), s.number.clone())),
                    Some(s) => {
                        closed.push(id.clone());
                        closed_numbers.push((id.clone(), s.number.clone()));
                    }
                    None => closed.push(id.clone()), // deleted or merged away
                }
            }
            engine.store.confirm_open(conn.id, &open, now).await?;
            engine
                .store
                .record_ticket_numbers(conn.id, &closed_numbers)
                .await?;
            if !closed.is_empty() {
                let n = engine.store.close_tickets(conn.id, &closed, now).await?;
                for _ in 0..n {
                    Stats::inc(&engine.stats.tickets_found_closed);
                }
            }
        }
    }
    Ok(checked)
}
