//! Contract billing sync: each client's usage high-water mark into its PSA contract.
//!
//! One sync per partner: for each connection with a billing service, read the contracts and
//! service lines of every mapped client in a few paged reads, ask `core::billing::decide`
//! what differs, and write only that — one request per change. Every client gets a line in
//! the run's report (written as the sync goes). A sync that dies half-way is simply run again:
//! it reads what the PSA now holds, so what was written is not written twice.
//!
//! The nightly run ([`run_schedule`]) fires at each partner's local hour; the node that moves
//! the partner's due time forward (one conditional UPDATE) runs it, so several nodes run it
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use psabridge_core::billing::{
    ClientFacts, ContractState, SkipReason, SyncDecision, decide, next_sync_at,
};
use psabridge_psa::billing::{ContractBilling, ServiceRef, ServiceSpec};
use psabridge_store::Store;
use psabridge_store::billing::{BillingLine, BillingService, MappingBilling};
use psabridge_store::config::Connection;
use tokio_util::sync::CancellationToken;

use crate::{Engine, now_ms};

/// Who asked for a sync, as the report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    Api,
    Cli,
    Portal,
    Schedule,
}

impl StartedBy {
    fn as_str(self) -> &'static str {
        match self {
            StartedBy::Api => "api",
            StartedBy::Cli => "cli",
            StartedBy::Portal => "portal",
            StartedBy::Schedule => "schedule",
        }
    }
}

/// Told how far a sync has come (the CLI draws a progress bar with it).
pub trait Progress: Send + Sync {
    /// The number of clients the sync will go through.
    fn start(&self, clients: u64);
    /// One more client done.
    fn advance(&self);
}

/// No progress to show.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn advance(&self) {}
}

/// What a finished sync did, in numbers (the lines are in the store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub run_id: i64,
    pub period_key: String,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// PSA requests the sync made.
    pub psa_calls: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] psabridge_store::StoreError),
}

/// Sync one partner now, to the end.
pub async fn sync_partner(
    engine: &Engine,
    partner: &str,
    started_by: StartedBy,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<SyncSummary, SyncError> {
    let run = begin(engine, partner, started_by, dry_run).await?;
    finish(engine, partner, run, dry_run, progress).await
}

/// Open a sync's report (so a caller can answer with its id before the sync ends).
pub async fn begin(
    engine: &Engine,
    partner: &str,
    started_by: StartedBy,
    dry_run: bool,
) -> Result<i64, SyncError> {
    let calendar = engine.store.billing_calendar(partner).await?;
    let period = calendar.period_of(Utc::now());
    Ok(engine
        .store
        .start_billing_run(partner, started_by.as_str(), dry_run, &period.key, now_ms())
        .await?)
}

/// Carry out a sync opened by [`begin`] and close its report.
pub async fn finish(
    engine: &Engine,
    partner: &str,
    run: i64,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<SyncSummary, SyncError> {
    let store = &engine.store;
    let now = Utc::now();
    let calls_before = engine.connectors.total_calls();
    let mut summary = SyncSummary {
        run_id: run,
        period_key: store.billing_calendar(partner).await?.period_of(now).key,
        ..SyncSummary::default()
    };
    let result = sync_run(engine, partner, run, dry_run, now, &mut summary, progress).await;
    summary.psa_calls = engine.connectors.total_calls().saturating_sub(calls_before);
    let error = result.as_ref().err().map(ToString::to_string);
    store
        .finish_billing_run(run, error.as_deref(), now_ms())
        .await?;
    result.map(|()| summary)
}

/// The period's marks by (client, metric).
type Marks = BTreeMap<(String, String), u64>;

/// A mapping the report has a line for: billing on, or usage reported for it.
fn relevant(m: &MappingBilling, metric: &str, marks: &Marks) -> bool {
    m.enabled || marks.contains_key(&(m.client_id.clone(), metric.to_string()))
}

async fn sync_run(
    engine: &Engine,
    partner: &str,
    run: i64,
    dry_run: bool,
    now: DateTime<Utc>,
    summary: &mut SyncSummary,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let store = &engine.store;
    let calendar = store.billing_calendar(partner).await?;
    let period = calendar.period_of(now);
    let start_ms = period.start.timestamp_millis();
    let marks: Marks = store
        .high_water_marks(partner, &period.key)
        .await?
        .into_iter()
        .filter(|m| m.period_start == start_ms)
        .map(|m| ((m.client_id, m.metric), m.units))
        .collect();

    let mut plans = Vec::new();
    for connection in store.connections(Some(partner)).await? {
        if let Some(service) = store.billing_service(connection.id).await? {
            let mappings = store.mapping_billings(partner, connection.id).await?;
            plans.push((connection, service, mappings));
        }
    }
    // Every client with usage that no billing connection maps is reported as skipped.
    let billed: BTreeSet<(String, String)> = plans
        .iter()
        .flat_map(|(_, s, ms)| {
            ms.iter()
                .filter(|m| m.enabled)
                .map(|m| (m.client_id.clone(), s.metric.clone()))
        })
        .collect();
    let orphans: Vec<(String, String)> = marks
        .keys()
        .filter(|k| !billed.contains(*k))
        .cloned()
        .collect();
    let total = plans
        .iter()
        .map(|(_, s, ms)| ms.iter().filter(|m| relevant(m, &s.metric, &marks)).count() as u64)
        .sum::<u64>()
        + orphans.len() as u64;
    progress.start(total);

    for (connection, service, mappings) in plans {
        sync_connection(
            engine,
            run,
            dry_run,
            now,
            &connection,
            &service,
            &mappings,
            &marks,
            summary,
            progress,
        )
        .await?;
    }
    for (client, metric) in orphans {
        let line = BillingLine {
            connection_id: 0,
            client_id: client.clone(),
            metric: metric.clone(),
            outcome: "skipped".into(),
            reason: Some(SkipReason::NoMapping.as_str().into()),
            units_before: None,
            units_after: marks.get(&(client, metric)).copied(),
            cost_before: None,
            cost_after: None,
            message: Some(SkipReason::NoMapping.explain().into()),
        };
        record(store, run, &line, summary).await?;
        progress.advance();
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn sync_connection(
    engine: &Engine,
    run: i64,
    dry_run: bool,
    now: DateTime<Utc>,
    connection: &Connection,
    service: &BillingService,
    mappings: &[MappingBilling],
    marks: &Marks,
    summary: &mut SyncSummary,
    progress: &dyn Progress,
) -> Result<(), SyncError> {
    let store = &engine.store;
    let line_of = |m: &MappingBilling| BillingLine {
        connection_id: connection.id,
        client_id: m.client_id.clone(),
        metric: service.metric.clone(),
        outcome: String::new(),
        reason: None,
        units_before: None,
        units_after: marks
            .get(&(m.client_id.clone(), service.metric.clone()))
            .copied(),
        cost_before: None,
        cost_after: None,
        message: None,
    };
    // What stops the whole connection (no connector, no service, a failed read) is reported
    // on each of its billed clients; a client whose billing is off says so.
    let stopped = |outcome: &str, reason: Option<&str>, message: String| {
        mappings
            .iter()
            .filter(|m| relevant(m, &service.metric, marks))
            .map(|m| {
                if m.enabled {
                    BillingLine {
                        outcome: outcome.into(),
                        reason: reason.map(str::to_string),
                        message: Some(message.clone()),
                        ..line_of(m)
                    }
                } else {
                    BillingLine {
                        outcome: "skipped".into(),
                        reason: Some(SkipReason::NoMapping.as_str().into()),
                        message: Some(SkipReason::NoMapping.explain().into()),
                        ..line_of(m)
                    }
                }
            })
            .collect::<Vec<_>>()
    };
    let lines = match prepare(engine, connection, service, mappings, dry_run, now).await {
        Err(message) => stopped("failed", None, message),
        Ok(Prepared::NoService) => stopped(
            "skipped",
            Some("service_not_in_psa"),
            format!(
                "the PSA has no service named '{}' and creating it is off (or this is a dry run)",
                service.defaults.name
            ),
        ),
        Ok(Prepared::Ready {
            connector,
            service_ref,
            snapshot,
        }) => {
            let billing = connector
                .contract_billing()
                .expect("prepare checked that the connector bills");
            let mut lines = Vec::new();
            for m in mappings {
                if !relevant(m, &service.metric, marks) {
                    continue;
                }
                let units = marks
                    .get(&(m.client_id.clone(), service.metric.clone()))
                    .copied();
                let contract =
                    m.billing
                        .contract_id
                        .as_ref()
                        .map(|k| match snapshot.contracts.get(k) {
                            Some(c) if c.company_id == m.company_id => c.state.clone(),
                            _ => ContractState::Missing,
                        });
                let line = m
                    .billing
                    .contract_id
                    .as_ref()
                    .and_then(|k| snapshot.lines.get(k))
                    .cloned();
                let facts = ClientFacts {
                    billing: m.enabled.then(|| m.billing.clone()),
                    contract,
                    line,
                    high_water: units,
                };
                let decision = decide(&facts, &service.defaults);
                let mut out = carry_out(billing, &service_ref, m, &decision, dry_run, now).await;
                out.connection_id = connection.id;
                out.client_id = m.client_id.clone();
                out.metric = service.metric.clone();
                out.units_before = facts.line.as_ref().map(|l| l.units);
                out.cost_before = facts.line.as_ref().map(|l| l.unit_cost);
                if out.units_after.is_none() {
                    out.units_after = units;
                }
                lines.push(out);
            }
            lines
        }
    };
    for line in &lines {
        record(store, run, line, summary).await?;
        progress.advance();
    }
    Ok(())
}

enum Prepared {
    NoService,
    Ready {
        connector: std::sync::Arc<dyn psabridge_psa::Connector>,
        service_ref: ServiceRef,
        snapshot: psabridge_psa::billing::BillingSnapshot,
    },
}

/// The connector, the service (found, or created when allowed) and the snapshot of every
/// billed contract; `Err` with the reason when the connection cannot be synced.
async fn prepare(
    engine: &Engine,
    connection: &Connection,
    service: &BillingService,
    mappings: &[MappingBilling],
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Prepared, String> {
    let connector = engine
        .connectors
        .get(&engine.store, connection)
        .await
        .map_err(|e| format!("the connection cannot be used: {e}"))?;
    let Some(billing) = connector.contract_billing() else {
        return Err(format!(
            "contract billing is not available for {} connections yet",
            connection.kind.as_str()
        ));
    };
    let found = billing
        .find_service(&service.defaults.name)
        .await
        .map_err(|e| e.to_string())?;
    let service_ref = match found {
        Some(s) => s,
        None if service.create_if_missing && !dry_run => billing
            .create_service(&ServiceSpec {
                name: service.defaults.name.clone(),
                unit_cost: service.defaults.unit_cost,
                unit_price: service.defaults.unit_price,
            })
            .await
            .map_err(|e| e.to_string())?,
        None => return Ok(Prepared::NoService),
    };
    let contracts: Vec<String> = mappings
        .iter()
        .filter(|m| m.enabled)
        .filter_map(|m| m.billing.contract_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let snapshot = billing
        .billing_snapshot(&contracts, &service_ref.id, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Prepared::Ready {
        connector,
        service_ref,
        snapshot,
    })
}

/// Act on one decision (or say what would be done, on a dry run).
async fn carry_out(
    billing: &dyn ContractBilling,
    service: &ServiceRef,
    m: &MappingBilling,
    decision: &SyncDecision,
    dry_run: bool,
    now: DateTime<Utc>,
) -> BillingLine {
    let mut line = BillingLine {
        connection_id: 0,
        client_id: String::new(),
        metric: String::new(),
        outcome: String::new(),
        reason: None,
        units_before: None,
        units_after: None,
        cost_before: None,
        cost_after: None,
        message: None,
    };
    let contract = m.billing.contract_id.clone().unwrap_or_default();
    let result = match decision {
        SyncDecision::Skip(reason) => {
            line.outcome = "skipped".into();
            line.reason = Some(reason.as_str().into());
            line.message = Some(reason.explain().into());
            return line;
        }
        SyncDecision::Unchanged => {
            line.outcome = "unchanged".into();
            return line;
        }
        SyncDecision::AddService {
            units,
            unit_cost,
            unit_price,
        } => {
            line.outcome = if dry_run { "would_add" } else { "added" }.into();
            line.units_after = Some(*units);
            line.cost_after = Some(*unit_cost);
            if dry_run {
                return line;
            }
            billing
                .add_service_to_contract(
                    &contract,
                    &service.id,
                    *units,
                    *unit_cost,
                    *unit_price,
                    now,
                )
                .await
        }
        SyncDecision::Update { units, unit_cost } => {
            line.outcome = if dry_run { "would_update" } else { "updated" }.into();
            line.units_after = units.map(|(_, to)| to);
            line.cost_after = unit_cost.map(|(_, to)| to);
            if dry_run {
                return line;
            }
            billing
                .update_service_line(
                    &contract,
                    &service.id,
                    *units,
                    unit_cost.map(|(_, to)| to),
                    now,
                )
                .await
        }
    };
    if let Err(e) = result {
        line.outcome = "failed".into();
        line.message = Some(e.to_string());
    }
    line
}

async fn record(
    store: &Store,
    run: i64,
    line: &BillingLine,
    summary: &mut SyncSummary,
) -> Result<(), SyncError> {
    store.record_billing_line(run, line).await?;
    match line.outcome.as_str() {
        "added" | "would_add" => summary.added += 1,
        "updated" | "would_update" => summary.updated += 1,
        "unchanged" => summary.unchanged += 1,
        "skipped" => summary.skipped += 1,
        _ => summary.failed += 1,
    }
    Ok(())
}

/// Run each partner's nightly sync at its local hour, once across the cluster.
pub async fn run_schedule(engine: Engine, shutdown: CancellationToken) {
    let every = engine.config.billing_schedule_check;
    loop {
        if let Err(e) = run_due_syncs(&engine).await {
            tracing::warn!(error = %e, "checking for due billing syncs failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn run_due_syncs(engine: &Engine) -> Result<(), SyncError> {
    let now = Utc::now();
    for (partner, hour, seen) in engine
        .store
        .billing_syncs_due(now.timestamp_millis())
        .await?
    {
        let calendar = engine.store.billing_calendar(&partner).await?;
        let next = next_sync_at(&calendar, hour, now).timestamp_millis();
        if !engine.store.take_billing_sync(&partner, seen, next).await? {
            continue; // another node took it
        }
        if seen.is_none() {
            continue; // first sight of this partner: only schedule it
        }
        match sync_partner(engine, &partner, StartedBy::Schedule, false, &Silent).await {
            Ok(s) => tracing::info!(
                partner,
                run = s.run_id,
                added = s.added,
                updated = s.updated,
                failed = s.failed,
                "nightly billing sync finished"
            ),
            Err(e) => tracing::warn!(partner, error = %e, "nightly billing sync failed"),
        }
    }
    Ok(())
}

/// How often the schedule is checked by default.
pub const SCHEDULE_CHECK: Duration = Duration::from_secs(60);
