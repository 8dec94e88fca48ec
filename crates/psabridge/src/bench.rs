//! `psabridge bench`: the figures of BENCHMARKS.md, measured against the real binary.
//!
//! Each scenario starts a fresh product (`psabridge demo` in a child process, against an
//! Autotask simulator in another child process), drives it over HTTP from this process, and
//! reads what it needs from the API, the simulator's `/_sim/stats` and `/proc`. Nothing is
//! timed inside the product: the load generator measures what a producer would see.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

mod backlog;
mod billing;
mod nodes;
mod portal;
mod sweep;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Which scenarios: all, ingest, batch, economy, latency, backlog, fairness, nodes, sweep,
    /// portal, billing (`all` leaves out backlog and fairness, which load a large backlog first,
    /// sweep, which idles, nodes, which needs --postgres, and portal and billing, which seed a
    /// large partner).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Seconds of load for the ingestion scenarios.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Concurrent producers for the ingestion scenarios.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// SQLite sync setting of the product under test: full or normal.
    #[arg(long, default_value = "full")]
    pub sqlite_synchronous: String,
    /// Events of the economy scenario (and of each run of the nodes scenario).
    #[arg(long, default_value_t = 6000)]
    pub economy_events: usize,
    /// Events per second, and seconds, of the latency scenario.
    #[arg(long, default_value_t = 5)]
    pub latency_rate: u64,
    #[arg(long, default_value_t = 60)]
    pub latency_secs: u64,
    /// Latency the simulator adds to each request in the latency scenario (ms).
    #[arg(long, default_value_t = 150)]
    pub psa_latency_ms: u64,
    /// The PSA the economy and latency scenarios deliver to: autotask, halopsa, kaseya_bms,
    /// connectwise.
    #[arg(long, default_value = "autotask")]
    pub psa: String,
    /// Pending deliveries loaded before the backlog scenario measures (the fairness scenario
    /// loads half of it on the burst partner).
    #[arg(long, default_value_t = 1_000_000)]
    pub preload: u64,
    /// Run the product on a fresh database made on this PostgreSQL server (and dropped
    /// after) instead of SQLite.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Open tickets the sweep scenario leaves, and seconds it then watches the idle product.
    #[arg(long, default_value_t = 60)]
    pub sweep_open: usize,
    #[arg(long, default_value_t = 120)]
    pub sweep_secs: u64,
    /// The connection's request budget (per hour) in the sweep scenario: Kaseya BMS allows
    /// 1,500 an hour per endpoint, of which we take 1,200.
    #[arg(long, default_value_t = 1200)]
    pub sweep_budget_per_hour: u32,
    /// The portal scenario: clients of the partner, more companies in the PSA, requests of
    /// each page.
    #[arg(long, default_value_t = 2000)]
    pub portal_clients: usize,
    #[arg(long, default_value_t = 20_000)]
    pub portal_companies: u64,
    #[arg(long, default_value_t = 200)]
    pub portal_requests: usize,
    /// The billing scenario: clients with a contract and usage, synced three times.
    #[arg(long, default_value_t = 10_000)]
    pub billing_clients: u64,
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_line_matching(child: &mut Child, what: &str, deadline: Duration) -> Result<String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + deadline;
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains(what) => {
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Ok(l);
            }
            Ok(_) => {}
            Err(_) => bail!("a child process did not start in {deadline:?}"),
        }
    }
}

/// The system under test: a simulator process and a product process.
struct Sut {
    _sim: Proc,
    product: Proc,
    sim_url: String,
    api: String,
    token: String,
    /// demo.json: every demo partner with its token and connection.
    info: Value,
    db_url: String,
    pg: Option<psabridge_store::testing::TestDatabase>,
    _dir: tempfile::TempDir,
}

impl Sut {
    async fn start(
        args: &BenchArgs,
        sim_latency_ms: u64,
        requests_per_hour: Option<u32>,
        sim_hourly_limit: u32,
    ) -> Result<Sut> {
        Sut::start_with(
            args,
            sim_latency_ms,
            requests_per_hour,
            sim_hourly_limit,
            &[],
        )
        .await
    }

    /// [`Sut::start`] with more demo partners, on PSAs whose simulators run inside the
    /// product (without added latency).
    async fn start_with(
        args: &BenchArgs,
        sim_latency_ms: u64,
        requests_per_hour: Option<u32>,
        sim_hourly_limit: u32,
        more_psas: &[&str],
    ) -> Result<Sut> {
        let exe = std::env::current_exe()?;
        let kind = psabridge_core::settings::PsaKind::parse(&args.psa).with_context(|| {
            format!(
                "--psa: '{}' is not a PSA (autotask, halopsa, kaseya_bms, connectwise)",
                args.psa
            )
        })?;
        let mut sim_cmd = Command::new(&exe);
        sim_cmd
            .args([
                "sim",
                &kind.as_str().replace('_', "-"),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--latency-ms", &sim_latency_ms.to_string()])
            .env("PSABRIDGE_LOG", "error")
            .stdout(Stdio::piped());
        sim_cmd.args(["--hourly-limit", &sim_hourly_limit.to_string()]);
        let mut sim = sim_cmd.spawn()?;
        let line = first_line_matching(&mut sim, "base_url", Duration::from_secs(30))?;
        let sim_url = serde_json::from_str::<Value>(&line)?["base_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let sim = Proc(sim);
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(&exe);
        let sim_flag = match kind {
            psabridge_core::settings::PsaKind::Autotask => "--sim-url".to_string(),
            other => format!("--{}-sim-url", other.as_str().replace('_', "-")),
        };
        cmd.args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--sim-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--psa",
            kind.as_str(),
            &sim_flag,
            &sim_url,
            "--sqlite-synchronous",
            &args.sqlite_synchronous,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("PSABRIDGE_LOG", "error")
        .stdout(Stdio::piped());
        if let Some(r) = requests_per_hour {
            cmd.args(["--psa-requests-per-hour", &r.to_string()]);
        }
        for p in more_psas {
            cmd.args(["--psa", p]);
        }
        let pg = match &args.postgres {
            Some(admin) => Some(psabridge_store::testing::TestDatabase::create(admin).await?),
            None => None,
        };
        let db_url = match &pg {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("psabridge.db").display()),
        };
        if pg.is_some() {
            cmd.args(["--database-url", &db_url]);
        }
        let mut product = cmd.spawn()?;
        first_line_matching(&mut product, "demo is running", Duration::from_secs(60))?;
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo.json"))?)?;
        Ok(Sut {
            _sim: sim,
            product: Proc(product),
            sim_url,
            api: info["api_url"].as_str().unwrap_or_default().to_string(),
            token: info["partners"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["psa"] == kind.as_str())
                .and_then(|p| p["api_token"].as_str())
                .unwrap_or_default()
                .to_string(),
            info,
            db_url,
            pg,
            _dir: dir,
        })
    }

    /// A demo partner (by PSA): its connection id and API token.
    fn partner(&self, psa: &str) -> (i64, String, String) {
        let p = self.info["partners"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["psa"] == psa)
            .cloned()
            .unwrap_or(Value::Null);
        (
            p["connection"].as_i64().unwrap_or_default(),
            p["api_token"].as_str().unwrap_or_default().to_string(),
            p["id"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// The product's database, opened by the bench (to load a backlog, to time claims).
    async fn store(&self) -> Result<psabridge_store::Store> {
        let keys =
            psabridge_store::seal::KeyRing::parse(&psabridge_store::seal::KeyRing::generate_key())
                .map_err(|e| anyhow::anyhow!(e))?;
        Ok(
            psabridge_store::Store::open(&psabridge_store::StoreOptions::new(&self.db_url), keys)
                .await?,
        )
    }

    /// CPU time of the product process so far (user + system), from /proc.
    fn cpu_time(&self) -> Duration {
        cpu_time(self.product.0.id())
    }

    async fn drop_database(self) {
        let pg = self.pg;
        drop(self.product);
        if let Some(db) = pg {
            db.drop_database().await;
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.product.0.id())
    }
}

/// Resident memory of a process in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of a process, from /proc/<pid>/stat (Linux, 100 ticks a second).
fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command (which may hold spaces) start after the last ')'.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: u64 = rest.get(11)?.parse().ok()?;
            let stime: u64 = rest.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn event(i: u64, prefix: &str) -> Value {
    const TYPES: [&str; 4] = [
        "saas.too_many_downloads",
        "saas.too_many_uploads",
        "saas.multiple_mfa_failures",
        "email.bounced",
    ];
    const CLIENTS: [&str; 4] = ["client-001", "client-002", "client-003", "client-004"];
    json!({
        "id": format!("{prefix}-{i}"),
        "client": CLIENTS[(i % 4) as usize],
        "type": TYPES[(i / 4 % 4) as usize],
        "severity": "high",
        "user": {"email": format!("user{}@example.test", i % 200), "name": "Bench User"},
        "details": "benchmark event",
        "data": {"files": i % 1000, "app": "OneDrive"},
    })
}

struct Load {
    events: u64,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
    peak_rss_kib: u64,
}

/// Drive the ingestion endpoint with `concurrency` producers for `duration`, `batch` events a request.
async fn ingest_load(sut: &Sut, args: &BenchArgs, batch: usize) -> Result<Load> {
    ingest_load_as(sut, args, batch, "b").await
}

/// [`ingest_load`] with event ids starting `prefix` (a second run in one product must not
/// repeat the first's ids).
async fn ingest_load_as(
    sut: &Sut,
    args: &BenchArgs,
    batch: usize,
    prefix: &'static str,
) -> Result<Load> {
    let http = client()?;
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let url = format!("{}/api/v1/events", sut.api);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, stop, next, errors, hist, url, token) = (
            http.clone(),
            stop.clone(),
            next.clone(),
            errors.clone(),
            hist.clone(),
            url.clone(),
            sut.token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                let body = if batch == 1 {
                    event(first, prefix)
                } else {
                    json!({"events": (first..first + batch as u64).map(|i| event(i, prefix)).collect::<Vec<_>>()})
                };
                let t = Instant::now();
                let ok = matches!(
                    http.post(&url).bearer_auth(&token).json(&body).send().await,
                    Ok(r) if r.status().as_u16() == 202
                );
                let us = t.elapsed().as_micros() as u64;
                if ok {
                    let _ = local.record(us.max(1));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = hist.lock().await.add(&local);
        }));
    }
    let mut peak = 0;
    let end = start + Duration::from_secs(args.duration_secs);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(sut.rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed();
    let hist = Arc::try_unwrap(hist)
        .map_err(|_| anyhow::anyhow!("histogram still shared"))?
        .into_inner();
    let requests = hist.len();
    Ok(Load {
        events: requests * batch as u64,
        requests,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        hist,
        peak_rss_kib: peak,
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn scenario_ingest(args: &BenchArgs, batch: usize) -> Result<Value> {
    let sut = Sut::start(args, 0, Some(5000), 10_000).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sut.rss_kib();
    let load = ingest_load(&sut, args, batch).await?;
    let rate = load.events as f64 / load.elapsed.as_secs_f64();
    let name = if batch == 1 {
        "ingest (single events)"
    } else {
        "ingest (batches)"
    };
    println!(
        "{name}: {rate:.0} events/s accepted ({} requests of {batch}, {} errors, {} producers, {:.1} s); \
         ack latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; RSS idle {} KiB, peak {} KiB",
        load.requests,
        load.errors,
        args.concurrency,
        load.elapsed.as_secs_f64(),
        ms(load.hist.value_at_quantile(0.5)),
        ms(load.hist.value_at_quantile(0.99)),
        ms(load.hist.value_at_quantile(0.999)),
        ms(load.hist.max()),
        idle,
        load.peak_rss_kib,
    );
    Ok(json!({
        "scenario": name, "batch": batch, "events_per_sec": rate.round(), "requests": load.requests,
        "errors": load.errors, "p50_ms": ms(load.hist.value_at_quantile(0.5)),
        "p99_ms": ms(load.hist.value_at_quantile(0.99)), "p999_ms": ms(load.hist.value_at_quantile(0.999)),
        "idle_rss_kib": idle, "peak_rss_kib": load.peak_rss_kib, "sqlite_synchronous": args.sqlite_synchronous,
    }))
}

async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> Result<Value> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Ok(req.send().await?.json().await?)
}

/// PSA requests the simulator has served, from its stats.
async fn sim_requests(http: &reqwest::Client, sim_url: &str) -> Result<u64> {
    let v = get_json(http, &format!("{sim_url}/_sim/stats"), None).await?;
    v["requests"]
        .as_u64()
        .or_else(|| v["total_requests"].as_u64())
        .context("the simulator's stats have no total")
}

/// The product's metrics (its own listener, never the API port).
async fn scrape(http: &reqwest::Client, sut: &Sut) -> Result<String> {
    let url = sut.info["metrics_url"]
        .as_str()
        .context("the demo serves no metrics (demo.json has no metrics_url)")?;
    Ok(http.get(url).send().await?.text().await?)
}

/// The sum of a metric's series whose labels satisfy `keep` (given the label text).
fn metric_sum(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> u64 {
    text.lines()
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = match series.split_once('{') {
                Some((n, rest)) if n == name => rest,
                None if series == name => "",
                _ => return None,
            };
            keep(labels).then(|| value.parse::<f64>().ok())?
        })
        .sum::<f64>() as u64
}

/// Wait until no delivery is pending; the number delivered (by this process of the product).
async fn drain(http: &reqwest::Client, sut: &Sut, expect: u64, timeout: Duration) -> Result<u64> {
    let end = Instant::now() + timeout;
    // Gauges are sampled at most once a second: believe "nothing open" only from a scrape
    // made well after the first one that said so.
    let mut quiet_since: Option<Instant> = None;
    loop {
        let text = scrape(http, sut).await?;
        let delivered = metric_sum(&text, "psabridge_deliveries_total", |l| {
            !["\"retry\"", "\"dead\"", "\"expired\""]
                .iter()
                .any(|o| l.contains(&format!("outcome={o}")))
        });
        let dead = metric_sum(&text, "psabridge_deliveries_total", |l| {
            l.contains("outcome=\"dead\"")
        });
        let open = metric_sum(&text, "psabridge_deliveries_pending", |_| true)
            + metric_sum(&text, "psabridge_events_unrouted", |_| true);
        if delivered + dead >= expect && open == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(1100) {
                if dead > 0 {
                    eprintln!("warning: {dead} deliveries are dead");
                }
                return Ok(delivered);
            }
        } else {
            quiet_since = None;
        }
        if Instant::now() > end {
            bail!("deliveries did not drain in {timeout:?}: {delivered} delivered, {open} open");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The mixed workload: users of mapped and unmapped clients, several alert types, resolves,
/// events without a user, and tickets completed by technicians along the way.
fn mixed_event(i: usize) -> Value {
    const TYPES: [&str; 6] = [
        "saas.too_many_downloads",
        "saas.too_many_uploads",
        "saas.multiple_mfa_failures",
        "saas.login_from_new_country",
        "dark_web.breach_report",
        "email.bounced",
    ];
    const CLIENTS: [&str; 4] = ["client-001", "client-002", "client-003", "client-004"];
    let user = (i * 7919) % 150;
    let mut e = json!({
        "id": format!("m-{i}"),
        "client": CLIENTS[user % 4],
        "type": TYPES[(i * 31) % 6],
        "action": if i % 20 == 19 { "resolve" } else { "trigger" },
    });
    if !i.is_multiple_of(10) {
        e["user"] = json!({"email": format!("person{user}@example.test")});
    }
    e
}

async fn scenario_economy(args: &BenchArgs) -> Result<Value> {
    let sut = Sut::start(args, 0, Some(1_000_000), 1_000_000).await?;
    let http = client()?;
    let before = sim_requests(&http, &sut.sim_url).await?;
    let n = args.economy_events;
    let mut completed = 0;
    for (k, chunk) in (0..n).collect::<Vec<_>>().chunks(200).enumerate() {
        let body = json!({"events": chunk.iter().map(|&i| mixed_event(i)).collect::<Vec<_>>()});
        let r = http
            .post(format!("{}/api/v1/events", sut.api))
            .bearer_auth(&sut.token)
            .json(&body)
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("posting the workload: {}", r.text().await?);
        }
        // Now and then a technician completes some open tickets.
        if k % 5 == 4 {
            drain(&http, &sut, 0, Duration::from_secs(120)).await?;
            let tickets = get_json(
                &http,
                &format!("{}/_sim/tickets?open=true&limit=10", sut.sim_url),
                None,
            )
            .await
            .ok();
            for t in tickets
                .iter()
                .flat_map(|v| v["tickets"].as_array().cloned().unwrap_or_default())
                .take(10)
            {
                if let Some(id) = t["id"].as_str() {
                    let _ = http
                        .post(format!("{}/_sim/tickets/{id}/close", sut.sim_url))
                        .send()
                        .await;
                    completed += 1;
                }
            }
        }
    }
    let delivered = drain(&http, &sut, n as u64, Duration::from_secs(600)).await?;
    let after = sim_requests(&http, &sut.sim_url).await?;
    let calls = after - before;
    let per_event = calls as f64 / delivered as f64;
    let metrics = scrape(&http, &sut).await?;
    let metric = |outcome: &str| {
        metric_sum(&metrics, "psabridge_deliveries_total", |l| {
            l.contains(&format!("outcome=\"{outcome}\""))
        })
    };
    println!(
        "economy (mixed workload): {n} events, {delivered} deliveries; {calls} PSA requests = {per_event:.3} per delivered event \
         (tickets created {}, notes {}, tickets completed by the test {completed})",
        metric("created"),
        metric("noted") + metric("closed"),
    );
    // Where the requests went (whole run, set-up included), for explaining anything above 1.
    let stats = get_json(&http, &format!("{}/_sim/stats", sut.sim_url), None).await?;
    let by_endpoint = stats.get("by_endpoint").cloned().unwrap_or(Value::Null);
    // (Each simulator names its breakdowns: by endpoint, by outcome or status.)
    for (key, m) in stats
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_object().map(|m| (k, m)))
    {
        let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {key}: {}", list.join(", "));
    }
    Ok(
        json!({"scenario": "economy", "events": n, "deliveries": delivered, "psa_requests": calls,
              "psa_requests_per_delivered_event": (per_event * 1000.0).round() / 1000.0,
              "tickets_completed_by_test": completed, "requests_by_endpoint": by_endpoint}),
    )
}

async fn scenario_latency(args: &BenchArgs) -> Result<Value> {
    // Autotask's limits as a real MSP has them: 10,000 an hour, our share 5,000.
    let sut = Sut::start(args, args.psa_latency_ms, Some(5000), 10_000).await?;
    let http = client()?;
    let total = args.latency_rate * args.latency_secs;
    let gap = Duration::from_secs_f64(1.0 / args.latency_rate as f64);
    let start = Instant::now();
    let mut ids = Vec::new();
    for i in 0..total as usize {
        let target = start + gap * i as u32;
        tokio::time::sleep_until(target.into()).await;
        let e = mixed_event(i);
        ids.push(e["id"].as_str().unwrap_or_default().to_string());
        let r = http
            .post(format!("{}/api/v1/events", sut.api))
            .bearer_auth(&sut.token)
            .json(&e)
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("posting: {}", r.text().await?);
        }
    }
    drain(&http, &sut, total, Duration::from_secs(600)).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
    for id in &ids {
        let e = get_json(
            &http,
            &format!("{}/api/v1/events/{id}", sut.api),
            Some(&sut.token),
        )
        .await?;
        let received =
            chrono::DateTime::parse_from_rfc3339(e["received_at"].as_str().unwrap_or_default());
        for d in e["deliveries"].as_array().into_iter().flatten() {
            if let (Ok(r), Some(done)) = (&received, d["delivered_at"].as_str())
                && let Ok(done) = chrono::DateTime::parse_from_rfc3339(done)
            {
                let _ = hist.record(((done - *r).num_milliseconds().max(1)) as u64);
            }
        }
    }
    println!(
        "event-to-ticket latency ({} events at {}/s, simulator latency {} ms/request, {} limits on): \
         p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        hist.len(),
        args.latency_rate,
        args.psa_latency_ms,
        psabridge_core::settings::PsaKind::parse(&args.psa)
            .map_or(args.psa.as_str(), |k| k.display_name()),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    Ok(
        json!({"scenario": "latency", "events": hist.len(), "rate_per_sec": args.latency_rate,
              "psa_latency_ms": args.psa_latency_ms, "p50_ms": hist.value_at_quantile(0.5),
              "p90_ms": hist.value_at_quantile(0.9), "p99_ms": hist.value_at_quantile(0.99), "max_ms": hist.max()}),
    )
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let all = args.scenario == "all";
    let mut results = Vec::new();
    if all || args.scenario == "ingest" {
        results.push(scenario_ingest(&args, 1).await?);
    }
    if all || args.scenario == "batch" {
        results.push(scenario_ingest(&args, 1000).await?);
    }
    if all || args.scenario == "economy" {
        results.push(scenario_economy(&args).await?);
    }
    if all || args.scenario == "latency" {
        results.push(scenario_latency(&args).await?);
    }
    if args.scenario == "backlog" {
        results.push(backlog::scenario_backlog(&args).await?);
    }
    if args.scenario == "fairness" {
        results.push(backlog::scenario_fairness(&args).await?);
    }
    if args.scenario == "nodes" {
        results.push(nodes::scenario_nodes(&args).await?);
    }
    if args.scenario == "sweep" {
        results.push(sweep::scenario_sweep(&args).await?);
    }
    if args.scenario == "portal" {
        results.push(portal::scenario_portal(&args).await?);
    }
    if args.scenario == "billing" {
        results.push(billing::scenario_billing(&args).await?);
    }
    if results.is_empty() {
        bail!(
            "--scenario: '{}' is not all, ingest, batch, economy, latency, backlog, fairness, nodes, sweep, portal or billing",
            args.scenario
        );
    }
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}
