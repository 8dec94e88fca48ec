//! The thread limit, the hourly threshold and its latency tiers.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{ApiUser, Config};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{T, body, err, start};

#[tokio::test]
async fn three_requests_in_flight_per_integration_and_entity() -> Result<()> {
    let second = ApiUser {
        username: "other-integration@bridgewater-it.example".into(),
        secret: "Other-Secret".into(),
        integration_code: "OTHERINTEGRATIONCODE0000001".into(),
    };
    let mut config = Config {
        latency_tiers: false,
        ..Config::default()
    };
    config.api_users.push(second.clone());
    let t = start(config).await?;
    t.fault(json!({"kind": "delay", "delay_ms": 700, "entity": "Companies"}))
        .await?;
    let calls = (0..5).map(|_| t.call(Method::GET, "Companies/0", None));
    let other_entity = t.call(Method::GET, "Contacts/30684101", None);
    let other_code = async {
        body(
            t.http
                .get(format!("{}V1.0/Companies/0", t.sim.zone_url()))
                .header("UserName", &second.username)
                .header("Secret", &second.secret)
                .header("ApiIntegrationCode", &second.integration_code)
                .send()
                .await?,
        )
        .await
    };
    let (results, other_entity, other_code) =
        tokio::join!(futures::future::join_all(calls), other_entity, other_code);
    let limited: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let served = results
        .iter()
        .filter(|r| matches!(r, Ok((s, _)) if *s == StatusCode::OK))
        .count();
    ensure!(
        limited.len() == 2 && served == 3,
        "three in flight, the rest refused: {results:?}"
    );
    ensure!(
        limited
            .iter()
            .all(|(_, v)| err(v).contains("Itgenatr005") && err(v).contains("Thread Threshold")),
        "{limited:?}"
    );
    ensure!(
        other_entity?.0 == StatusCode::OK,
        "another entity has its own slots"
    );
    ensure!(
        other_code?.0 == StatusCode::OK,
        "another integration code has its own slots"
    );
    // Slots are freed when requests end.
    t.control(Method::DELETE, "faults", None).await?;
    let (s, _) = t.call(Method::GET, "Companies/0", None).await?;
    ensure!(s == StatusCode::OK);
    let stats = t.sim.request_stats();
    ensure!(stats.in_flight.is_empty(), "{stats:?}");
    ensure!(stats.by_outcome.get("429").copied() == Some(2), "{stats:?}");
    Ok(())
}

#[tokio::test]
async fn the_hourly_threshold_refuses_past_the_limit() -> Result<()> {
    let t = start(Config {
        hourly_limit: 20,
        latency_tiers: false,
        ..Config::default()
    })
    .await?;
    let mut refused_at = None;
    for i in 1..=25 {
        let (s, v) = t.call(Method::GET, "ThresholdInformation", None).await?;
        if s == StatusCode::TOO_MANY_REQUESTS {
            ensure!(err(&v).contains("threshold"), "{v}");
            refused_at = Some(i);
            break;
        }
        ensure!(
            v["currentTimeframeRequestCount"] == i && v["externalRequestThreshold"] == 20,
            "{v}"
        );
    }
    ensure!(refused_at == Some(21), "{refused_at:?}");
    let (s, _) = t
        .call(Method::POST, "Tickets/query", Some(json!({"filter": []})))
        .await?;
    ensure!(
        s == StatusCode::TOO_MANY_REQUESTS,
        "the whole database is refused"
    );
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(stats["threshold"]["used_in_last_hour"] == 20, "{stats}");
    t.control(Method::POST, "reset-stats", None).await?;
    let (s, _) = t.call(Method::GET, "ThresholdInformation", None).await?;
    ensure!(s == StatusCode::OK, "reset-stats clears the rolling hour");
    Ok(())
}

async fn timed(t: &T) -> Result<Duration> {
    let start = Instant::now();
    let (s, _) = t.call(Method::GET, "Companies/0", None).await?;
    ensure!(s == StatusCode::OK);
    Ok(start.elapsed())
}

#[tokio::test]
async fn latency_grows_with_usage() -> Result<()> {
    let t = start(Config {
        hourly_limit: 8,
        ..Config::default()
    })
    .await?;
    for _ in 0..4 {
        ensure!(
            timed(&t).await? < Duration::from_millis(400),
            "below 50%: no added latency"
        );
    }
    let half = timed(&t).await?;
    ensure!(
        half >= Duration::from_millis(500) && half < Duration::from_millis(1000),
        "from 50%: {half:?}"
    );
    timed(&t).await?;
    let three_quarters = timed(&t).await?;
    ensure!(
        three_quarters >= Duration::from_millis(1000),
        "from 75%: {three_quarters:?}"
    );
    let slow = start(Config {
        base_latency_ms: 150,
        ..Config::default()
    })
    .await?;
    ensure!(
        timed(&slow).await? >= Duration::from_millis(150),
        "base latency"
    );
    Ok(())
}
