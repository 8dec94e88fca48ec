//! The lookup lists a ticket needs.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::start;

#[tokio::test]
async fn every_lookup_answers_its_dto() -> Result<()> {
    let t = start(Config::default()).await?;
    let get = |p: &'static str| t.result(Method::GET, p, None);
    let queues = get("/v2/system/queues/lookup").await?;
    ensure!(
        queues[0]["id"].is_i64()
            && queues[0]["name"].is_string()
            && queues[0]["isActive"].is_boolean()
    );
    ensure!(
        queues
            .as_array()
            .is_some_and(|q| q.iter().any(|x| x["isActive"] == false)),
        "some inactive"
    );
    let statuses = get("/v2/system/statuses/lookup").await?;
    for k in [
        "id",
        "name",
        "typeId",
        "isSystemStatus",
        "statusOrder",
        "isActive",
        "color",
        "fontColor",
    ] {
        ensure!(!statuses[0][k].is_null(), "{k}: {statuses}");
    }
    ensure!(
        statuses
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["name"] == "Completed"))
    );
    let priorities = get("/v2/system/priorities/lookup").await?;
    ensure!(
        priorities[0]["isDefault"].is_boolean() && priorities[0].get("isActive").is_none(),
        "{priorities}"
    );
    let issue = get("/v2/system/issuetypes/lookup").await?;
    ensure!(issue.as_array().map(Vec::len) == Some(5), "{issue}");
    let (_, filtered) = t
        .get("/v2/system/issuetypes/lookup?Filter.Name=netw")
        .await?;
    ensure!(
        filtered["result"].as_array().map(Vec::len) == Some(1),
        "{filtered}"
    );
    let subs = get("/v2/system/issuetypes/7/issuesubtypes/lookup").await?;
    let sub_ids: Vec<i64> = subs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_i64())
        .collect();
    ensure!(sub_ids == vec![19, 20, 21, 30], "{subs}");
    let subs8 = get("/v2/system/issuetypes/8/issuesubtypes/lookup").await?;
    ensure!(
        subs8
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["id"] == 30)),
        "shared sub-issue type"
    );
    let (s, v) = t
        .get("/v2/system/issuetypes/999/issuesubtypes/lookup")
        .await?;
    ensure!(s == StatusCode::NOT_FOUND && v["success"] == false);
    let slas = get("/v2/system/slas/lookup").await?;
    ensure!(slas[0]["isDefault"].is_boolean() && slas[0]["isActive"].is_boolean());
    let types = get("/v2/system/lookup/TicketType").await?;
    ensure!(types.as_array().map(Vec::len) == Some(6), "{types}");
    let sources = get("/v2/system/lookup/ticketsource").await?;
    ensure!(
        sources[5]["name"] == "Monitoring System" && sources[0]["id"] == 0,
        "{sources}"
    );
    let notes = get("/v2/system/tenantlookup/NoteType").await?;
    ensure!(notes[0]["isDefault"] == true, "{notes}");
    let none = get("/v2/system/lookup/NoSuchTable").await?;
    ensure!(none == Value::Array(vec![]), "{none}");
    Ok(())
}

#[tokio::test]
async fn table_names_are_configurable_and_the_source_table_may_be_missing() -> Result<()> {
    let t = start(Config {
        ticket_type_table: "TicketTypes".into(),
        serve_source_table: false,
        ..Config::default()
    })
    .await?;
    let types = t
        .result(Method::GET, "/v2/system/lookup/TicketTypes", None)
        .await?;
    ensure!(types.as_array().is_some_and(|a| !a.is_empty()));
    let sources = t
        .result(Method::GET, "/v2/system/lookup/TicketSource", None)
        .await?;
    ensure!(sources == Value::Array(vec![]));
    // The fixed source ids are still accepted on a ticket.
    let id = t.new_ticket("fixed source ids").await?;
    ensure!(id > 0);
    Ok(())
}
