//! Client contracts: `GET /api/ClientContract` (`client_id`, `includeinactive`, paging), and a
//! ticket's `contract_id`, which must be a contract of the ticket's client.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::start;

fn ids(list: &Value) -> Vec<i64> {
    list["contracts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_i64())
        .collect()
}

#[tokio::test]
async fn contracts_are_listed_by_client_and_activity() -> Result<()> {
    let t = start(Config::default()).await?;
    let active = t.get("ClientContract?client_id=12").await?;
    ensure!(ids(&active) == [44, 47, 48], "{active}");
    ensure!(active["record_count"] == 3, "{active}");
    let all = t
        .get("clientcontract?client_id=12&includeinactive=true")
        .await?;
    ensure!(ids(&all) == [44, 45, 47, 48], "{all}");
    let expired = &all["contracts"][1];
    ensure!(
        expired["expired"] == true && expired["active"] == false,
        "{expired}"
    );
    let paged = t
        .get("ClientContract?includeinactive=true&pageinate=true&page_size=2&page_no=2")
        .await?;
    ensure!(
        ids(&paged) == [46, 47] && paged["record_count"] == 5,
        "{paged}"
    );
    let one = t.get("ClientContract/45").await?;
    ensure!(one["ref"] == "BH-ACME-2025", "{one}");
    Ok(())
}

#[tokio::test]
async fn a_ticket_takes_only_a_contract_of_its_client() -> Result<()> {
    let t = start(Config::default()).await?;
    let ticket = |contract: i64| json!([{"summary": "Contract test", "client_id": 12, "contract_id": contract}]);
    let (s, v) = t.call(Method::POST, "Tickets", Some(ticket(44))).await?;
    ensure!(s == StatusCode::OK && v["contract_id"] == 44, "{s} {v}");
    let view = t
        .control(Method::GET, &format!("tickets/{}", v["id"]), None)
        .await?
        .1;
    ensure!(view["contract_id"] == "44", "{view}");
    for (contract, says) in [
        (4999, "does not exist"),
        (46, "does not belong to client 12"),
    ] {
        let (s, v) = t
            .call(Method::POST, "Tickets", Some(ticket(contract)))
            .await?;
        ensure!(s == StatusCode::BAD_REQUEST, "{contract}: {s} {v}");
        ensure!(
            v.as_str().is_some_and(|m| m.contains(says)),
            "{contract}: {v}"
        );
    }
    Ok(())
}
