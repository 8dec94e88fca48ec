//! The rolling request window and faults on demand.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{body, start};

#[tokio::test]
async fn the_rolling_window_answers_429_with_retry_after() -> Result<()> {
    let t = start(Config {
        rate_limit: 4,
        rate_window_secs: 120,
        ..Config::default()
    })
    .await?;
    // The token request counted as one.
    for _ in 0..3 {
        t.get("Status").await?;
    }
    let r = t
        .http
        .get(format!("{}/api/Status", t.sim.base_url()))
        .bearer_auth(&t.token)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = r.headers()["retry-after"].to_str()?.parse()?;
    ensure!((1..=120).contains(&after), "{after}");
    let (_, v) = body(r).await?;
    ensure!(
        v == "Rate Limit Reached - 4 Requests per rolling 2 minute window",
        "{v}"
    );
    let (s, _) = t.control(Method::GET, "stats", None).await?;
    ensure!(s == StatusCode::OK, "the control surface is never limited");
    Ok(())
}

#[tokio::test]
async fn status_faults_with_filters_and_counts() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "status", "status": 503, "count": 1, "method": "GET", "path_contains": "/tickets"}))
        .await?;
    t.get("Status").await?;
    let (s, v) = t.call(Method::GET, "Tickets", None).await?;
    ensure!(
        s == StatusCode::SERVICE_UNAVAILABLE && v["Message"].is_string(),
        "{s} {v}"
    );
    t.get("Tickets").await?;
    t.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 7, "entity": "Tickets"}))
        .await?;
    let r = t
        .http
        .get(format!("{}/api/tickets", t.sim.base_url()))
        .bearer_auth(&t.token)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS && r.headers()["retry-after"] == "7");
    let (_, list) = t.control(Method::GET, "faults", None).await?;
    ensure!(list["faults"].as_array().map(Vec::len) == Some(1), "{list}");
    let (s, _) = t.control(Method::DELETE, "faults", None).await?;
    ensure!(s == StatusCode::NO_CONTENT);
    t.get("Tickets").await?;
    let (s, _) = t
        .control(
            Method::POST,
            "faults",
            Some(json!({"kind": "status", "status": 200})),
        )
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST, "not an error status");
    Ok(())
}

#[tokio::test]
async fn connection_faults() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "drop", "count": 1})).await?;
    ensure!(
        t.call(Method::GET, "Status", None).await.is_err(),
        "dropped"
    );
    t.get("Status").await?;
    t.fault(json!({"kind": "delay", "delay_ms": 300, "count": 1}))
        .await?;
    let start = Instant::now();
    t.get("Status").await?;
    ensure!(start.elapsed() >= Duration::from_millis(300));
    t.fault(json!({"kind": "timeout", "hold_ms": 200, "count": 1}))
        .await?;
    ensure!(
        t.call(Method::GET, "Status", None).await.is_err(),
        "held, then cut"
    );

    // After commit: the ticket is made, the answer never comes.
    t.fault(json!({"kind": "after_commit", "method": "POST", "entity": "Tickets", "count": 1}))
        .await?;
    let r = t
        .call(Method::POST, "Tickets", Some(json!([{"summary": "lost answer", "client_id": 12, "supplier_reference": "LOST-1"}])))
        .await;
    ensure!(r.is_err(), "{r:?}");
    let found = t.get("Tickets?search_supplier_reference=LOST-1").await?;
    ensure!(found["record_count"] == 1, "{found}");
    Ok(())
}
