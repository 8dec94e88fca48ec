//! The control surface: description, statistics, reset, fixtures, the technician's actions.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn the_control_surface_describes_counts_and_resets() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t.control(Method::GET, "", None).await?;
    ensure!(
        s == StatusCode::OK && v["simulator"].is_string() && v["endpoints"].is_array(),
        "{v}"
    );
    t.get("/v2/system/queues/lookup").await?;
    t.get("/v2/servicedesk/tickets/1001").await?;
    t.get("/v2/servicedesk/tickets/1002").await?;
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(stats["requests"] == 4, "login + 3: {stats}");
    ensure!(
        stats["by_endpoint"]["GET /v2/servicedesk/tickets/{ticketId}"] == 2,
        "{stats}"
    );
    ensure!(
        stats["by_endpoint"]["POST /v2/security/authenticate"] == 1,
        "{stats}"
    );
    let id = t.new_ticket("to be reset away").await?;
    t.fault(json!({"kind": "status", "status": 500})).await?;
    let (s, _) = t.control(Method::POST, "reset", None).await?;
    ensure!(s == StatusCode::NO_CONTENT);
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(stats["requests"] == 0, "{stats}");
    let (_, faults) = t.control(Method::GET, "faults", None).await?;
    ensure!(faults["faults"].as_array().is_some_and(Vec::is_empty));
    let (s, _) = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?;
    ensure!(s == StatusCode::NOT_FOUND, "data back to the seed");
    let (s, _) = t.get("/v2/system/queues/lookup").await?;
    ensure!(s == StatusCode::OK, "tokens survive a reset");
    Ok(())
}

#[tokio::test]
async fn fixtures_are_true_of_the_seed() -> Result<()> {
    let t = start(Config::default()).await?;
    let (_, f) = t.control(Method::GET, "fixtures", None).await?;
    ensure!(
        f["company_name"] == "Acme Ltd" && f["company_id"] == "12" && f["search"] == "acme",
        "{f}"
    );
    let (_, v) = t
        .get("/v2/crm/accounts/summary?Filter.IsActive=true&PageSize=1")
        .await?;
    ensure!(
        v["totalRecords"].as_u64() == f["active_companies"].as_u64(),
        "{v} {f}"
    );
    ensure!(
        f["duplicate_contact_ids"] == json!(["57", "58"]) && f["contact_id"] == "56",
        "{f}"
    );
    let d = &f["defaults"];
    for k in [
        "queue",
        "status",
        "priority",
        "ticket_type",
        "issue_type",
        "sub_issue_type",
        "source",
        "sla",
    ] {
        ensure!(d[k].is_string(), "{k}: {f}");
    }
    ensure!(d.get("close_status").is_none() && f["close_status"].is_string());
    let n = |k: &str| d[k].as_str().and_then(|s| s.parse::<i64>().ok());
    let body = json!({
        "Title": "from the fixtures", "Details": "d", "AccountId": 12, "LocationId": 34,
        "QueueId": n("queue"), "StatusId": n("status"), "PriorityId": n("priority"),
        "TypeId": n("ticket_type"), "IssueTypeId": n("issue_type"),
        "SubIssueTypeId": n("sub_issue_type"), "SourceId": n("source"), "SLAId": n("sla"),
        "OpenDate": "2026-11-22T10:00:00Z",
    });
    let r = t
        .result(Method::POST, "/v2/servicedesk/tickets", Some(body))
        .await?;
    let id = r["id"].as_i64().unwrap_or_default();
    let close = f["close_status"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok());
    t.result(
        Method::POST,
        &format!("/v2/servicedesk/tickets/{id}/resolve"),
        Some(json!({"Comment": "done", "StatusId": close})),
    )
    .await?;
    let (_, view) = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?;
    ensure!(
        view["closed"] == true && view["status"] == f["close_status"],
        "{view}"
    );
    Ok(())
}

#[tokio::test]
async fn the_normalised_view_and_technician_actions() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut body = t.ticket_body("normalised");
    body["Details"] = json!("Text\n\nPSA Bridge reference: psb-7");
    let id = t
        .result(Method::POST, "/v2/servicedesk/tickets", Some(body))
        .await?["id"]
        .as_i64()
        .unwrap_or_default();
    let (_, v) = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?;
    ensure!(
        v["id"] == json!(id.to_string()) && v["closed"] == false && v["status"] == "1",
        "{v}"
    );
    ensure!(
        v["company_id"] == "12" && v["contact_id"] == "56" && v["reference"] == "psb-7",
        "{v}"
    );
    ensure!(
        v["fields"]
            == json!({"queue": "3", "status": "1", "priority": "2", "ticket_type": "2",
        "issue_type": "7", "sub_issue_type": "19", "source": "5", "sla": "1"}),
        "{v}"
    );
    ensure!(v["raw"]["id"] == id && v["raw"]["slaId"] == 1, "{v}");
    let (_, open) = t.control(Method::GET, "tickets?open=true", None).await?;
    ensure!(
        open["tickets"].as_array().map(Vec::len) == Some(3),
        "{open}"
    );
    let (s, v) = t
        .control(Method::POST, &format!("tickets/{id}/close"), None)
        .await?;
    ensure!(
        s == StatusCode::OK && v["closed"] == true && v["status"] == "6",
        "{v}"
    );
    let raw = t
        .result(Method::GET, &format!("/v2/servicedesk/tickets/{id}"), None)
        .await?;
    ensure!(raw["completedDate"].is_string(), "{raw}");
    let (_, v) = t
        .control(Method::POST, &format!("tickets/{id}/reopen"), None)
        .await?;
    ensure!(
        v["closed"] == false && v["raw"]["completedDate"].is_null(),
        "{v}"
    );
    let (s, _) = t.control(Method::GET, "tickets/424242", None).await?;
    ensure!(s == StatusCode::NOT_FOUND);
    Ok(())
}
