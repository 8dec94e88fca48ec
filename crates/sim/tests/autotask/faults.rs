//! Faults on demand, and the control surface they are managed through.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use psabridge_sim::autotask::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{T, body, err, start};

async fn get_company(t: &T) -> Result<reqwest::Response> {
    Ok(t.request(
        Method::GET,
        &format!("{}V1.0/Companies/0", t.sim.zone_url()),
    )
    .send()
    .await?)
}

#[tokio::test]
async fn status_and_html_faults() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 2, "count": 2}))
        .await?;
    for _ in 0..2 {
        let r = get_company(&t).await?;
        ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS && r.headers()["retry-after"] == "2");
        let (_, v) = body(r).await?;
        ensure!(v["errors"].is_array(), "{v}");
    }
    ensure!(
        get_company(&t).await?.status() == StatusCode::OK,
        "count: 2 hits twice"
    );
    for status in [500u16, 502, 503] {
        t.fault(json!({"kind": "status", "status": status, "count": 1}))
            .await?;
        let (s, v) = body(get_company(&t).await?).await?;
        ensure!(s.as_u16() == status && !err(&v).is_empty(), "{s} {v}");
        ensure!(get_company(&t).await?.status() == StatusCode::OK);
    }
    t.fault(json!({"kind": "html", "status": 503, "count": 1}))
        .await?;
    let r = get_company(&t).await?;
    ensure!(r.status() == StatusCode::SERVICE_UNAVAILABLE);
    ensure!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    let (_, v) = body(r).await?;
    ensure!(
        v.as_str()
            .is_some_and(|h| h.contains("<html") && h.contains("503")),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn filters_by_entity_method_and_path() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "status", "status": 500, "entity": "Tickets", "method": "POST"}))
        .await?;
    ensure!(
        get_company(&t).await?.status() == StatusCode::OK,
        "another entity"
    );
    let (s, _) = t.call(Method::GET, "Tickets/1", None).await?;
    ensure!(s == StatusCode::OK, "another method");
    let (s, _) = t.call(Method::POST, "Tickets", Some(json!({}))).await?;
    ensure!(s == StatusCode::INTERNAL_SERVER_ERROR);
    let (_, list) = t.control(Method::GET, "faults", None).await?;
    ensure!(list["faults"].as_array().map(Vec::len) == Some(1), "{list}");
    t.control(Method::DELETE, "faults", None).await?;
    let id = t.new_ticket("faults cleared").await?;
    // Child routes count as the child entity.
    t.fault(json!({"kind": "status", "status": 503, "entity": "TicketNotes"}))
        .await?;
    let (s, _) = t
        .call(
            Method::POST,
            &format!("Tickets/{id}/Notes"),
            Some(json!({"description": "d", "noteType": 1, "publish": 1})),
        )
        .await?;
    ensure!(s == StatusCode::SERVICE_UNAVAILABLE);
    t.control(Method::DELETE, "faults", None).await?;
    t.fault(json!({"kind": "status", "status": 502, "path_contains": "/query/COUNT"}))
        .await?;
    let (s, _) = t
        .call(
            Method::POST,
            "Tickets/query/count",
            Some(json!({"filter": []})),
        )
        .await?;
    ensure!(s == StatusCode::BAD_GATEWAY);
    let (s, _) = t
        .call(Method::POST, "Tickets/query", Some(json!({"filter": []})))
        .await?;
    ensure!(s == StatusCode::OK);
    // Faults never touch the control surface.
    let (s, _) = t.control(Method::GET, "stats", None).await?;
    ensure!(s == StatusCode::OK);
    t.control(Method::DELETE, "faults", None).await?;
    t.fault(json!({"kind": "drop"})).await?;
    let (s, v) = t.control(Method::GET, "faults", None).await?;
    ensure!(
        s == StatusCode::OK && v["faults"][0]["kind"] == "drop",
        "{v}"
    );
    t.control(Method::DELETE, "faults", None).await?;
    // Rules that cannot work are refused.
    for bad in [
        json!({"kind": "explode"}),
        json!({"kind": "status", "status": 200}),
        json!({"kind": "drop", "probability": 2.0}),
        json!({"kind": "drop", "colour": "red"}),
    ] {
        let (s, _) = t.control(Method::POST, "faults", Some(bad.clone())).await?;
        ensure!(s == StatusCode::BAD_REQUEST, "{bad}");
    }
    Ok(())
}

#[tokio::test]
async fn probability_is_seeded() -> Result<()> {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let t = start(Config::default()).await?;
        t.fault(json!({"kind": "status", "status": 503, "probability": 0.5, "seed": 42}))
            .await?;
        let mut pattern = Vec::new();
        for _ in 0..40 {
            pattern.push(get_company(&t).await?.status() == StatusCode::SERVICE_UNAVAILABLE);
        }
        runs.push(pattern);
    }
    let hits = runs[0].iter().filter(|h| **h).count();
    ensure!((8..=32).contains(&hits), "about half: {hits}");
    ensure!(runs[0] == runs[1], "the same seed hits the same requests");
    Ok(())
}

#[tokio::test]
async fn connection_faults() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "delay", "delay_ms": 400, "count": 1}))
        .await?;
    let start_at = Instant::now();
    ensure!(get_company(&t).await?.status() == StatusCode::OK);
    ensure!(
        start_at.elapsed() >= Duration::from_millis(400),
        "delayed, then answered"
    );

    t.fault(json!({"kind": "drop", "count": 1})).await?;
    let r = get_company(&t).await;
    ensure!(r.is_err(), "closed without an answer: {r:?}");
    ensure!(
        get_company(&t).await?.status() == StatusCode::OK,
        "the next request is served"
    );

    t.fault(json!({"kind": "timeout", "hold_ms": 5000, "count": 1}))
        .await?;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let r = quick
        .get(format!("{}V1.0/Companies/0", t.sim.zone_url()))
        .header("ApiIntegrationCode", &t.code)
        .header("UserName", &t.user)
        .header("Secret", &t.secret)
        .send()
        .await;
    ensure!(
        r.is_err_and(|e| e.is_timeout()),
        "held open without an answer"
    );
    t.fault(json!({"kind": "timeout", "hold_ms": 300, "count": 1}))
        .await?;
    let r = get_company(&t).await;
    ensure!(
        r.is_err(),
        "after holding, the connection closes unanswered"
    );

    t.fault(json!({"kind": "after_commit", "count": 1, "entity": "Tickets", "method": "POST"}))
        .await?;
    let r = t
        .call(
            Method::POST,
            "Tickets",
            Some(
                json!({"companyID": 29684101, "title": "lost answer", "status": 1, "priority": 2}),
            ),
        )
        .await;
    ensure!(r.is_err(), "no answer: {r:?}");
    let found = t
        .items(
            "Tickets",
            json!([{"op": "eq", "field": "title", "value": "lost answer"}]),
        )
        .await?;
    ensure!(found.len() == 1, "the write was carried out: {found:?}");

    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(
        stats["by_outcome"]["dropped"] == 1 && stats["by_outcome"]["held"] == 2,
        "{stats}"
    );
    ensure!(
        stats["total_requests"].as_u64().unwrap_or(0) >= 7
            && stats["by_entity"]["Tickets"]["POST"] == 2,
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn technician_actions_and_reset() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = t.new_ticket("needs a technician").await?;
    let (s, v) = t
        .control(
            Method::POST,
            &format!("tickets/{id}/update"),
            Some(json!({"status": 8, "priority": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::OK
            && v["ticket"]["status"] == 8
            && v["ticket"]["lastActivityResourceID"] == 29682886,
        "{v}"
    );
    let (s, v) = t
        .control(
            Method::POST,
            &format!("tickets/{id}/update"),
            Some(json!({"status": 999})),
        )
        .await?;
    ensure!(
        s == StatusCode::UNPROCESSABLE_ENTITY,
        "checked like an API write: {v}"
    );
    let (s, v) = t
        .control(
            Method::POST,
            &format!("tickets/{id}/notes"),
            Some(json!({"description": "Rebooted the server."})),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v["note"]["creatorResourceID"] == 29682886,
        "{v}"
    );
    let (s, v) = t.control(Method::GET, "tickets?open=true", None).await?;
    ensure!(
        s == StatusCode::OK && v["tickets"].as_array().map(Vec::len) == Some(1),
        "{v}"
    );
    let (s, v) = t
        .control(Method::POST, &format!("tickets/{id}/complete"), None)
        .await?;
    ensure!(
        s == StatusCode::OK
            && v["ticket"]["status"] == 5
            && v["ticket"]["completedDate"].is_string(),
        "{v}"
    );
    let (_, v) = t.control(Method::GET, "tickets?open=true", None).await?;
    ensure!(v["tickets"] == json!([]), "{v}");
    let (_, v) = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?;
    ensure!(v["notes"].as_array().map(Vec::len) == Some(1), "{v}");
    let (s, _) = t
        .control(Method::POST, "tickets/424242/complete", None)
        .await?;
    ensure!(s == StatusCode::NOT_FOUND);
    let (s, _) = t.control(Method::POST, "reset", None).await?;
    ensure!(s == StatusCode::NO_CONTENT && t.sim.tickets().is_empty());
    let (s, v) = t.control(Method::GET, "", None).await?;
    ensure!(s == StatusCode::OK && v["endpoints"].is_array(), "{v}");
    Ok(())
}
