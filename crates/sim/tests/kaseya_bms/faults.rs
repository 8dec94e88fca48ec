//! Faults on demand (the Autotask simulator's control JSON).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{body, msg, start};

#[tokio::test]
async fn status_faults_answer_the_failure_envelope() -> Result<()> {
    let t = start(Config::default()).await?;
    let path = "/v2/system/queues/lookup";
    t.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 2, "count": 2}))
        .await?;
    for _ in 0..2 {
        let r = t.request(Method::GET, path).send().await?;
        ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS && r.headers()["retry-after"] == "2");
        let (_, v) = body(r).await?;
        ensure!(v["success"] == false && !msg(&v).is_empty(), "{v}");
    }
    ensure!(t.get(path).await?.0 == StatusCode::OK, "count 2 hits twice");
    for status in [500u16, 502, 503] {
        t.fault(json!({"kind": "status", "status": status, "count": 1}))
            .await?;
        let (s, v) = t.get(path).await?;
        ensure!(
            s.as_u16() == status && v["error"]["code"] == status,
            "{s} {v}"
        );
    }
    t.fault(json!({"kind": "html", "status": 502, "count": 1}))
        .await?;
    let r = t.request(Method::GET, path).send().await?;
    ensure!(r.status() == StatusCode::BAD_GATEWAY);
    ensure!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    // Bad rules are refused.
    let (s, _) = t
        .control(
            Method::POST,
            "faults",
            Some(json!({"kind": "status", "status": 200})),
        )
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST);
    let (s, _) = t
        .control(Method::POST, "faults", Some(json!({"kind": "explode"})))
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn faults_filter_by_method_and_path_and_never_touch_the_control_surface() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "status", "status": 503, "method": "POST", "path_contains": "/notes"}))
        .await?;
    let (_, list) = t.control(Method::GET, "faults", None).await?;
    ensure!(list["faults"].as_array().map(Vec::len) == Some(1), "{list}");
    let (s, _) = t.get("/v2/servicedesk/tickets/1001/notes").await?;
    ensure!(s == StatusCode::OK, "another method");
    let id = t.new_ticket("faults").await?;
    let note = json!({"Details": "x", "IsInternal": true, "TypeId": 1, "NoteDate": "2026-11-22T10:05:00Z"});
    let (s, _) = t
        .call(
            Method::POST,
            &format!("/v2/servicedesk/tickets/{id}/notes"),
            Some(note.clone()),
        )
        .await?;
    ensure!(s == StatusCode::SERVICE_UNAVAILABLE);
    let (s, _) = t.control(Method::GET, "stats", None).await?;
    ensure!(s == StatusCode::OK, "the control surface is never faulted");
    let (s, _) = t.control(Method::DELETE, "faults", None).await?;
    ensure!(s == StatusCode::NO_CONTENT);
    let (s, _) = t
        .call(
            Method::POST,
            &format!("/v2/servicedesk/tickets/{id}/notes"),
            Some(note),
        )
        .await?;
    ensure!(s == StatusCode::OK);
    // A probability hits a share, repeatably.
    t.fault(
        json!({"kind": "status", "status": 500, "probability": 0.5, "path_contains": "queues"}),
    )
    .await?;
    let mut hits = 0;
    for _ in 0..40 {
        if t.get("/v2/system/queues/lookup").await?.0 == StatusCode::INTERNAL_SERVER_ERROR {
            hits += 1;
        }
    }
    ensure!((8..=32).contains(&hits), "{hits} of 40");
    Ok(())
}

#[tokio::test]
async fn connection_faults_drop_hold_delay_and_lose_answers() -> Result<()> {
    let t = start(Config::default()).await?;
    let path = "/v2/system/priorities/lookup";
    t.fault(json!({"kind": "drop", "count": 1})).await?;
    ensure!(
        t.request(Method::GET, path).send().await.is_err(),
        "dropped"
    );
    t.fault(json!({"kind": "timeout", "hold_ms": 300, "count": 1}))
        .await?;
    let started = Instant::now();
    ensure!(
        t.request(Method::GET, path).send().await.is_err(),
        "held, then closed"
    );
    ensure!(started.elapsed() >= Duration::from_millis(250));
    t.fault(json!({"kind": "delay", "delay_ms": 300, "count": 1}))
        .await?;
    let started = Instant::now();
    ensure!(t.get(path).await?.0 == StatusCode::OK);
    ensure!(started.elapsed() >= Duration::from_millis(250));
    // After commit: the ticket is made, the answer never comes.
    t.fault(json!({"kind": "after_commit", "method": "POST", "path_contains": "servicedesk/tickets", "count": 1}))
        .await?;
    let before = t.sim.tickets().len();
    let sent = t
        .request(Method::POST, "/v2/servicedesk/tickets")
        .json(&t.ticket_body("made, never heard"))
        .send()
        .await;
    ensure!(sent.is_err(), "no answer");
    ensure!(t.sim.tickets().len() == before + 1, "but the ticket exists");
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(
        stats["by_outcome"]["dropped"] == 1 && stats["by_outcome"]["held"] == 1,
        "{stats}"
    );
    Ok(())
}
