//! Assets into the PSA, as a vendor and an MSP use it: the demo's Autotask partner pushes its
//! mapped clients' assets; the vendor reports assets (a bad one named, the good ones kept);
//! each becomes one configuration item of the client's company; a scan that changes nothing
//! the PSA shows costs no PSA request; a changed OS is one update; a create whose answer was
//! lost is found again, not made twice; an alert naming an asset (`data.asset_id`) makes a
//! ticket linked to its item; an unmapped client's assets stay here. Counted in the
//! simulator over Autotask's own API. On SQLite and PostgreSQL.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};

/// The configuration items of a company, as Autotask answers them.
async fn items_of(sim: &Sim, company: &str) -> Result<Vec<Value>> {
    let v: Value = reqwest::Client::new()
        .post(format!(
            "{}/ATServicesRest/V1.0/ConfigurationItems/query",
            sim.base_url
        ))
        .header("UserName", &sim.username)
        .header("Secret", &sim.secret)
        .header("ApiIntegrationCode", &sim.integration_code)
        .json(&json!({"filter": [{"op": "eq", "field": "companyID", "value": company}]}))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["items"].as_array().cloned().unwrap_or_default())
}

/// Requests the simulator served for configuration items so far.
async fn item_requests(sim: &Sim) -> Result<u64> {
    let v: Value = reqwest::get(format!("{}/_sim/stats", sim.base_url))
        .await?
        .json()
        .await?;
    // by entity, then by method or outcome
    Ok(v["by_entity"]["ConfigurationItems"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()))
}

/// Push now; a push already running (the demo's own, every 10 s) is waited for.
async fn push(p: &Product) -> Result<Value> {
    let path = format!(
        "/api/v1/partners/{}/connections/{}/assets/push",
        p.partner_id(),
        p.connection()
    );
    for _ in 0..20 {
        let (s, v) = p.call(Method::POST, &path, None).await?;
        match s {
            200 => return Ok(v),
            409 => tokio::time::sleep(Duration::from_millis(250)).await,
            _ => bail!("push: {s} {v}"),
        }
    }
    bail!("a push stayed busy for 5 s")
}

/// The partner's assets of a client, as the API lists them.
async fn listed(p: &Product, client: &str) -> Result<Vec<Value>> {
    let (s, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/assets?client={client}", p.partner_id()),
            None,
        )
        .await?;
    ensure!(s == 200, "{s} {v}");
    Ok(v["assets"].as_array().cloned().unwrap_or_default())
}

async fn assets_become_configuration_items(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "assets_become_configuration_items").await? else {
        return Ok(());
    };
    let company = p
        .client_company("client-001")
        .context("client-001 is mapped")?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let asset = |id: &str, os: &str, seen: &str| {
        json!({"client": "client-001", "asset_id": id, "name": format!("PC-{id}"),
               "type": "Workstation", "serial": format!("SN-{id}"), "os": os,
               "ip": "192.0.2.10", "mac": "00-1a-2b-3c-4d-5e", "last_seen": seen})
    };

    // A batch with a bad asset: the good ones are kept, the bad field named.
    let mut bad = asset("a9", "Windows 11", &now);
    bad["ip"] = json!("300.1.2.3");
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(json!({"assets": [asset("a1", "Windows 11", &now), asset("a2", "macOS 15", &now), bad]})),
        )
        .await?;
    ensure!(s == 422, "{s} {v}");
    ensure!(v["new"] == 2 && v["rejected"] == 1, "{v}");
    ensure!(v["errors"][0]["path"] == "assets[2].ip", "{v}");

    push(&p).await?;
    let items = items_of(&sim, &company).await?;
    let refs: Vec<&str> = items
        .iter()
        .filter_map(|i| i["referenceNumber"].as_str())
        .collect();
    ensure!(
        refs.len() == 2 && refs.contains(&"a1") && refs.contains(&"a2"),
        "{items:?}"
    );
    let a1 = items
        .iter()
        .find(|i| i["referenceNumber"] == "a1")
        .context("a1")?;
    ensure!(a1["referenceTitle"] == "PC-a1" && a1["serialNumber"] == "SN-a1");
    ensure!(
        a1["notes"] == "Type: Workstation; OS: Windows 11; IP: 192.0.2.10; MAC: 00:1A:2B:3C:4D:5E",
        "{a1}"
    );

    // Seen again, nothing else changed: no PSA request, however often it is pushed.
    let before = item_requests(&sim).await?;
    let later = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(asset("a1", "Windows 11", &later)),
        )
        .await?;
    ensure!(s == 202 && v["status"] == "unchanged", "{s} {v}");
    let report = push(&p).await?;
    ensure!(report["assets"] == json!([]), "{report}");
    ensure!(
        item_requests(&sim).await? == before,
        "no request for an unchanged asset"
    );

    // A new OS is one update of the same item.
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(asset("a1", "Windows 11 24H2", &later)),
        )
        .await?;
    ensure!(s == 202 && v["status"] == "changed", "{s} {v}");
    let report = push(&p).await?;
    let after = item_requests(&sim).await?;
    ensure!(
        after == before + 1,
        "one PATCH for the change, not {}: {report}",
        after - before
    );
    let items = items_of(&sim, &company).await?;
    ensure!(items.len() == 2, "still two items: {items:?}");
    ensure!(
        items.iter().any(|i| i["referenceNumber"] == "a1"
            && i["notes"].as_str().is_some_and(|n| n.contains("24H2"))),
        "{items:?}"
    );

    // The PSA makes the item but the answer is lost: the next push finds it, no second item.
    let (s, v) = sim_faults(
        &sim,
        json!({"kind": "after_commit", "count": 1, "entity": "ConfigurationItems", "method": "POST"}),
    )
    .await?;
    ensure!(s < 300, "fault: {s} {v}");
    let (s, _) = p
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(asset("a3", "Ubuntu 24.04", &later)),
        )
        .await?;
    ensure!(s == 202);
    let first = push(&p).await?;
    let second = push(&p).await?;
    let a3: Vec<Value> = items_of(&sim, &company)
        .await?
        .into_iter()
        .filter(|i| i["referenceNumber"] == "a3")
        .collect();
    ensure!(
        a3.len() == 1,
        "one item for a3, not {}: {first} {second}",
        a3.len()
    );

    // Every asset of the client is up to date in the PSA, with its item's id.
    let list = listed(&p, "client-001").await?;
    ensure!(list.len() == 3, "{list:?}");
    for a in &list {
        let in_psa = &a["in_psa"][0];
        ensure!(
            in_psa["up_to_date"] == true && in_psa["psa_id"].is_string(),
            "{a}"
        );
    }

    // An alert about a pushed asset makes a ticket linked to its configuration item.
    let a1_item = list
        .iter()
        .find(|a| a["asset_id"] == "a1")
        .and_then(|a| a["in_psa"][0]["psa_id"].as_str())
        .context("a1's item")?
        .to_string();
    let (s, v) = p
        .post_events(&json!({"id": "asset-alert-1", "client": "client-001",
            "type": "saas.too_many_downloads", "severity": "high",
            "user": {"email": "ann@acme.example", "name": "Ann"},
            "data": {"asset_id": "a1"}}))
        .await?;
    ensure!(s == 202, "{s} {v}");
    let done = p
        .wait_done(&["asset-alert-1".to_string()], Duration::from_secs(30))
        .await?;
    let ticket = crate::harness::ticket_id(&done[0]);
    let t: Value = reqwest::Client::new()
        .get(format!(
            "{}/ATServicesRest/V1.0/Tickets/{ticket}",
            sim.base_url
        ))
        .header("UserName", &sim.username)
        .header("Secret", &sim.secret)
        .header("ApiIntegrationCode", &sim.integration_code)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        t["item"]["configurationItemID"]
            .as_i64()
            .map(|v| v.to_string())
            == Some(a1_item.clone()),
        "the ticket names a1's item {a1_item}: {}",
        t["item"]
    );

    // An unmapped client's assets stay here.
    let mut loose = asset("b1", "Windows 10", &now);
    loose["client"] = json!("client-004");
    let (s, _) = p.call(Method::POST, "/api/v1/assets", Some(loose)).await?;
    ensure!(s == 202);
    push(&p).await?;
    let list = listed(&p, "client-004").await?;
    ensure!(
        list.len() == 1 && list[0]["in_psa"] == json!([]),
        "{list:?}"
    );
    Ok(())
}

async fn sim_faults(sim: &Sim, rule: Value) -> Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url))
        .json(&rule)
        .send()
        .await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}

crate::on_both!(assets_become_configuration_items);

/// The same intake and push from the demo's partner on another PSA: each asset a record of the
/// client's company there, created once, left alone when nothing the PSA shows changed.
async fn assets_reach_the_psa_from_the_demo(kind: psabridge_core::settings::PsaKind) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let test = format!("assets_reach_{}_from_the_demo", kind.as_str());
    let Some(p) = Product::start(&sim, Db::Sqlite, &test).await? else {
        return Ok(());
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(json!({"assets": [
                {"client": "client-001", "asset_id": "h1", "name": "RECEPTION-PC", "type": "Workstation",
                 "serial": "SN-h1", "os": "Windows 11", "ip": "192.0.2.21", "last_seen": now},
                {"client": "client-002", "asset_id": "h2", "name": "FILE-SERVER", "type": "Server",
                 "os": "Windows Server 2022", "last_seen": now}]})),
        )
        .await?;
    ensure!(s == 202 && v["new"] == 2, "{s} {v}");
    let report = push(&p).await?;
    for client in ["client-001", "client-002"] {
        let list = listed(&p, client).await?;
        let pushed = list.first().context("listed")?;
        ensure!(
            pushed["in_psa"][0]["up_to_date"] == true && pushed["in_psa"][0]["psa_id"].is_string(),
            "{kind:?} {client}: {pushed} after {report}"
        );
    }
    let again = push(&p).await?;
    ensure!(
        again["assets"] == json!([]),
        "{kind:?}: nothing due: {again}"
    );
    Ok(())
}

#[tokio::test]
async fn assets_reach_halopsa_from_the_demo() -> Result<()> {
    assets_reach_the_psa_from_the_demo(psabridge_core::settings::PsaKind::HaloPsa).await
}

#[tokio::test]
async fn assets_reach_connectwise_from_the_demo() -> Result<()> {
    assets_reach_the_psa_from_the_demo(psabridge_core::settings::PsaKind::ConnectWise).await
}
