//! Faults: a PSA that answers 429 and 5xx, and our own process killed mid-delivery.
//! In both, every accepted event ends delivered, and no group gets two tickets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use psabridge_core::settings::PsaKind;

use crate::harness::{Db, Product, Sim, delivery};
use crate::on_every_psa;

/// Fault-rule fields that pick the create-ticket requests of a PSA (and, where the paths
/// share a prefix, its note requests too).
pub(crate) fn creates(kind: PsaKind, rule: Value) -> Value {
    let mut rule = rule;
    let pick = match kind {
        PsaKind::Autotask => json!({"entity": "Tickets", "method": "POST"}),
        PsaKind::HaloPsa => json!({"path_contains": "/api/Tickets", "method": "POST"}),
        PsaKind::KaseyaBms => json!({"path_contains": "/v2/servicedesk/tickets", "method": "POST"}),
        PsaKind::ConnectWise => json!({"path_contains": "/service/tickets", "method": "POST"}),
    };
    for (k, v) in pick.as_object().into_iter().flatten() {
        rule[k] = v.clone();
    }
    rule
}

/// `n` events over `users` users of the three mapped clients and the unmapped one.
pub(crate) fn workload(prefix: &str, n: usize, users: usize) -> Vec<Value> {
    let types = [
        "saas.too_many_downloads",
        "saas.too_many_uploads",
        "saas.multiple_mfa_failures",
    ];
    let clients = ["client-001", "client-002", "client-003", "client-004"];
    (0..n)
        .map(|i| {
            let u = i % users;
            json!({
                "id": format!("{prefix}-{i}"),
                "client": clients[u % clients.len()],
                "type": types[i % types.len()],
                "user": {"email": format!("user{u}@example.test")},
            })
        })
        .collect()
}

/// Post events in batches of 50; the ids the API acknowledged as accepted.
pub(crate) async fn post_all(p: &Product, events: &[Value]) -> Result<Vec<String>> {
    let mut accepted = Vec::new();
    for chunk in events.chunks(50) {
        let (status, body) = p.post_events(&json!({"events": chunk})).await?;
        ensure!(status == 202, "{status} {body}");
        for r in body["results"].as_array().into_iter().flatten() {
            if r["status"] == "accepted" {
                accepted.push(r["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    Ok(accepted)
}

/// Every accepted event delivered; one ticket per group; each event one ticket or one note.
pub(crate) async fn check_exactly_once(
    sim: &Sim,
    p: &Product,
    ids: &[String],
    timeout: Duration,
) -> Result<()> {
    let done = p.wait_done(ids, timeout).await?;
    let mut groups: HashMap<String, HashSet<String>> = HashMap::new();
    let mut creates = 0;
    for e in &done {
        let d = delivery(e);
        ensure!(d["status"] == "delivered", "not delivered: {e}");
        if d["psa_action"] == "created" {
            creates += 1;
        }
        groups
            .entry(d["group_key"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(d["ticket"]["id"].as_str().unwrap_or_default().to_string());
    }
    for (g, tickets) in &groups {
        ensure!(tickets.len() == 1, "group {g} has tickets {tickets:?}");
    }
    let tickets = sim.our_tickets().await?;
    ensure!(
        tickets.len() == groups.len(),
        "{} tickets in the PSA for {} groups ({} creates recorded)",
        tickets.len(),
        groups.len(),
        creates
    );
    let mut refs = HashSet::new();
    for t in &tickets {
        ensure!(
            refs.insert(t["reference"].to_string()),
            "two tickets share a reference: {t}"
        );
    }
    Ok(())
}

async fn storm_of_429_and_5xx_loses_nothing(kind: PsaKind, db: Db) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "storm_of_429_and_5xx").await? else {
        return Ok(());
    };
    sim.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 1, "count": 15}))
        .await?;
    sim.fault(json!({"kind": "status", "status": 503, "count": 10}))
        .await?;
    sim.fault(creates(
        kind,
        json!({"kind": "status", "status": 500, "count": 5}),
    ))
    .await?;
    sim.fault(creates(kind, json!({"kind": "after_commit", "count": 3})))
        .await?;
    sim.fault(json!({"kind": "drop", "count": 3})).await?;
    let ids = post_all(&p, &workload("storm", 120, 20)).await?;
    ensure!(ids.len() == 120);
    check_exactly_once(&sim, &p, &ids, Duration::from_secs(120)).await?;
    p.cleanup().await;
    Ok(())
}
on_every_psa!(storm_of_429_and_5xx_loses_nothing);

async fn kill_9_mid_delivery_loses_and_doubles_nothing(kind: PsaKind, db: Db) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(mut p) = Product::start(&sim, db, "kill_9_mid_delivery").await? else {
        return Ok(());
    };
    // Slow creates so that the kill lands while creates are in flight; some creates are
    // carried out by the PSA but never answered.
    sim.fault(creates(
        kind,
        json!({"kind": "delay", "delay_ms": 300, "count": 1000}),
    ))
    .await?;
    let events = workload("kill", 200, 40);
    let mut acked = post_all(&p, &events[..100]).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    p.kill9();
    p.launch()?;
    acked.extend(post_all(&p, &events[100..]).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.kill9();
    p.launch()?;
    sim.clear_faults().await?;
    ensure!(
        acked.len() == 200,
        "every event acknowledged: {}",
        acked.len()
    );
    check_exactly_once(&sim, &p, &acked, Duration::from_secs(240)).await?;
    p.cleanup().await;
    Ok(())
}
on_every_psa!(kill_9_mid_delivery_loses_and_doubles_nothing);
