//! The control surface: discovery, fixtures, the normalised ticket view, technician
//! actions, statistics and reset.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::start;

#[tokio::test]
async fn fixtures_are_consistent_with_the_api() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, root) = t.control(Method::GET, "", None).await?;
    ensure!(
        s == StatusCode::OK && root["simulator"].is_string() && root["endpoints"].is_array(),
        "{root}"
    );
    let (_, f) = t.control(Method::GET, "fixtures", None).await?;
    ensure!(
        f["company_name"] == "Acme Ltd" && f["company_id"] == "12",
        "{f}"
    );
    ensure!(f["active_companies"].as_u64() >= Some(130), "{f}");
    ensure!(f["duplicate_contact_ids"].as_array().map(Vec::len) == Some(2));
    let d = &f["defaults"];
    let fields = [
        "ticket_type",
        "status",
        "priority",
        "sla",
        "team",
        "agent",
        "category",
        "urgency",
        "impact",
    ];
    ensure!(fields.iter().all(|k| d[k].is_string()), "{d}");
    // The defaults make a valid ticket.
    let num = |k: &str| {
        d[k].as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (s, v) = t
        .call(
            Method::POST,
            "Tickets",
            Some(
                json!([{"summary": "fixtures", "client_id": 12, "tickettype_id": num("ticket_type"),
                "status_id": num("status"), "priority_id": num("priority"), "sla_id": num("sla"),
                "team": d["team"], "agent_id": num("agent"), "category_1": d["category"],
                "urgency": num("urgency"), "impact": num("impact")}]),
            ),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let id = v["id"].as_i64().unwrap_or(0);
    let (_, view) = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?;
    for k in fields {
        ensure!(view["fields"][k] == d[k], "{k}: {view}");
    }
    ensure!(
        view["closed"] == false && view["company_id"] == "12" && view["raw"]["id"] == id,
        "{view}"
    );
    // The agent belongs to the team.
    let team = t.get("Team?includeagentsforteams=true").await?;
    let members: Vec<Value> = team
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == d["team"])
        .flat_map(|x| x["agents"].as_array().cloned().unwrap_or_default())
        .collect();
    ensure!(
        members
            .iter()
            .any(|m| m["agent_id"].as_i64() == Some(num("agent"))),
        "{members:?}"
    );
    Ok(())
}

#[tokio::test]
async fn technician_close_reopen_stats_and_reset() -> Result<()> {
    let t = start(Config::default()).await?;
    let (_, open) = t.control(Method::GET, "tickets?open=true", None).await?;
    ensure!(
        open["tickets"].as_array().map(Vec::len) == Some(2),
        "{open}"
    );
    let (s, v) = t.control(Method::POST, "tickets/101/close", None).await?;
    ensure!(
        s == StatusCode::OK && v["closed"] == true && v["status"] == "9",
        "{v}"
    );
    let api = t.get("Tickets/101").await?;
    ensure!(api["hasbeenclosed"] == true, "{api}");
    let (_, v) = t.control(Method::POST, "tickets/101/reopen", None).await?;
    ensure!(v["closed"] == false, "{v}");
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(stats["requests"].as_u64() >= Some(2), "{stats}");
    ensure!(
        stats["by_endpoint"]["GET /api/Tickets"] == 1
            && stats["by_endpoint"]["POST /auth/token"] == 1,
        "{stats}"
    );
    t.call(
        Method::POST,
        "Tickets",
        Some(json!([{"summary": "x", "client_id": 12}])),
    )
    .await?;
    t.fault(json!({"kind": "status", "status": 500})).await?;
    let (s, _) = t.control(Method::POST, "reset", None).await?;
    ensure!(s == StatusCode::NO_CONTENT);
    let (_, stats) = t.control(Method::GET, "stats", None).await?;
    ensure!(stats["requests"] == 0, "{stats}");
    ensure!(t.sim.tickets().len() == 3 && t.get("Tickets/101").await?["status_id"] == 2);
    Ok(())
}
