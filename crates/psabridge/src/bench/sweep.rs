//! Scenario `sweep`: what an idle system spends on learning that tickets closed.
//!
//! Many open tickets and nothing to deliver is the state a quiet week leaves. Where the PSA
//! pushes no changes the sweep reads ticket states, and a PSA that reads one ticket per request
//! (Kaseya BMS) could spend its whole budget on it. This opens `--sweep-open` tickets, lets the
//! deliveries finish, then counts the simulator's requests over `--sweep-secs` of idleness: every
//! one of them is the sweep's. The figure printed is per hour, beside the share of the
//! connection's hourly budget the sweep may use (20%).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{BenchArgs, Sut, client, drain, sim_requests};

/// The sweep's share of a connection's request budget (`engine.sweep_share`).
const SWEEP_SHARE: f64 = 0.2;

pub(super) async fn scenario_sweep(args: &BenchArgs) -> Result<Value> {
    let budget = args.sweep_budget_per_hour;
    let sut = Sut::start(args, 0, Some(budget), 1_000_000).await?;
    let http = client()?;
    let n = args.sweep_open;
    // One group (so one ticket) per user.
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("sw-{i}"), "client": "client-001",
                   "type": "saas.too_many_downloads", "severity": "high",
                   "user": {"email": format!("sweep{i}@example.test")}})
        })
        .collect();
    let r = http
        .post(format!("{}/api/v1/events", sut.api))
        .bearer_auth(&sut.token)
        .json(&json!({"events": events}))
        .send()
        .await?;
    if r.status().as_u16() != 202 {
        bail!("posting the tickets' events: {}", r.text().await?);
    }
    drain(&http, &sut, n as u64, Duration::from_secs(1800)).await?;

    let before = sim_requests(&http, &sut.sim_url).await?;
    let cpu_before = sut.cpu_time();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.sweep_secs)).await;
    let secs = start.elapsed().as_secs_f64();
    let reads = sim_requests(&http, &sut.sim_url).await? - before;
    let cpu = (sut.cpu_time() - cpu_before).as_secs_f64();
    let per_hour = reads as f64 * 3600.0 / secs;
    let allowed = budget as f64 * SWEEP_SHARE;
    println!(
        "sweep ({}, {n} open tickets, idle {secs:.0} s): {reads} requests = {per_hour:.0} per hour; \
         the sweep's share of a {budget}/hour budget is {allowed:.0}/hour; product CPU {:.1}% of one core",
        args.psa,
        cpu / secs * 100.0
    );
    Ok(
        json!({"scenario": "sweep", "psa": args.psa, "open_tickets": n, "idle_secs": secs.round(),
              "sweep_requests": reads, "sweep_requests_per_hour": per_hour.round(),
              "budget_per_hour": budget, "sweep_share_per_hour": allowed.round(),
              "cpu_percent_of_one_core": (cpu / secs * 1000.0).round() / 10.0}),
    )
}
