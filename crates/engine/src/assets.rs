//! Pushing assets to the PSAs as configuration items.
//!
//! What is due comes from the store (`Store::assets_due`: assets of clients whose mapping
//! pushes them, never written to the connection's PSA or changed since); what each needs is
//! `core::assets::decide`; the writes go through the connector's `AssetSync`. The economy:
//! a scan that changes nothing but "last seen" is not due, so it costs no request; an asset
//! already in the PSA costs one update when a shown field changed; a new one costs a look-up
//! by our reference and a create (the look-up is what makes a create whose answer was lost
//! harmless: the next run finds the record and updates it instead of creating another).
//!
//! Runs every `asset_sync_interval` on the one node holding the `assets` lease, and on demand
//! ([`sync_connection`]).

use std::time::Duration;

use psabridge_core::assets::{AssetAction, decide};
use psabridge_psa::PsaError;
use psabridge_psa::assets::AssetSpec;
use psabridge_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// The name of the periodic push's lease in `job_leases`.
pub const ASSETS_JOB: &str = "assets";
/// Assets pushed per connection and run; the rest wait for the next run.
pub const PER_RUN: i64 = 500;
/// How often assets are pushed by default.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What a push did with one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLine {
    pub client: String,
    pub asset_id: String,
    /// `created`, `found` (already in the PSA under our reference: updated), `updated`,
    /// `failed`, or `skipped`.
    pub outcome: &'static str,
    pub psa_id: Option<String>,
    pub message: Option<String>,
}

/// What a push of one connection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetReport {
    pub connection_id: i64,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub skipped: usize,
    /// More were due than one run pushes; the next run goes on.
    pub more_due: bool,
    pub lines: Vec<AssetLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssetSyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the connection's connector cannot be built: {0}")]
    Connector(String),
    /// Another push of the same connection is running (here or on another node).
    #[error("a push of this connection's assets is already running; try again when it ends")]
    Busy,
}

/// Connections whose push runs in this process: with the cluster-wide lease below, one push
/// per connection at a time, so two pushes never both create the same asset.
static RUNNING: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());

/// This process's claim on a connection's push, given back when dropped.
struct Running(i64);

impl Running {
    fn take(connection: i64) -> Option<Running> {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.contains(&connection) {
            return None;
        }
        running.push(connection);
        Some(Running(connection))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        running.retain(|c| *c != self.0);
    }
}

/// How long a push may hold a connection's lease before another node may take it.
const PUSH_LEASE: Duration = Duration::from_secs(300);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A PSA error after which the rest of the run would fail too (the PSA is limiting us or down).
fn stops_the_run(e: &PsaError) -> bool {
    matches!(
        e,
        PsaError::RateLimited { .. }
            | PsaError::Transient { .. }
            | PsaError::Auth(_)
            | PsaError::Unreachable(_)
    )
}

/// The record under our reference, brought up to date, or a new one.
async fn find_or_create(
    items: &dyn psabridge_psa::assets::AssetSync,
    company: &str,
    spec: &AssetSpec,
) -> Result<(String, &'static str), PsaError> {
    match items.find_asset(company, &spec.reference).await? {
        Some(id) => items.update_asset(&id, spec).await.map(|()| (id, "found")),
        None => items
            .create_asset(company, spec)
            .await
            .map(|id| (id, "created")),
    }
}

/// Push what is due on one connection of `partner`, up to [`PER_RUN`] assets.
pub async fn sync_connection(
    engine: &Engine,
    partner: &str,
    connection: i64,
) -> Result<AssetReport, AssetSyncError> {
    let conn = engine.store.connection(partner, connection).await?;
    let Some(_running) = Running::take(conn.id) else {
        return Err(AssetSyncError::Busy);
    };
    let job = format!("{ASSETS_JOB}:{}", conn.id);
    let holder = &engine.config.node_name;
    let lease = PUSH_LEASE.as_millis() as i64;
    if !engine.store.hold_job(&job, holder, now_ms(), lease).await? {
        return Err(AssetSyncError::Busy);
    }
    let pushed = push(engine, partner, &conn).await;
    if let Err(e) = engine.store.release_job(&job, holder).await {
        tracing::warn!(connection = conn.id, error = %e, "could not give up an asset push's lease; it will expire");
    }
    pushed
}

async fn push(
    engine: &Engine,
    partner: &str,
    conn: &psabridge_store::config::Connection,
) -> Result<AssetReport, AssetSyncError> {
    let mut report = AssetReport {
        connection_id: conn.id,
        ..AssetReport::default()
    };
    let due = engine.store.assets_due(conn.id, PER_RUN + 1).await?;
    report.more_due = due.len() as i64 > PER_RUN;
    let connector = engine
        .connectors
        .get(&engine.store, conn)
        .await
        .map_err(|e| AssetSyncError::Connector(e.to_string()))?;
    let Some(items) = connector.asset_sync() else {
        for d in due.iter().take(PER_RUN as usize) {
            report.skipped += 1;
            report.lines.push(AssetLine {
                client: d.asset.client_id.clone(),
                asset_id: d.asset.asset_id.clone(),
                outcome: "skipped",
                psa_id: None,
                message: Some(format!(
                    "PSA Bridge cannot push assets to {} yet",
                    conn.kind.display_name()
                )),
            });
        }
        return Ok(report);
    };
    for d in due.into_iter().take(PER_RUN as usize) {
        let psa_id = d.link.as_ref().and_then(|l| l.psa_id.clone());
        let pushed = d.link.as_ref().and_then(|l| l.pushed.as_ref());
        let spec = AssetSpec {
            reference: d.asset.asset_id.clone(),
            fields: d.asset.fields.clone(),
        };
        let action = decide(psa_id.is_some(), pushed, &d.asset.fields);
        let outcome = match (action, psa_id) {
            (AssetAction::Unchanged, _) => continue,
            (AssetAction::Update, Some(id)) => match items.update_asset(&id, &spec).await {
                Ok(()) => Ok((id, "updated")),
                // Deleted in the PSA since: made again, as for a new asset.
                Err(PsaError::NotFound(_)) => find_or_create(items, &d.company_id, &spec).await,
                Err(e) => Err(e),
            },
            (_, _) => find_or_create(items, &d.company_id, &spec).await,
        };
        let at = now_ms();
        match outcome {
            Ok((id, what)) => {
                engine
                    .store
                    .record_asset_push(
                        partner,
                        conn.id,
                        &d.asset.client_id,
                        &d.asset.asset_id,
                        Some(&id),
                        Some(&d.asset.fields),
                        None,
                        at,
                    )
                    .await?;
                if what == "created" {
                    report.created += 1;
                } else {
                    report.updated += 1;
                }
                report.lines.push(AssetLine {
                    client: d.asset.client_id,
                    asset_id: d.asset.asset_id,
                    outcome: what,
                    psa_id: Some(id),
                    message: None,
                });
            }
            Err(e) => {
                let message = e.to_string();
                engine
                    .store
                    .record_asset_push(
                        partner,
                        conn.id,
                        &d.asset.client_id,
                        &d.asset.asset_id,
                        None,
                        None,
                        Some(&message),
                        at,
                    )
                    .await?;
                report.failed += 1;
                report.lines.push(AssetLine {
                    client: d.asset.client_id,
                    asset_id: d.asset.asset_id,
                    outcome: "failed",
                    psa_id: None,
                    message: Some(message),
                });
                if stops_the_run(&e) {
                    report.more_due = true;
                    break;
                }
            }
        }
    }
    Ok(report)
}

/// Push assets every `asset_sync_interval`, on one node of the cluster at a time (the holder of
/// the `assets` lease), skipping connections whose breaker holds them back.
pub async fn run(engine: Engine, shutdown: CancellationToken) {
    let holder = engine.config.node_name.clone();
    let every = engine.config.asset_sync_interval;
    let lease = (every * 3).max(Duration::from_secs(3)).as_millis() as i64;
    let mut held = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        held = match engine
            .store
            .hold_job(ASSETS_JOB, &holder, now_ms(), lease)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the asset push's lease; skipping this run");
                false
            }
        };
        if !held {
            continue;
        }
        let mut paused = engine.breakers.paused();
        paused.extend(crate::breaker::shared_pauses(&engine).await);
        let pushing = match engine.store.connections_pushing_assets().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list connections that push assets");
                continue;
            }
        };
        for (partner, connection) in pushing {
            if paused.contains(&connection) || shutdown.is_cancelled() {
                continue;
            }
            match sync_connection(&engine, &partner, connection).await {
                Ok(r) if r.created + r.updated + r.failed > 0 => tracing::info!(
                    partner,
                    connection,
                    created = r.created,
                    updated = r.updated,
                    failed = r.failed,
                    "assets pushed"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(partner, connection, error = %e, "asset push failed"),
            }
        }
    }
    if held && let Err(e) = engine.store.release_job(ASSETS_JOB, &holder).await {
        tracing::warn!(error = %e, "could not give up the asset push's lease; it will expire");
    }
}
