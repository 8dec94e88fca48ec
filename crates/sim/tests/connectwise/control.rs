//! The control surface: fixtures, the normalised ticket view, technician actions, reset.

use anyhow::Result;
use psabridge_sim::connectwise::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn fixtures_describe_the_seed_consistently() -> Result<()> {
    let t = start(Config::default()).await?;
    let root = t.control(Method::GET, "", None).await?;
    assert!(
        root.body["simulator"]
            .as_str()
            .is_some_and(|s| s.contains("ConnectWise"))
    );
    assert!(root.body["endpoints"].is_array());
    let f = t.fixtures().await?;
    assert_eq!(f["company_name"], "Acme Ltd");
    assert_eq!(f["company_id"], "12");
    assert_eq!(f["contact_id"], "56");
    assert_eq!(f["duplicate_contact_ids"], json!(["57", "58"]));
    assert!(f["active_companies"].as_u64().unwrap_or(0) >= 130);
    let d = &f["defaults"];
    for k in [
        "board", "status", "type", "subtype", "item", "team", "priority", "source",
    ] {
        assert!(d[k].is_string(), "{k}: {f}");
    }
    // The defaults belong together: creating a ticket with them works.
    let id = |k: &str| d[k].as_str().and_then(|s| s.parse::<i64>().ok());
    let a = t
        .send(
            Method::POST,
            "service/tickets",
            json!({"summary": "Defaults", "company": {"id": 12},
                   "board": {"id": id("board")}, "status": {"id": id("status")},
                   "type": {"id": id("type")}, "subType": {"id": id("subtype")},
                   "item": {"id": id("item")}, "team": {"id": id("team")},
                   "priority": {"id": id("priority")}, "source": {"id": id("source")}}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let close = f["close_status"].as_str().unwrap_or_default().to_string();
    let st = t
        .get(&format!(
            "service/boards/{}/statuses/{close}",
            d["board"].as_str().unwrap_or_default()
        ))
        .await?;
    assert_eq!(st.body["closedStatus"], true);
    Ok(())
}

#[tokio::test]
async fn tickets_are_viewed_in_our_terms_and_technicians_close_them() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t
        .send(
            Method::POST,
            "service/tickets",
            json!({"summary": "Viewed", "company": {"id": 12}, "contact": {"id": 56},
                   "board": {"id": 2}, "type": {"id": 5}, "subType": {"id": 5},
                   "initialDescription": "The description", "externalXRef": "REF-V"}),
        )
        .await?;
    let id = a.body["id"].as_i64().unwrap_or_default();
    t.send(
        Method::POST,
        &format!("service/tickets/{id}/notes"),
        json!({"text": "internal note", "internalAnalysisFlag": true}),
    )
    .await?;
    let v = t
        .control(Method::GET, &format!("tickets/{id}"), None)
        .await?
        .body;
    assert_eq!(v["id"], id.to_string());
    assert_eq!(v["closed"], false);
    assert_eq!(v["company_id"], "12");
    assert_eq!(v["contact_id"], "56");
    assert_eq!(v["title"], "Viewed");
    assert_eq!(v["description"], "The description");
    assert_eq!(v["reference"], "REF-V");
    assert_eq!(v["fields"]["board"], "2");
    assert_eq!(v["fields"]["subtype"], "5");
    assert_eq!(v["status"], v["fields"]["status"]);
    assert_eq!(
        v["notes"],
        json!([{"text": "internal note", "internal": true}])
    );
    assert_eq!(v["raw"]["id"], id);

    let open = t
        .control(Method::GET, "tickets?open=true", None)
        .await?
        .body;
    assert!(
        open["tickets"]
            .as_array()
            .is_some_and(|l| l.iter().all(|x| x["closed"] == false))
    );
    let closed = t
        .control(Method::POST, &format!("tickets/{id}/close"), None)
        .await?;
    assert_eq!(closed.status, StatusCode::OK);
    assert_eq!(closed.body["closed"], true);
    assert_eq!(
        closed.body["status"], "12",
        "the board's first closed status"
    );
    let reopened = t
        .control(Method::POST, &format!("tickets/{id}/reopen"), None)
        .await?;
    assert_eq!(reopened.body["closed"], false);
    assert_eq!(reopened.body["status"], "8");
    assert_eq!(reopened.body["raw"]["closedFlag"], false);

    let reset = t.control(Method::POST, "reset", None).await?;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.control(Method::GET, &format!("tickets/{id}"), None)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );
    let stats = t.control(Method::GET, "stats", None).await?.body;
    assert_eq!(stats["requests"], 0);
    Ok(())
}
