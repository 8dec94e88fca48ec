//! Faults on demand and throttling.

use std::time::{Duration, Instant};

use anyhow::Result;
use psabridge_sim::connectwise::{Config, RateLimit};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn throttling_answers_429_with_retry_after() -> Result<()> {
    let t = start(Config {
        rate_limit: Some(RateLimit {
            per_second: 0.5,
            burst: 3,
        }),
        ..Config::default()
    })
    .await?;
    for _ in 0..3 {
        assert_eq!(t.get("service/priorities").await?.status, StatusCode::OK);
    }
    let a = t.get("service/priorities").await?;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = a.headers["retry-after"].to_str()?.parse()?;
    assert!((1..=2).contains(&secs), "{secs}");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("exceeds capacity")
    );
    // The control surface is never throttled; companyinfo needs no token.
    assert_eq!(
        t.control(Method::GET, "stats", None).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn status_faults_match_and_run_out() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(
        json!({"kind": "status", "status": 503, "retry_after_secs": 4, "count": 2,
                   "method": "GET", "path_contains": "/service/tickets"}),
    )
    .await?;
    let listed = t.control(Method::GET, "faults", None).await?;
    assert_eq!(listed.body["faults"].as_array().map(Vec::len), Some(1));
    // Another path is not hit.
    assert_eq!(t.get("service/priorities").await?.status, StatusCode::OK);
    for _ in 0..2 {
        let a = t.get("service/tickets").await?;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.headers["retry-after"], "4");
        assert!(a.body["code"].is_string());
    }
    assert_eq!(t.get("service/tickets").await?.status, StatusCode::OK);
    // Entity filters use the endpoint without ids.
    t.fault(json!({"kind": "status", "status": 500, "entity": "service/tickets/notes"}))
        .await?;
    assert_eq!(
        t.get("service/tickets/1001/notes").await?.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(t.get("service/tickets/1001").await?.status, StatusCode::OK);
    let a = t.control(Method::DELETE, "faults", None).await?;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("service/tickets/1001/notes").await?.status,
        StatusCode::OK
    );
    // Bad rules are refused.
    let a = t
        .control(
            Method::POST,
            "faults",
            Some(json!({"kind": "status", "status": 200})),
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = t
        .control(Method::POST, "faults", Some(json!({"kind": "boom"})))
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn drop_closes_the_connection_and_delay_waits() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "drop", "count": 1})).await?;
    assert!(
        t.request(Method::GET, &t.url("service/sources"))
            .send()
            .await
            .is_err()
    );
    t.fault(json!({"kind": "delay", "delay_ms": 300, "count": 1}))
        .await?;
    let started = Instant::now();
    assert_eq!(t.get("service/sources").await?.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    t.fault(json!({"kind": "timeout", "hold_ms": 200, "count": 1}))
        .await?;
    assert!(
        t.request(Method::GET, &t.url("service/sources"))
            .send()
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn after_commit_makes_the_ticket_but_loses_the_answer() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "after_commit", "method": "POST", "path_contains": "service/tickets", "count": 1}))
        .await?;
    let sent = t
        .request(Method::POST, &t.url("service/tickets"))
        .json(&json!({"summary": "Lost answer", "company": {"id": 12}, "externalXRef": "REF-LOST"}))
        .send()
        .await;
    assert!(sent.is_err(), "no answer");
    let a = t
        .get_q(
            "service/tickets",
            &[("conditions", "externalXRef=\"REF-LOST\"")],
        )
        .await?;
    assert_eq!(
        a.body.as_array().map(Vec::len),
        Some(1),
        "the ticket was made"
    );
    let stats = t.control(Method::GET, "stats", None).await?;
    assert!(stats.body["requests"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(stats.body["by_endpoint"]["POST /service/tickets"], 1);
    Ok(())
}

#[tokio::test]
async fn html_faults_look_like_an_edge_proxy() -> Result<()> {
    let t = start(Config::default()).await?;
    t.fault(json!({"kind": "html", "status": 502, "count": 1}))
        .await?;
    let r = t
        .request(Method::GET, &t.url("service/sources"))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await?.contains("<html>"));
    Ok(())
}
