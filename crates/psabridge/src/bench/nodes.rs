//! The `nodes` scenario: one `serve` node, then three, on one PostgreSQL database, against a
//! HaloPSA simulator that adds latency to every request, so that each node's delivery slots
//! are what limits throughput. Scale-out should multiply deliveries per second by about the
//! number of nodes while the shared request budget keeps the PSA from refusing anything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{BenchArgs, Proc, Sut, client, event, get_json, metric_sum};

/// Deliveries in progress at once on each node (and on its one connection).
const SLOTS: usize = 8;

/// A `serve` node on the demo's database and key, with its own API and metrics ports.
struct Node {
    _proc: Proc,
    api: String,
    metrics: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_node(sut: &Sut, dir: &std::path::Path, n: usize) -> Result<Node> {
    let (port, metrics_port) = (free_port()?, free_port()?);
    let sim_host = sut
        .sim_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let base = std::fs::read_to_string(dir.join("psabridge.toml"))?;
    let config = dir.join(format!("node-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            "{base}listen = \"127.0.0.1:{port}\"\n\
             [outbound]\nallow = [\"{sim_host}\"]\nallow_http = true\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
             [engine]\nnode_name = \"bench-node-{n}\"\nconcurrency = {SLOTS}\n\
             per_connection_concurrency = {SLOTS}\n"
        ),
    )?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .env("PSABRIDGE_LOG", "error")
        .env_remove("PSABRIDGE_TEST_PG_URL")
        .stdout(Stdio::null())
        .spawn()?;
    let node = Node {
        _proc: Proc(child),
        api: format!("http://127.0.0.1:{port}"),
        metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
    };
    let http = client()?;
    let end = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{}/readyz", node.api))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        if Instant::now() > end {
            bail!("node {n} was not ready in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(node)
}

/// Deliveries finished so far on all nodes (delivered or dead), from their metrics.
async fn finished(http: &reqwest::Client, nodes: &[Node]) -> Result<u64> {
    let mut sum = 0;
    for n in nodes {
        let text = http.get(&n.metrics).send().await?.text().await?;
        sum += metric_sum(&text, "psabridge_deliveries_total", |l| {
            !["\"retry\"", "\"expired\""]
                .iter()
                .any(|o| l.contains(&format!("outcome={o}")))
        });
    }
    Ok(sum)
}

/// One run: `count` nodes drain `events` events; (deliveries per second, 429s, PSA requests).
async fn run_with(args: &BenchArgs, count: usize, events: u64) -> Result<(f64, u64, u64)> {
    let mut args = args.clone();
    args.psa = "halopsa".into();
    // Budgets far above what 300 ms a request allows: slots, not the budget, are the limit.
    let mut sut = Sut::start(&args, 300, Some(1_200_000), 1_200_000).await?;
    // The demo seeded the database and the key; only the `serve` nodes deliver.
    let _ = sut.product.0.kill();
    let _ = sut.product.0.wait();
    let dir = sut._dir.path().to_path_buf();
    let http = client()?;
    let mut nodes = Vec::new();
    for n in 1..=count {
        nodes.push(start_node(&sut, &dir, n).await?);
    }
    let before = get_json(&http, &format!("{}/_sim/stats", sut.sim_url), None).await?;
    let started = Instant::now();
    for chunk in (0..events).collect::<Vec<_>>().chunks(500) {
        let body = json!({"events": chunk.iter().map(|i| event(*i, &format!("nodes{count}"))).collect::<Vec<Value>>()});
        let node = &nodes[(chunk[0] / 500) as usize % nodes.len()];
        let r = http
            .post(format!("{}/api/v1/events", node.api))
            .bearer_auth(&sut.token)
            .json(&body)
            .send()
            .await?;
        if r.status() != 202 {
            bail!("posting events: {}", r.status());
        }
    }
    let end = Instant::now() + Duration::from_secs(1800);
    let done = loop {
        let done = finished(&http, &nodes).await?;
        if done >= events {
            break done;
        }
        if Instant::now() > end {
            bail!("{done} of {events} deliveries finished in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rate = done as f64 / started.elapsed().as_secs_f64();
    let after = get_json(&http, &format!("{}/_sim/stats", sut.sim_url), None).await?;
    let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    drop(nodes);
    sut.drop_database().await;
    Ok((rate, delta("rate_limited"), delta("requests")))
}

pub(super) async fn scenario_nodes(args: &BenchArgs) -> Result<Value> {
    args.postgres
        .as_ref()
        .context("--scenario nodes runs several nodes on one database: give --postgres <url>")?;
    let events = args.economy_events as u64;
    let (one, one_429, one_requests) = run_with(args, 1, events).await?;
    let (three, three_429, three_requests) = run_with(args, 3, events).await?;
    let ratio = three / one;
    Ok(json!({
        "scenario": "nodes", "events": events, "psa_latency_ms": 300, "slots_per_node": SLOTS,
        "one_node_deliveries_per_sec": (one * 10.0).round() / 10.0,
        "three_nodes_deliveries_per_sec": (three * 10.0).round() / 10.0,
        "ratio": (ratio * 100.0).round() / 100.0, "ratio_target": 2.5,
        "psa_429": one_429 + three_429, "psa_requests": one_requests + three_requests,
    }))
}
