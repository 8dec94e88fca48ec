//! `GET /v2/finance/contracts/lookup` (`AccountId`, `Ids`, `Name`, `ExcludeExpiredContracts`)
//! and a ticket's `ContractId`, which must be a contract of the ticket's account.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{msg, start};

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_i64())
        .collect()
}

#[tokio::test]
async fn the_lookup_filters_by_account_ids_name_and_expiry() -> Result<()> {
    let t = start(Config::default()).await?;
    let lookup = |q: &str| {
        let path = format!("/v2/finance/contracts/lookup{q}");
        let t = &t;
        async move { t.result(Method::GET, &path, None).await }
    };
    let acme = lookup("?AccountId=12").await?;
    ensure!(ids(&acme) == [44, 45], "{acme}");
    ensure!(
        acme[0]["isActive"] == true && acme[0]["isDefault"] == true,
        "{acme}"
    );
    ensure!(acme[1]["isActive"] == false, "{acme}");
    ensure!(ids(&lookup("?accountid=12&ExcludeExpiredContracts=true").await?) == [44]);
    ensure!(ids(&lookup("?Ids=45&Ids=46").await?) == [45, 46]);
    ensure!(ids(&lookup("?Name=block").await?) == [45]);
    ensure!(ids(&lookup("").await?).len() == 4);
    Ok(())
}

#[tokio::test]
async fn a_ticket_takes_only_a_contract_of_its_account() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut body = t.ticket_body("Contract test");
    body["ContractId"] = 44.into();
    let made = t
        .result(Method::POST, "/v2/servicedesk/tickets", Some(body.clone()))
        .await?;
    ensure!(made["contractId"] == 44, "{made}");
    for (contract, says) in [(4999, "does not exist"), (46, "does not belong to account")] {
        body["ContractId"] = contract.into();
        let (s, v) = t
            .call(Method::POST, "/v2/servicedesk/tickets", Some(body.clone()))
            .await?;
        ensure!(
            s.is_client_error() && s != StatusCode::NOT_FOUND,
            "{contract}: {s} {v}"
        );
        ensure!(
            v["success"] == false && msg(&v).contains(says),
            "{contract}: {v}"
        );
    }
    Ok(())
}
