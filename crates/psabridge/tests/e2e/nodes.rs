//! Running as a node: liveness and readiness, and a polite stop (SIGTERM) that drains
//! in-flight work, leaves nothing leased, and loses or doubles nothing after a restart.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use psabridge_core::settings::PsaKind;
use serde_json::{Value, json};

use crate::faults::{check_exactly_once, creates, post_all, workload};
use crate::harness::{Db, Node, Product, Sim};
use crate::on_both;

/// Run one SQL statement against the product's database; returns rows affected or the
/// single integer it selects.
async fn sql(p: &Product, query: &str) -> Result<i64> {
    use sqlx::Row;
    if let Some(url) = &p.db_url {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
        if query.starts_with("SELECT") {
            let row = sqlx::query(sqlx::AssertSqlSafe(query))
                .fetch_one(&mut c)
                .await?;
            return Ok(row.try_get::<i64, _>(0)?);
        }
        return Ok(sqlx::query(sqlx::AssertSqlSafe(query))
            .execute(&mut c)
            .await?
            .rows_affected() as i64);
    }
    let url = format!("sqlite://{}", p.dir.join("psabridge.db").display());
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
    if query.starts_with("SELECT") {
        let row = sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_one(&mut c)
            .await?;
        return Ok(row.try_get::<i64, _>(0)?);
    }
    Ok(sqlx::query(sqlx::AssertSqlSafe(query))
        .execute(&mut c)
        .await?
        .rows_affected() as i64)
}

async fn live_and_ready(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "live_and_ready").await? else {
        return Ok(());
    };
    let get = |path: &str| p.http.get(format!("{}{path}", p.api())).send();
    let live = get("/livez").await?;
    ensure!(live.status() == 200, "livez: {}", live.status());
    let ready = get("/readyz").await?;
    ensure!(ready.status() == 200, "readyz: {}", ready.status());

    // Someone rolled the schema back: the node is live but not ready, and says why.
    let n = sql(&p, "DELETE FROM _sqlx_migrations WHERE version = 14").await?;
    ensure!(n == 1, "the cluster migration was recorded");
    let live = get("/livez").await?;
    ensure!(live.status() == 200, "still live: {}", live.status());
    let ready = get("/readyz").await?;
    ensure!(ready.status() == 503, "readyz: {}", ready.status());
    let ct = ready
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(ct.starts_with("application/problem+json"), "{ct}");
    let body: Value = ready.json().await?;
    ensure!(body["errors"][0]["path"] == "migrations", "{body}");
    ensure!(
        body["detail"].as_str().unwrap_or_default().contains("0014"),
        "names the missing migration: {body}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(live_and_ready);

async fn sigterm_drains_then_restart_delivers_exactly_once(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(mut p) =
        Product::start_with(&sim, db, "sigterm_drains", &["--drain-timeout-secs", "3"]).await?
    else {
        return Ok(());
    };
    // Two creates that the PSA never answers, so the drain must give their claims back rather
    // than wait; and a slow PSA, so the burst is in flight when the signal comes.
    sim.fault(creates(
        PsaKind::Autotask,
        json!({"kind": "timeout", "hold_ms": 60000, "count": 2}),
    ))
    .await?;
    // (The first rule that matches a request applies: the held creates come first.)
    sim.fault(json!({"kind": "delay", "delay_ms": 150})).await?;
    let events = workload("term", 150, 30);
    let acked = post_all(&p, &events).await?;
    ensure!(acked.len() == 150);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let status = p.sigterm_and_wait(Duration::from_secs(30))?;
    let took = started.elapsed();
    ensure!(status.success(), "exit status {status:?}");
    ensure!(
        took < Duration::from_secs(15),
        "the drain is bounded: {took:?}"
    );
    let leased = sql(
        &p,
        "SELECT COUNT(*) FROM deliveries WHERE state = 'in_flight' OR lease_owner IS NOT NULL",
    )
    .await?;
    ensure!(
        leased == 0,
        "{leased} deliveries left leased after the drain"
    );
    let delivered = sql(
        &p,
        "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'",
    )
    .await?;
    if delivered == 150 {
        bail!("the burst was over before the signal; the test proves nothing");
    }
    sim.clear_faults().await?;
    p.launch()?;
    check_exactly_once(&sim, &p, &acked, Duration::from_secs(180)).await?;
    p.cleanup().await;
    Ok(())
}
on_both!(sigterm_drains_then_restart_delivers_exactly_once);

/// SQLite is one node: a second process serving the same database file is refused at start,
/// with a message naming the lock and what to do; the first goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_one_sqlite_file_is_refused() -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, Db::Sqlite, "second_sqlite_process").await? else {
        return Ok(());
    };
    let out = tokio::task::spawn_blocking({
        let dir = p.dir.clone();
        let sim_url = sim.base_url.clone();
        move || {
            std::process::Command::new(crate::harness::BIN)
                .args([
                    "demo",
                    "--listen",
                    "127.0.0.1:0",
                    "--sim-listen",
                    "127.0.0.1:0",
                ])
                .args(["--sim-url", &sim_url, "--data-dir"])
                .arg(&dir)
                .env("PSABRIDGE_LOG", "error")
                .output()
        }
    })
    .await??;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "the second process started: {err}");
    ensure!(
        err.contains("in use by another PSA Bridge process") && err.contains("psabridge.db.lock"),
        "the refusal says why: {err}"
    );
    let live = p.http.get(format!("{}/readyz", p.api())).send().await?;
    ensure!(live.status() == 200, "the first process still serves");
    p.cleanup().await;
    Ok(())
}

/// Three `serve` nodes on one PostgreSQL database deliver to one HaloPSA whose limit the three
/// of them would overrun if each kept its own budget: the connection's share is 330 requests
/// per 5 minutes, which the cluster spends at most 30 per 30-second slice; the simulator
/// allows 75 per rolling 30 seconds. Each node alone may send its whole share at once, so
/// three unshared nodes (or one) would burst the backlog's requests well past 75 and be
/// refused. Shared, not one 429, and every event is a ticket or a note exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_stay_inside_one_psa_limit() -> Result<()> {
    const SIM_LIMIT: u64 = 75;
    let sim = Sim::start_psa_with(
        PsaKind::HaloPsa,
        &["--rate-limit", "75", "--rate-window-secs", "30"],
    )
    .await?;
    // 330 per 5 minutes is 3,960 an hour.
    let Some(mut p) = Product::start_with(
        &sim,
        Db::Postgres,
        "three_nodes_one_limit",
        &["--psa", "halopsa", "--psa-requests-per-hour", "3960"],
    )
    .await?
    else {
        return Ok(());
    };
    // The demo seeded the database and the key; three plain nodes serve it from now on.
    p.stop();
    // The seeding's requests leave the simulator's window before the nodes start.
    let end = Instant::now() + Duration::from_secs(45);
    while sim.stats().await?["rate_limit"]["used"].as_u64() != Some(0) {
        ensure!(
            Instant::now() < end,
            "the simulator's window never emptied: {}",
            sim.stats().await?
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before = sim.stats().await?;
    let mut nodes = Vec::new();
    for n in 1..=3 {
        nodes.push(Node::start(&p, &format!("node-{n}"), "concurrency = 8").await?);
    }

    // The burst: each node acknowledges a third of it.
    let events = workload("nodes", 60, 20);
    let mut acked = Vec::new();
    for (i, chunk) in events.chunks(20).enumerate() {
        p.use_api(&nodes[i % nodes.len()].api);
        acked.extend(post_all(&p, chunk).await?);
    }
    ensure!(acked.len() == events.len(), "acknowledged {}", acked.len());
    p.use_api(&nodes[0].api);
    check_exactly_once(&sim, &p, &acked, Duration::from_secs(300)).await?;

    let after = sim.stats().await?;
    let sent = after["requests"].as_u64().unwrap_or(0) - before["requests"].as_u64().unwrap_or(0);
    let refused =
        after["rate_limited"].as_u64().unwrap_or(0) - before["rate_limited"].as_u64().unwrap_or(0);
    eprintln!("three nodes: {sent} requests to the simulator, {refused} refused with 429");
    ensure!(
        sent > SIM_LIMIT,
        "the burst needs more than the simulator's window allows ({sent} requests), or the test proves nothing"
    );
    ensure!(
        refused == 0,
        "{refused} requests refused with 429: the budget was not shared"
    );

    // Counted at the PSA: one ticket per group and one note per later event of the group.
    let tickets = sim.our_tickets().await?;
    let mut notes = 0;
    for t in &tickets {
        let id = t["id"].to_string().trim_matches('"').to_string();
        notes += sim.notes_of(&id).await?.len();
    }
    ensure!(
        tickets.len() + notes == acked.len(),
        "{} tickets and {notes} notes for {} events",
        tickets.len(),
        acked.len()
    );
    drop(nodes);
    p.cleanup().await;
    Ok(())
}
