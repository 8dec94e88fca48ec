//! Usage into contract billing, as a user does it: the demo's Autotask partner reports usage,
//! syncs with a dry run (API), for real (CLI), again (nothing written), with a client's own
//! cost, and with a service that the PSA does not have yet (created and added), checked in
//! the simulator over its REST API. On SQLite and PostgreSQL. Then the same few steps on each of
//! the four PSAs, read back from each simulator's `/_sim/billing`.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, Db, Product, Sim};

/// The units and unit cost of `service` on `contract` in the current period, as Autotask
/// answers them (`None`: the service is not on the contract).
async fn units_in_psa(sim: &Sim, contract: &str, service_name: &str) -> Result<Option<(i64, f64)>> {
    let http = reqwest::Client::new();
    let query = |entity: &str, filter: Value| {
        http.post(format!(
            "{}/ATServicesRest/V1.0/{entity}/query",
            sim.base_url
        ))
        .header("UserName", &sim.username)
        .header("Secret", &sim.secret)
        .header("ApiIntegrationCode", &sim.integration_code)
        .json(&json!({"filter": filter}))
        .send()
    };
    let items = |v: Value| v["items"].as_array().cloned().unwrap_or_default();
    let services = items(
        query(
            "Services",
            json!([{"op": "eq", "field": "name", "value": service_name}]),
        )
        .await?
        .json()
        .await?,
    );
    let Some(service) = services.first().map(|s| s["id"].clone()) else {
        return Ok(None);
    };
    let lines = items(
        query(
            "ContractServices",
            json!([{"op": "eq", "field": "contractID", "value": contract},
                                         {"op": "eq", "field": "serviceID", "value": service}]),
        )
        .await?
        .json()
        .await?,
    );
    let Some(line) = lines.first() else {
        return Ok(None);
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let units = items(
        query(
            "ContractServiceUnits",
            json!([{"op": "eq", "field": "contractServiceID", "value": line["id"]},
                                            {"op": "lte", "field": "startDate", "value": now},
                                            {"op": "gte", "field": "endDate", "value": now}]),
        )
        .await?
        .json()
        .await?,
    );
    Ok(Some((
        units.first().and_then(|u| u["units"].as_i64()).unwrap_or(0),
        line["unitCost"].as_f64().unwrap_or_default(),
    )))
}

/// The contract the demo put on a client's mapping.
async fn contract_of(p: &Product, client: &str) -> Result<String> {
    let (_, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/mappings", p.partner_id()),
            None,
        )
        .await?;
    let m = v["mappings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["client"] == client)
        .cloned()
        .unwrap_or_default();
    m["contract"]
        .as_str()
        .map(str::to_string)
        .context(format!("the demo maps {client} with a contract: {m}"))
}

fn line<'a>(report: &'a Value, client: &str) -> &'a Value {
    report["clients"]
        .as_array()
        .and_then(|c| c.iter().find(|l| l["client"] == client))
        .unwrap_or(&Value::Null)
}

async fn usage_is_billed_on_contracts(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "usage_is_billed_on_contracts").await? else {
        return Ok(());
    };
    let partner = p.partner_id();
    let contract_1 = contract_of(&p, "client-001").await?;
    let contract_2 = contract_of(&p, "client-002").await?;
    ensure!(units_in_psa(&sim, &contract_1, "Managed Security Seat").await? == Some((0, 3.5)));

    // Usage: the mark is the highest count, not the last.
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let report = |id: &str, client: &str, units: u64| json!({"id": id, "client": client, "metric": "users", "units": units, "observed_at": at});
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/usage",
            Some(
                json!({"usage": [report("u1", "client-001", 12), report("u2", "client-002", 30),
                                  report("u3", "client-004", 3), report("u4", "client-001", 9)]}),
            ),
        )
        .await?;
    ensure!(s == 202 && v["accepted"] == 4, "{s} {v}");

    // A dry run says what would change and writes nothing.
    let sync = format!("/api/v1/partners/{partner}/billing/sync?wait=true");
    let (s, dry) = p
        .call(Method::POST, &sync, Some(json!({"dry_run": true})))
        .await?;
    ensure!(
        s == 200 && dry["status"] == "finished" && dry["dry_run"] == true,
        "{s} {dry}"
    );
    let l1 = line(&dry, "client-001");
    ensure!(
        l1["outcome"] == "would_update" && l1["units"] == json!({"before": 0, "after": 12}),
        "{dry}"
    );
    ensure!(line(&dry, "client-003")["reason"] == "no_usage", "{dry}");
    ensure!(line(&dry, "client-004")["reason"] == "no_mapping", "{dry}");
    ensure!(units_in_psa(&sim, &contract_1, "Managed Security Seat").await? == Some((0, 3.5)));

    // The CLI syncs for real, with the demo's configuration file.
    let config = p.info["config_file"]
        .as_str()
        .context("demo.json names its config file")?;
    let out = Command::new(BIN)
        .args(["billing", "sync", "--config", config, "--partner", &partner])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("2 updated") && stdout.contains("0 -> 12"),
        "{stdout}"
    );
    ensure!(units_in_psa(&sim, &contract_1, "Managed Security Seat").await? == Some((12, 3.5)));
    ensure!(units_in_psa(&sim, &contract_2, "Managed Security Seat").await? == Some((30, 3.5)));

    // Again: nothing differs, nothing is written (units would double if a delta were re-sent).
    let (s, again) = p.call(Method::POST, &sync, None).await?;
    ensure!(
        s == 200 && again["summary"]["updated"] == 0 && again["summary"]["unchanged"] == 2,
        "{again}"
    );
    ensure!(units_in_psa(&sim, &contract_1, "Managed Security Seat").await? == Some((12, 3.5)));

    // A client's own cost: only the cost is written.
    let conn = p.connection();
    let (s, v) = p
        .call(
            Method::PUT,
            &format!("/api/v1/partners/{partner}/clients/client-002/mappings/{conn}/billing"),
            Some(json!({"enabled": true, "add_service": true, "unit_cost": "3.10"})),
        )
        .await?;
    ensure!(s == 200, "{s} {v}");
    let (_, v) = p.call(Method::POST, &sync, None).await?;
    let l2 = line(&v, "client-002");
    ensure!(
        l2["outcome"] == "updated"
            && l2["unit_cost"]["after"] == "3.1"
            && l2["units"]["after"] == 30,
        "{v}"
    );
    ensure!(units_in_psa(&sim, &contract_2, "Managed Security Seat").await? == Some((30, 3.1)));

    // Bad settings are named.
    let billing = format!("/api/v1/partners/{partner}/connections/{conn}/billing");
    let (s, v) = p
        .call(
            Method::PUT,
            &billing,
            Some(json!({"service_name": "", "unit_cost": -1, "unit_price": "x"})),
        )
        .await?;
    let paths: Vec<&str> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["path"].as_str())
        .collect();
    ensure!(
        s == 422 && paths == ["service_name", "unit_cost", "unit_price"],
        "{s} {v}"
    );

    // A service the PSA does not have: created once, then added to each contract with units.
    let (s, v) = p
        .call(
            Method::PUT,
            &billing,
            Some(
                json!({"service_name": "Device monitoring", "metric": "users", "unit_cost": "1.00",
                        "unit_price": "2.50", "create_if_missing": true}),
            ),
        )
        .await?;
    ensure!(s == 200, "{s} {v}");
    let (_, v) = p.call(Method::POST, &sync, None).await?;
    ensure!(line(&v, "client-001")["outcome"] == "added", "{v}");
    ensure!(
        units_in_psa(&sim, &contract_1, "Device monitoring").await? == Some((12, 1.0)),
        "{v}"
    );
    let (_, v) = p.call(Method::POST, &sync, None).await?;
    ensure!(
        v["summary"]["added"] == 0 && v["summary"]["updated"] == 0,
        "{v}"
    );

    // The runs are listed, newest first.
    let (_, runs) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{partner}/billing/runs"),
            None,
        )
        .await?;
    let by: Vec<&str> = runs["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["started_by"].as_str())
        .collect();
    ensure!(
        by.len() == 6 && by.last() == Some(&"api") && by.contains(&"cli"),
        "{runs}"
    );
    p.cleanup().await;
    Ok(())
}

crate::on_both!(usage_is_billed_on_contracts);

/// Every service line on a contract, as the simulator of any PSA lists them at `/_sim/billing`.
async fn lines_in_psa(sim: &Sim) -> Result<Vec<Value>> {
    let v: Value = reqwest::get(format!("{}/_sim/billing", sim.base_url))
        .await?
        .json()
        .await?;
    v.as_array().cloned().context("/_sim/billing is a list")
}

/// The demo service's units on `contract`, as the PSA holds them.
async fn seat_units(sim: &Sim, contract: &str) -> Result<Option<i64>> {
    Ok(lines_in_psa(sim)
        .await?
        .iter()
        .find(|l| {
            l["contract_id"] == contract
                && l["service_name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("Managed Security Seat"))
        })
        .and_then(|l| l["units"].as_i64()))
}

/// What a user of each PSA does after `psabridge demo`: report usage, sync, and find the units
/// on the client's contract in the PSA; a second sync writes nothing; a higher count moves the
/// units again. The same steps for the four PSAs, each against its own simulator.
async fn usage_is_billed_on(kind: psabridge_core::settings::PsaKind) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let test = format!("usage_is_billed_on_{}", kind.as_str());
    let Some(p) = Product::start(&sim, Db::Sqlite, &test).await? else {
        return Ok(());
    };
    let partner = p.partner_id();
    let mapped = ["client-001", "client-002", "client-003"];
    let mut contracts = Vec::new();
    for client in mapped {
        contracts.push(contract_of(&p, client).await?);
    }
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let report = |id: String, client: &str, units: u64| json!({"id": id, "client": client, "metric": "users", "units": units, "observed_at": at});
    let counts = [12u64, 30, 7];
    let usage: Vec<Value> = mapped
        .iter()
        .zip(counts)
        .map(|(c, n)| report(format!("{c}-a"), c, n))
        .collect();
    let (s, v) = p
        .call(Method::POST, "/api/v1/usage", Some(json!({"usage": usage})))
        .await?;
    ensure!(s == 202 && v["accepted"] == 3, "{s} {v}");

    let sync = format!("/api/v1/partners/{partner}/billing/sync?wait=true");
    let (s, first) = p.call(Method::POST, &sync, None).await?;
    ensure!(s == 200 && first["status"] == "finished", "{s} {first}");
    for ((client, contract), units) in mapped.iter().zip(&contracts).zip(counts) {
        let l = line(&first, client);
        ensure!(
            l["outcome"] == "added" || l["outcome"] == "updated",
            "{kind:?} {client}: {l}"
        );
        ensure!(l["units"]["after"] == units, "{kind:?} {client}: {l}");
        let held = seat_units(&sim, contract).await?;
        ensure!(
            held == Some(units as i64),
            "{kind:?}: the PSA holds {held:?} on contract {contract} for {client}, not {units}: {:?}",
            lines_in_psa(&sim).await?
        );
    }

    // Nothing new: nothing written.
    let (_, again) = p.call(Method::POST, &sync, None).await?;
    ensure!(
        again["summary"]["added"] == 0
            && again["summary"]["updated"] == 0
            && again["summary"]["failed"] == 0,
        "{kind:?}: a second sync wrote: {again}"
    );

    // A higher count in the period moves the units; a lower one does not.
    let more = vec![
        report("client-001-b".into(), "client-001", 20),
        report("client-002-b".into(), "client-002", 4),
    ];
    p.call(Method::POST, "/api/v1/usage", Some(json!({"usage": more})))
        .await?;
    let (_, third) = p.call(Method::POST, &sync, None).await?;
    let l = line(&third, "client-001");
    ensure!(
        l["outcome"] == "updated" && l["units"]["before"] == 12 && l["units"]["after"] == 20,
        "{kind:?}: {l}"
    );
    ensure!(line(&third, "client-002")["outcome"] == "unchanged");
    ensure!(seat_units(&sim, &contracts[0]).await? == Some(20));
    ensure!(seat_units(&sim, &contracts[1]).await? == Some(30));
    Ok(())
}

#[tokio::test]
async fn usage_is_billed_on_halopsa() -> Result<()> {
    usage_is_billed_on(psabridge_core::settings::PsaKind::HaloPsa).await
}

#[tokio::test]
async fn usage_is_billed_on_kaseya_bms() -> Result<()> {
    usage_is_billed_on(psabridge_core::settings::PsaKind::KaseyaBms).await
}

#[tokio::test]
async fn usage_is_billed_on_connectwise() -> Result<()> {
    usage_is_billed_on(psabridge_core::settings::PsaKind::ConnectWise).await
}

#[tokio::test]
async fn usage_is_billed_on_autotask_as_on_the_others() -> Result<()> {
    usage_is_billed_on(psabridge_core::settings::PsaKind::Autotask).await
}
