//! Metrics as an operator scrapes them: the real binary, events posted over HTTP, the
//! Prometheus exposition read from its own listener (not the API port), and the series an
//! operator graphs moving with what happened.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use psabridge_core::settings::PsaKind;
use serde_json::json;

use crate::harness::{Db, Product, Sim};

async fn scrape(p: &Product) -> Result<String> {
    let url = p.info["metrics_url"]
        .as_str()
        .context("demo.json names no metrics_url")?;
    Ok(p.http.get(url).send().await?.text().await?)
}

/// The value of one series, `name{labels…}` where every `(label, value)` of `want` matches.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series == &name || series.starts_with(&format!("{name}{{")))
        .filter(|(series, _)| {
            want.iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap_or(f64::NAN))
        .reduce(|a, b| a + b)
}

async fn metrics_move_with_the_work(db: Db) -> Result<()> {
    let sim = Sim::start_psa(PsaKind::HaloPsa).await?;
    let Some(p) = Product::start(&sim, db, "metrics").await? else {
        return Ok(());
    };
    let conn = p.connection().to_string();
    let kind = "halopsa";

    // Not on the API port.
    let api = p.http.get(format!("{}/metrics", p.api())).send().await?;
    ensure!(
        api.status() == 404,
        "the API port answers /metrics: {}",
        api.status()
    );

    // Three events of one group (a ticket and two notes), a repeat and a bad one.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("m-{i}");
        let (status, body) = p
            .post_events(
                &json!({"id": id, "client": "client-001", "type": "saas.too_many_downloads",
                "user": {"email": "someone@example.com"}}),
            )
            .await?;
        ensure!(status == 202, "{status} {body}");
        ids.push(id);
    }
    let (status, _) = p
        .post_events(
            &json!({"id": "m-0", "client": "client-001", "type": "saas.too_many_downloads"}),
        )
        .await?;
    ensure!(status == 202);
    let (status, _) = p.post_events(&json!({"id": "m-bad"})).await?;
    ensure!(status == 422);
    p.wait_done(&ids, Duration::from_secs(60)).await?;
    // Gauges are sampled at most once a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let text = scrape(&p).await?;
    let c = [("connection", conn.as_str()), ("kind", kind)];
    let at = |name: &str, extra: &[(&str, &str)]| {
        let mut want = c.to_vec();
        want.extend_from_slice(extra);
        value(&text, name, &want)
    };
    ensure!(
        value(&text, "psabridge_events_total", &[("outcome", "accepted")]) == Some(3.0),
        "{text}"
    );
    ensure!(
        value(&text, "psabridge_events_total", &[("outcome", "duplicate")]) == Some(1.0),
        "{text}"
    );
    ensure!(
        value(&text, "psabridge_events_total", &[("outcome", "invalid")]) == Some(1.0),
        "{text}"
    );
    ensure!(
        value(&text, "psabridge_ingest_ack_duration_seconds_count", &[]) == Some(5.0),
        "{text}"
    );
    ensure!(
        value(
            &text,
            "psabridge_ingest_ack_duration_seconds_bucket",
            &[("status", "202"), ("le", "+Inf")]
        ) == Some(4.0),
        "{text}"
    );
    ensure!(
        at("psabridge_deliveries_total", &[("outcome", "created")]) == Some(1.0),
        "{text}"
    );
    ensure!(
        at("psabridge_deliveries_total", &[("outcome", "noted")]) == Some(2.0),
        "{text}"
    );
    let requests = at("psabridge_psa_requests_total", &[]).unwrap_or_default();
    ensure!(requests >= 3.0, "PSA requests: {requests}\n{text}");
    ensure!(
        at("psabridge_psa_request_duration_seconds_count", &[]) == Some(requests),
        "{text}"
    );
    ensure!(
        at("psabridge_deliveries_pending", &[]) == Some(0.0),
        "{text}"
    );
    ensure!(
        at("psabridge_deliveries_oldest_pending_age_seconds", &[]) == Some(0.0),
        "{text}"
    );
    ensure!(at("psabridge_breaker_open", &[]) == Some(0.0), "{text}");
    ensure!(
        at("psabridge_psa_budget_limit", &[]).is_some_and(|v| v > 0.0),
        "{text}"
    );
    ensure!(
        at("psabridge_psa_budget_used", &[]).is_some_and(|v| v >= 3.0),
        "{text}"
    );
    // Labels are templates: no ticket id ever names a series.
    for l in text
        .lines()
        .filter(|l| l.starts_with("psabridge_psa_requests_total"))
    {
        let endpoint = l
            .split("endpoint=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        ensure!(
            !endpoint
                .split(['/', ' '])
                .any(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())),
            "an id in a label: {l}"
        );
    }

    // The example dashboard graphs only series the product serves.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/psabridge.json"
    ))?;
    for name in dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("psabridge_"))
    {
        ensure!(
            text.contains(name),
            "the dashboard graphs {name}, which is not served"
        );
    }

    // A PSA that refuses: the 5xx are counted by status, the retry by outcome, the backlog
    // shows a pending delivery and its age, the breaker opens.
    sim.fault(json!({"kind": "status", "status": 503, "count": 1000}))
        .await?;
    let (status, _) = p
        .post_events(
            &json!({"id": "m-late", "client": "client-002", "type": "saas.too_many_downloads"}),
        )
        .await?;
    ensure!(status == 202);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let text = scrape(&p).await?;
        let c = [("connection", conn.as_str()), ("kind", kind)];
        let at = |name: &str, extra: &[(&str, &str)]| {
            let mut want = c.to_vec();
            want.extend_from_slice(extra);
            value(&text, name, &want)
        };
        let refused = at("psabridge_psa_requests_total", &[("status", "503")]).unwrap_or_default();
        let retried = at("psabridge_deliveries_total", &[("outcome", "retry")]).unwrap_or_default();
        let pending = at("psabridge_deliveries_pending", &[]).unwrap_or_default();
        let age = at("psabridge_deliveries_oldest_pending_age_seconds", &[]).unwrap_or_default();
        if refused >= 1.0 && retried >= 1.0 && pending == 1.0 && age > 0.0 {
            break;
        }
        ensure!(
            std::time::Instant::now() < end,
            "503s {refused}, retries {retried}, pending {pending}, age {age}\n{text}"
        );
    }
    sim.clear_faults().await?;
    p.cleanup().await;
    Ok(())
}
crate::on_both!(metrics_move_with_the_work);
