//! Contracts: queried by company, and a ticket's `contractID`, which must exist and belong
//! to the ticket's company.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{err, start};

#[tokio::test]
async fn contracts_are_queried_by_company() -> Result<()> {
    let t = start(Config::default()).await?;
    let items = t
        .items(
            "Contracts",
            json!([{"op": "eq", "field": "companyID", "value": ids::ACME}]),
        )
        .await?;
    let got: Vec<(i64, i64)> = items
        .iter()
        .filter_map(|c| Some((c["id"].as_i64()?, c["status"].as_i64()?)))
        .collect();
    ensure!(
        got == [(ids::ACME_CONTRACT, 1), (ids::ACME_OLD_CONTRACT, 0)],
        "{items:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_ticket_takes_only_a_contract_of_its_company() -> Result<()> {
    let t = start(Config::default()).await?;
    let ticket = |contract: i64| {
        json!({"companyID": ids::ACME, "title": "Contract test", "status": 1, "priority": 2,
               "contractID": contract})
    };
    let (s, v) = t
        .call(Method::POST, "Tickets", Some(ticket(ids::ACME_CONTRACT)))
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let (_, view) = t
        .control(Method::GET, &format!("tickets/{}", v["itemId"]), None)
        .await?;
    ensure!(
        view["contract_id"] == json!(ids::ACME_CONTRACT.to_string()),
        "{view}"
    );
    for (contract, says) in [
        (
            29699999,
            "Value does not reference an existing entity for contractID",
        ),
        (
            ids::OTHER_COMPANY_CONTRACT,
            "must belong to the ticket's companyID",
        ),
    ] {
        let (s, v) = t
            .call(Method::POST, "Tickets", Some(ticket(contract)))
            .await?;
        ensure!(
            s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains(says),
            "{contract}: {s} {v}"
        );
    }
    Ok(())
}
