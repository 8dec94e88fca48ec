//! Array-bodied create-or-update, validation, notes and closing by action.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn create_update_and_the_shape_of_answers() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t
        .call(
            Method::POST,
            "Tickets",
            Some(
                json!([{"summary": "Multiple MFA failures", "details": "…", "client_id": 12,
                "site_id": 4, "user_id": 9, "tickettype_id": 5, "status_id": 1, "priority_id": 2,
                "sla_id": 1, "team": "Security Operations", "agent_id": 6, "category_1": "Security",
                "urgency": 1, "impact": 3, "supplier_reference": "PSAB-1"}]),
            ),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v.is_object(),
        "one element, one object: {s} {v}"
    );
    let id = v["id"].as_i64().unwrap_or(0);
    ensure!(
        id > 0
            && v["hasbeenclosed"] == false
            && v["client_name"] == "Acme Ltd"
            && v["site_id"] == 4,
        "{v}"
    );
    let found = t.get("Tickets?search_supplier_reference=PSAB-1").await?;
    ensure!(
        found["record_count"] == 1 && found["tickets"][0]["id"] == id,
        "{found}"
    );

    // Update: only the supplied fields change.
    let (s, v) = t
        .call(
            Method::POST,
            "tickets",
            Some(json!([{"id": id, "priority_id": 1}])),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v["priority_id"] == 1 && v["summary"] == "Multiple MFA failures",
        "{v}"
    );

    // Two elements: an array.
    let (s, v) = t
        .call(
            Method::POST,
            "Tickets",
            Some(json!([{"summary": "a", "client_id": 20}, {"summary": "b", "client_id": 21}])),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v.as_array().map(Vec::len) == Some(2),
        "{v}"
    );
    // Without site: the client's main site.
    ensure!(v[0]["site_id"].as_i64() > Some(0), "{v}");
    Ok(())
}

#[tokio::test]
async fn writes_are_validated() -> Result<()> {
    let t = start(Config::default()).await?;
    let cases = [
        (json!({"summary": "x", "client_id": 12}), None),
        (json!([{"client_id": 12}]), Some("summary")),
        (json!([{"summary": "x"}]), Some("client")),
        (
            json!([{"summary": "x", "client_id": 9999}]),
            Some("Client 9999"),
        ),
        (json!([{"summary": "x", "client_id": 13}]), Some("inactive")),
        (
            json!([{"summary": "x", "client_id": 12, "site_id": 100}]),
            Some("does not belong"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "user_id": 10}]),
            Some("inactive"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "team": "Nobody"}]),
            Some("Team"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "agent_id": 7}]),
            Some("disabled"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "category_1": "Nope"}]),
            Some("Category"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "urgency": 9}]),
            Some("urgency"),
        ),
        (
            json!([{"summary": "x", "client_id": 12, "tickettype_id": 6}]),
            Some("inactive"),
        ),
        (
            json!([{"summary": "x".repeat(256), "client_id": 12}]),
            Some("summary"),
        ),
        (json!([{"id": 9999, "summary": "x"}]), Some("Ticket 9999")),
    ];
    for (body, needle) in cases {
        let (s, v) = t.call(Method::POST, "Tickets", Some(body.clone())).await?;
        ensure!(
            s == StatusCode::BAD_REQUEST && v.is_string(),
            "{body}: {s} {v}"
        );
        if let Some(n) = needle {
            ensure!(v.as_str().unwrap_or("").contains(n), "{body}: {v}");
        }
    }
    ensure!(t.sim.tickets().len() == 3, "nothing was made");
    Ok(())
}

#[tokio::test]
async fn actions_note_and_close() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t
        .call(
            Method::POST,
            "Actions",
            Some(
                json!([{"ticket_id": 101, "note": "New alert: X", "outcome": "Private Note",
            "hiddenfromuser": true, "sendemail": false}]),
            ),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v["ticket_id"] == 101 && v["hiddenfromuser"] == true,
        "{v}"
    );
    let list = t.get("Actions?ticket_id=101&excludesys=true").await?;
    ensure!(
        list["record_count"] == 2 && list["actions"][1]["note"] == "New alert: X",
        "{list}"
    );
    let (s, v) = t
        .call(
            Method::POST,
            "Actions",
            Some(json!([{"ticket_id": 101, "note": "Resolved", "new_status": 9}])),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let ticket = t.get("Tickets/101").await?;
    ensure!(
        ticket["status_id"] == 9
            && ticket["hasbeenclosed"] == true
            && ticket["dateclosed"].is_string(),
        "{ticket}"
    );
    let (s, v) = t
        .call(
            Method::POST,
            "Actions",
            Some(json!([{"ticket_id": 4242, "note": "x"}])),
        )
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST
            && v.as_str()
                .unwrap_or("")
                .contains("Ticket 4242 does not exist"),
        "{v}"
    );
    let (s, _) = t
        .call(
            Method::POST,
            "Actions",
            Some(json!([{"ticket_id": 101, "new_status": 77}])),
        )
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST);
    Ok(())
}
