//! Ticket and note writes: shapes, validation, JSON Patch, closing.

use anyhow::Result;
use psabridge_sim::connectwise::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, ids, start};

async fn create(t: &T, extra: Value) -> Result<Value> {
    let mut body = json!({
        "summary": "Multiple MFA failures - bob@acme.test",
        "company": {"id": 12},
        "contact": {"id": 56},
        "initialDescription": "Six failed MFA prompts in ten minutes.",
        "externalXRef": "ALERT-123",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let a = t.send(Method::POST, "service/tickets", body).await?;
    anyhow::ensure!(a.status == StatusCode::CREATED, "{} {}", a.status, a.body);
    Ok(a.body)
}

#[tokio::test]
async fn a_create_answers_201_with_the_full_ticket() -> Result<()> {
    let t = start(Config::default()).await?;
    let v = create(
        &t,
        json!({"board": {"id": 2}, "status": {"id": 8}, "type": {"id": 6}, "subType": {"id": 8},
               "item": {"id": 5}, "team": {"id": 3}, "priority": {"id": 2}, "source": {"id": 5},
               "severity": "High", "impact": "low"}),
    )
    .await?;
    assert!(v["id"].as_i64().is_some_and(|i| i > 1003));
    assert_eq!(v["board"]["id"], 2);
    assert_eq!(v["board"]["name"], "Security Operations");
    assert_eq!(v["status"]["id"], 8);
    assert_eq!(v["subType"]["name"], "Suspicious Login");
    assert_eq!(v["company"]["identifier"], "AcmeLtd");
    assert_eq!(v["contactName"], "Bob Smith");
    assert_eq!(v["contactEmailAddress"], "bob@acme.test");
    assert_eq!(v["impact"], "Low");
    assert_eq!(v["closedFlag"], false);
    assert_eq!(v["externalXRef"], "ALERT-123");
    assert!(v.get("initialDescription").is_none(), "POST-only");
    assert!(v["_info"]["dateEntered"].is_string());
    // The description became the first note.
    let id = v["id"].as_i64().unwrap_or_default();
    let notes = t.get(&format!("service/tickets/{id}/notes")).await?;
    assert_eq!(
        notes.body[0]["text"],
        "Six failed MFA prompts in ten minutes."
    );
    assert_eq!(notes.body[0]["detailDescriptionFlag"], true);
    // And the reference finds it.
    let a = t
        .get_q(
            "service/tickets",
            &[
                ("conditions", "externalXRef=\"ALERT-123\""),
                ("fields", "id,externalXRef"),
            ],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![id]);
    Ok(())
}

#[tokio::test]
async fn defaults_apply_when_board_status_and_priority_are_left_out() -> Result<()> {
    let t = start(Config::default()).await?;
    let v = create(&t, json!({})).await?;
    assert_eq!(v["board"]["id"], 1);
    assert_eq!(v["status"]["name"], "New");
    assert_eq!(v["priority"]["name"], "Priority 3 - Normal Response");
    assert_eq!(v["severity"], "Medium");
    Ok(())
}

#[tokio::test]
async fn invalid_tickets_get_invalid_object_bodies() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t
        .send(
            Method::POST,
            "service/tickets",
            json!({"company": {"id": 12}}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["code"], "InvalidObject");
    assert_eq!(a.body["errors"][0]["field"], "summary");
    assert_eq!(a.body["errors"][0]["code"], "NullValue");
    assert_eq!(a.body["errors"][0]["resource"], "ticket");

    let long = "x".repeat(101);
    let a = t
        .send(
            Method::POST,
            "service/tickets",
            json!({"summary": long, "company": {"id": 12}}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["errors"][0]["field"], "summary");

    for (body, field) in [
        (json!({"summary": "x"}), "company"),
        (
            json!({"summary": "x", "company": {"id": 424242}}),
            "company",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "board": {"id": 4}}),
            "board",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "board": {"id": 1}, "status": {"id": 8}}),
            "status",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "board": {"id": 1}, "status": {"id": 7}}),
            "status",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "board": {"id": 1}, "type": {"id": 5}}),
            "type",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "board": {"id": 1}, "type": {"id": 2}, "subType": {"id": 2}}),
            "subType",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "priority": {"id": 77}}),
            "priority",
        ),
        (
            json!({"summary": "x", "company": {"id": 12}, "severity": "Extreme"}),
            "severity",
        ),
    ] {
        let a = t
            .send(Method::POST, "service/tickets", body.clone())
            .await?;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.body["code"], "InvalidObject", "{body}");
        let fields: Vec<&str> = a.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {}", a.body);
    }
    let a = t
        .request(Method::POST, &t.url("service/tickets"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(a.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn json_patch_closes_with_or_without_a_leading_slash() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = create(&t, json!({})).await?["id"]
        .as_i64()
        .unwrap_or_default();
    let a = t
        .send(
            Method::PATCH,
            &format!("service/tickets/{id}"),
            json!([{"op": "replace", "path": "summary", "value": "Renamed"}]),
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["summary"], "Renamed");
    let a = t
        .send(
            Method::PATCH,
            &format!("service/tickets/{id}"),
            json!([{"op": "replace", "path": "/status", "value": {"id": 6}}]),
        )
        .await?;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["closedFlag"], true);
    assert!(a.body["closedDate"].is_string());
    assert_eq!(a.body["closedBy"], "PSABridge");
    // A status of another board is refused; the ticket is unchanged.
    let a = t
        .send(
            Method::PATCH,
            &format!("service/tickets/{id}"),
            json!([{"op": "replace", "path": "status", "value": {"id": 9}}]),
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = t
        .send(
            Method::PATCH,
            &format!("service/tickets/{id}"),
            json!([{"op": "replace", "path": "id", "value": 5}]),
        )
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = t
        .get_q(
            &format!("service/tickets/{id}"),
            &[("fields", "id,status,closedFlag,board")],
        )
        .await?;
    assert_eq!(a.body["status"]["id"], 6);
    assert_eq!(a.body["closedFlag"], true);
    assert!(a.body.get("summary").is_none());
    // Batch states.
    let a = t
        .get_q(
            "service/tickets",
            &[
                ("conditions", &format!("id in (1001,1003,{id})")),
                ("fields", "id,status,closedFlag,board"),
            ],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![1001, 1003, id]);
    assert_eq!(a.body[1]["closedFlag"], true);
    let a = t
        .send(
            Method::PATCH,
            "service/tickets/999999",
            json!([{"op": "replace", "path": "summary", "value": "x"}]),
        )
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn notes_are_201_need_a_flag_and_are_found_by_text() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = create(&t, json!({})).await?["id"]
        .as_i64()
        .unwrap_or_default();
    let path = format!("service/tickets/{id}/notes");
    let a = t
        .send(
            Method::POST,
            &path,
            json!({"text": "Seen again [ref ALERT-9]", "detailDescriptionFlag": false,
                   "internalAnalysisFlag": true, "resolutionFlag": false,
                   "customerUpdatedFlag": false, "processNotifications": false}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["ticketId"], id);
    assert_eq!(a.body["internalAnalysisFlag"], true);
    assert_eq!(a.body["createdBy"], "PSABridge");
    let a = t
        .send(Method::POST, &path, json!({"text": "no flag"}))
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["code"], "InvalidObject");
    let a = t
        .send(Method::POST, &path, json!({"internalAnalysisFlag": true}))
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["errors"][0]["field"], "text");
    let a = t
        .send(
            Method::POST,
            "service/tickets/999999/notes",
            json!({"text": "x", "internalAnalysisFlag": true}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = t
        .get_q(&path, &[("conditions", "text contains \"ALERT-9\"")])
        .await?;
    assert_eq!(a.body.as_array().map(Vec::len), Some(1));
    let a = t.get(&format!("{path}/count")).await?;
    assert_eq!(a.body["count"], 2, "description and note");
    Ok(())
}
