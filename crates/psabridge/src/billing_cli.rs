//! `psabridge billing sync`: a partner's contract billing sync from the command line, with a
//! progress bar, printing the report the API also shows.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use psabridge_engine::billing::{self, Progress, StartedBy};
use psabridge_engine::{ConnectorRegistry, Engine};

use crate::config;

/// A progress bar over the clients of a sync.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, clients: u64) {
        self.0.set_length(clients);
    }

    fn advance(&self) {
        self.0.inc(1);
    }
}

pub async fn sync(config_file: Option<&Path>, partner: &str, dry_run: bool) -> Result<()> {
    let settings = config::load(config_file)?.check(true)?;
    let store = psabridge_store::Store::open(&settings.store, settings.keys).await?;
    store
        .partner(partner)
        .await
        .with_context(|| format!("--partner: no partner '{partner}'"))?;
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::new(),
        Arc::new(settings.catalog),
        settings.engine,
    );
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} billing {pos}/{len} clients [{bar:30}] {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started =
        billing::sync_partner(&engine, partner, StartedBy::Cli, dry_run, &Bar(bar.clone())).await;
    bar.finish_and_clear();
    let summary = started?;
    let (run, lines) = store.billing_run(partner, summary.run_id).await?;
    println!(
        "billing sync {} of {partner}, period {}{}: {} added, {} updated, {} unchanged, {} skipped, {} failed; {} PSA requests",
        run.id,
        run.period_key,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.failed,
        summary.psa_calls,
    );
    for l in &lines {
        let units = match (l.units_before, l.units_after) {
            (Some(b), Some(a)) if b != a => format!("{b} -> {a}"),
            (_, Some(a)) => a.to_string(),
            (Some(b), None) => b.to_string(),
            (None, None) => "-".into(),
        };
        let why = l
            .message
            .as_deref()
            .or(l.reason.as_deref())
            .map(|m| format!("  ({m})"))
            .unwrap_or_default();
        println!(
            "  {:<24} {:<8} {:<13} {units}{why}",
            l.client_id, l.metric, l.outcome
        );
    }
    store.close().await;
    if summary.failed > 0 {
        anyhow::bail!("{} clients failed (see above)", summary.failed);
    }
    Ok(())
}
