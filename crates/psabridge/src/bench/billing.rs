//! Scenario `billing`: what a contract sync of an MSP with many clients costs in PSA requests
//! and time, against Autotask's simulator.
//!
//! `--billing-clients` companies, each with an active Recurring Service contract carrying the
//! demo's service, become clients mapped with their contract and billing on; usage is reported
//! for every one. Then three syncs, as a month goes: the period's first (every client's units
//! change), one after a day where one client in twenty grew, and one with nothing new. Each
//! prints its PSA requests beside the floor: the service found by its name, the pages the
//! snapshot must read (contracts, contract services and this period's units, 500 ids a query)
//! and one write per change. The
//! steady-state syncs are held against one Autotask hour's share (5,000 of the database's
//! 10,000 requests an hour): the nightly run must fit in it with tickets still flowing.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{BenchArgs, Sut, client};

/// Our share of an Autotask database's hourly request limit (the connection's default).
const AUTOTASK_HOUR_SHARE: u64 = 5_000;
/// Ids per Autotask `in` query in the snapshot (three queries per chunk).
const IDS_PER_QUERY: u64 = 500;

pub(super) async fn scenario_billing(args: &BenchArgs) -> Result<Value> {
    // The budget is not the bottleneck here: the figures are the requests themselves.
    let sut = Sut::start(args, 0, Some(1_000_000), 10_000_000).await?;
    let http = client()?;
    let slow = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3600))
        .build()?;
    let (connection, token, partner) = sut.partner("autotask");
    let api = sut.api.clone();
    let n = args.billing_clients;
    if n > 100_000 {
        bail!("--billing-clients: at most 100000");
    }

    let setup = Instant::now();
    let r = http
        .post(format!("{}/_sim/companies", sut.sim_url))
        .json(&json!({"count": n, "name_prefix": "Billed", "contracts": true}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("adding companies to the simulator: {}", r.text().await?);
    }
    let pairs: Vec<(i64, i64)> = r.json::<Value>().await?["contracts"]
        .as_array()
        .context("the simulator's contracts")?
        .iter()
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_i64()?)))
        .collect();
    // Clients mapped with their contract (checked in the PSA), billing on: 16 at a time.
    let results: Vec<Result<()>> = futures::stream::iter(pairs.iter().enumerate())
        .map(|(i, (company, contract))| {
            let (http, api, token, partner) = (&http, &api, &token, &partner);
            async move {
                let id = format!("billed-{i:05}");
                let base = format!("{api}/api/v1/partners/{partner}/clients/{id}");
                let steps = [
                    (
                        base.clone(),
                        json!({"name": format!("Billed Client {i:05}")}),
                    ),
                    (
                        format!("{base}/mappings/{connection}"),
                        json!({"company": company.to_string(), "contract": contract.to_string()}),
                    ),
                    (
                        format!("{base}/mappings/{connection}/billing"),
                        json!({"enabled": true, "add_service": true}),
                    ),
                ];
                for (url, body) in steps {
                    let r = http.put(&url).bearer_auth(token).json(&body).send().await?;
                    if !r.status().is_success() {
                        bail!("{url}: {}", r.text().await?);
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let units = |i: usize| 5 + (i % 50) as u64;
    report_usage(&http, &api, &token, (0..pairs.len()).map(|i| (i, units(i)))).await?;
    let setup_secs = setup.elapsed().as_secs_f64();

    // The demo's own three mapped Autotask clients bill on their contracts too.
    let contracts = pairs.len() as u64 + 3;
    let pages = 3 * contracts.div_ceil(IDS_PER_QUERY);
    let sync = |name: &'static str| {
        let (slow, sim, api, token, partner) = (&slow, &sut.sim_url, &api, &token, &partner);
        async move {
            let r = slow.post(format!("{sim}/_sim/reset-stats")).send().await?;
            if !r.status().is_success() {
                bail!("resetting the simulator's statistics: {}", r.status());
            }
            let started = Instant::now();
            let r = slow
                .post(format!(
                    "{api}/api/v1/partners/{partner}/billing/sync?wait=true"
                ))
                .bearer_auth(token)
                .send()
                .await?;
            let wall = started.elapsed().as_secs_f64();
            let report: Value = r.json().await?;
            if report["status"] != "finished" {
                bail!("{name} did not finish: {report}");
            }
            let stats: Value = slow
                .get(format!("{sim}/_sim/stats"))
                .send()
                .await?
                .json()
                .await?;
            let calls = stats["requests"].as_u64().unwrap_or(0);
            let s = &report["summary"];
            let written = s["added"].as_u64().unwrap_or(0) + s["updated"].as_u64().unwrap_or(0);
            // The service, found by its name once a sync; the snapshot's pages; the writes.
            let floor = 1 + pages + written;
            Ok::<Value, anyhow::Error>(json!({
                "sync": name,
                "wall_secs": (wall * 10.0).round() / 10.0,
                "psa_requests": calls,
                "floor": floor,
                "over_floor": calls.saturating_sub(floor),
                "written": written,
                "unchanged": s["unchanged"], "skipped": s["skipped"], "failed": s["failed"],
                "within_an_autotask_hour_share": calls <= AUTOTASK_HOUR_SHARE,
            }))
        }
    };
    let first = sync("first of the period (every client changes)").await?;
    // A day later one client in twenty has one more user.
    report_usage(
        &http,
        &api,
        &token,
        (0..pairs.len())
            .filter(|i| i % 20 == 0)
            .map(|i| (i, units(i) + 1)),
    )
    .await?;
    let daily = sync("a day later (5% of clients grew)").await?;
    let idle = sync("nothing new").await?;
    Ok(json!({
        "scenario": "billing",
        "clients": pairs.len(),
        "setup_secs": (setup_secs * 10.0).round() / 10.0,
        "autotask_hour_share": AUTOTASK_HOUR_SHARE,
        "syncs": [first, daily, idle],
    }))
}

/// Report `users` counts for clients `billed-{i}`, 1000 a request.
async fn report_usage(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    counts: impl Iterator<Item = (usize, u64)>,
) -> Result<()> {
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let stamp = chrono::Utc::now().timestamp_micros();
    let all: Vec<Value> = counts
        .map(|(i, units)| {
            json!({"id": format!("u-{stamp}-{i}"), "client": format!("billed-{i:05}"),
                   "metric": "users", "units": units, "observed_at": at})
        })
        .collect();
    for chunk in all.chunks(1000) {
        let r = http
            .post(format!("{api}/api/v1/usage"))
            .bearer_auth(token)
            .json(&json!({"usage": chunk}))
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("usage: {}", r.text().await?);
        }
    }
    Ok(())
}
