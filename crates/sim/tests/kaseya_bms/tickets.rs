//! Tickets: create, read, list and search, update, notes, resolve; the validation of each DTO.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{msg, start};

#[tokio::test]
async fn a_ticket_is_created_and_read_back_in_camel_case() -> Result<()> {
    let t = start(Config::default()).await?;
    let r = t
        .result(
            Method::POST,
            "/v2/servicedesk/tickets",
            Some(t.ticket_body("Multiple MFA failures")),
        )
        .await?;
    let id = r["id"].as_i64().unwrap_or_default();
    ensure!(
        id > 0
            && r["ticketNumber"]
                .as_str()
                .is_some_and(|n| n.starts_with('T')),
        "{r}"
    );
    for (k, want) in [
        ("accountId", json!(12)),
        ("locationId", json!(34)),
        ("contactId", json!(56)),
        ("queueId", json!(3)),
        ("queueName", json!("Security")),
        ("statusId", json!(1)),
        ("statusName", json!("New")),
        ("priorityId", json!(2)),
        ("typeId", json!(2)),
        ("issueTypeId", json!(7)),
        ("subIssueTypeId", json!(19)),
        ("sourceId", json!(5)),
        ("slaId", json!(1)),
        ("completedDate", Value::Null),
        ("accountName", json!("Acme Ltd")),
    ] {
        ensure!(r[k] == want, "{k}: {} in {r}", r[k]);
    }
    ensure!(
        r.get("SLAId").is_none() && r.get("Id").is_none(),
        "no PascalCase on the wire"
    );
    let read = t
        .result(Method::GET, &format!("/v2/servicedesk/tickets/{id}"), None)
        .await?;
    ensure!(
        read["title"] == "Multiple MFA failures" && read["tenantId"].is_i64(),
        "{read}"
    );
    // Property names in any case.
    let mut lower = serde_json::Map::new();
    for (k, v) in t
        .ticket_body("lower-case body")
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        lower.insert(k.to_lowercase(), v);
    }
    let r = t
        .result(
            Method::POST,
            "/v2/servicedesk/tickets",
            Some(Value::Object(lower)),
        )
        .await?;
    ensure!(r["title"] == "lower-case body");
    let (s, v) = t.get("/v2/servicedesk/tickets/999999").await?;
    ensure!(
        s == StatusCode::NOT_FOUND && v["success"] == false && v["error"]["code"] == 404,
        "{s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn creates_are_validated_like_the_dto() -> Result<()> {
    let t = start(Config::default()).await?;
    let post = |b: Value| t.call(Method::POST, "/v2/servicedesk/tickets", Some(b));
    let (s, v) = post(json!({})).await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && v["success"] == false,
        "{s} {v}"
    );
    let m = msg(&v);
    for f in [
        "Title",
        "Details",
        "AccountId",
        "LocationId",
        "OpenDate",
        "PriorityId",
        "SourceId",
        "StatusId",
        "TypeId",
    ] {
        ensure!(
            m.contains(&format!("The {f} field is required.")),
            "{f}: {m}"
        );
    }
    ensure!(
        v["error"]["subErrors"].as_array().map(Vec::len) == Some(9),
        "{v}"
    );
    let with = |k: &str, val: Value| {
        let mut b = t.ticket_body("x");
        b[k] = val;
        b
    };
    for (k, val, expect) in [
        ("StatusId", json!("1"), "System.Int32"),
        ("OpenDate", json!("yesterday"), "System.DateTime"),
        ("AccountId", json!(999999), "Account with id 999999"),
        ("AccountId", json!(103 + 139), "inactive"),
        ("LocationId", json!(1001), "Location with id 1001"),
        ("ContactId", json!(59), "inactive"),
        ("ContactId", json!(200), "does not belong"),
        ("QueueId", json!(5), "Queue with id 5"),
        ("StatusId", json!(8), "Status with id 8"),
        ("PriorityId", json!(9), "Priority with id 9"),
        ("TypeId", json!(6), "Ticket type with id 6"),
        ("SourceId", json!(42), "Source with id 42"),
        (
            "SubIssueTypeId",
            json!(22),
            "does not belong to issue type 7",
        ),
        ("SLAId", json!(4), "SLA with id 4"),
        ("Title", json!("t".repeat(256)), "maximum length of 255"),
        ("Title", json!("  "), "The Title field is required."),
    ] {
        let (s, v) = post(with(k, val)).await?;
        ensure!(
            s == StatusCode::BAD_REQUEST && msg(&v).contains(expect),
            "{k}: {s} {v}"
        );
    }
    let (s, v) = t
        .call(Method::POST, "/v2/servicedesk/tickets", None)
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && v["success"] == false,
        "no body: {s} {v}"
    );
    ensure!(t.sim.tickets().len() == 3, "nothing was made");
    Ok(())
}

#[tokio::test]
async fn validation_failures_may_answer_200() -> Result<()> {
    let t = start(Config {
        validation_status: 200,
        ..Config::default()
    })
    .await?;
    let (s, v) = t
        .call(
            Method::POST,
            "/v2/servicedesk/tickets",
            Some(json!({"Title": "x"})),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v["success"] == false && msg(&v).contains("TypeId"),
        "{s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn lists_and_searches_filter_and_page() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut body = t.ticket_body("Suspicious sign-in");
    body["Details"] = json!("Alert details\n\nPSA Bridge reference: psb-42-xyz");
    let id = t
        .result(Method::POST, "/v2/servicedesk/tickets", Some(body))
        .await?["id"]
        .clone();
    let (_, v) = t
        .get("/v2/servicedesk/tickets?Filter.Details=psb-42-xyz")
        .await?;
    ensure!(v["totalRecords"] == 1 && v["result"][0]["id"] == id, "{v}");
    ensure!(
        v["result"][0]["details"]
            .as_str()
            .is_some_and(|d| d.contains("psb-42-xyz")),
        "{v}"
    );
    let (_, v) = t
        .get("/v2/servicedesk/tickets?filter.details=PSB-42")
        .await?;
    ensure!(v["totalRecords"] == 1, "contains, any case: {v}");
    let (_, v) = t
        .get("/v2/servicedesk/tickets?PageSize=2&PageNumber=2")
        .await?;
    ensure!(
        v["totalRecords"] == 4 && v["result"].as_array().map(Vec::len) == Some(2),
        "{v}"
    );
    let (_, v) = t
        .get("/v2/servicedesk/tickets?Filter.ExcludeCompleted=1")
        .await?;
    ensure!(
        v["totalRecords"] == 3,
        "the seed's completed ticket is left out: {v}"
    );
    let (_, v) = t
        .get("/v2/servicedesk/tickets?Filter.StatusNames=New,In%20Progress")
        .await?;
    ensure!(v["totalRecords"] == 3, "{v}");
    let (_, v) = t
        .get("/v2/servicedesk/tickets?Filter.AccountIds=100,101")
        .await?;
    ensure!(v["totalRecords"] == 0, "{v}");
    let (_, v) = t
        .get("/v2/servicedesk/tickets?Sort=Id%20desc&PageSize=1")
        .await?;
    ensure!(v["result"][0]["id"] == id, "{v}");
    let (s, v) = t
        .call(
            Method::POST,
            "/v2/servicedesk/tickets/search",
            Some(json!({"PageSize": 10, "PageNumber": 0, "Filter": {"Title": "sign-in", "ExcludeCompleted": 1}})),
        )
        .await?;
    ensure!(
        s == StatusCode::OK && v["totalRecords"] == 1 && v["result"][0]["id"] == id,
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn notes_are_added_listed_and_validated() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = t.new_ticket("notes").await?;
    let path = format!("/v2/servicedesk/tickets/{id}/notes");
    let n = t
        .result(
            Method::POST,
            &path,
            Some(json!({"Details": "New alert: ref r-1", "IsInternal": true, "TypeId": 1, "NoteDate": "2026-11-22T10:05:00Z"})),
        )
        .await?;
    ensure!(
        n["id"].is_i64() && n["isInternal"] == true && n["typeName"] == "General",
        "{n}"
    );
    let (s, v) = t
        .call(Method::POST, &path, Some(json!({"Details": "x"})))
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST, "{s} {v}");
    let m = msg(&v);
    for f in ["IsInternal", "NoteDate", "TypeId"] {
        ensure!(m.contains(&format!("The {f} field is required.")), "{m}");
    }
    let (s, v) = t
        .call(Method::POST, &path, Some(json!({"Details": "x", "IsInternal": true, "TypeId": 4, "NoteDate": "2026-11-22T10:05:00Z"})))
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && msg(&v).contains("Note type"),
        "{s} {v}"
    );
    let (s, _) = t
        .call(Method::POST, "/v2/servicedesk/tickets/999999/notes", Some(json!({"Details": "x", "IsInternal": true, "TypeId": 1, "NoteDate": "2026-11-22T10:05:00Z"})))
        .await?;
    ensure!(s == StatusCode::NOT_FOUND);
    // A note can move the status.
    t.result(Method::POST, &path, Some(json!({"details": "working", "isInternal": false, "typeId": 2, "noteDate": "2026-11-22T10:06:00Z", "statusId": 2})))
        .await?;
    let (_, v) = t.get(&format!("{path}?PageSize=1&PageNumber=2")).await?;
    ensure!(
        v["result"][0]["details"] == "working" && v.get("totalRecords").is_none(),
        "{v}"
    );
    let view = t.sim.ticket(id).unwrap_or_default();
    ensure!(
        view["status"] == "2" && view["notes"].as_array().map(Vec::len) == Some(2),
        "{view}"
    );
    Ok(())
}

#[tokio::test]
async fn resolve_completes_and_patch_updates() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = t.new_ticket("to resolve").await?;
    let resolve = format!("/v2/servicedesk/tickets/{id}/resolve");
    let (s, v) = t
        .call(Method::POST, &resolve, Some(json!({"StatusId": 6})))
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && msg(&v).contains("Comment"),
        "{s} {v}"
    );
    let r = t
        .result(
            Method::POST,
            &resolve,
            Some(json!({"Comment": "Resolved by PSA Bridge", "StatusId": 7, "IsInternal": true})),
        )
        .await?;
    ensure!(r["statusId"] == 7 && r["completedDate"].is_string(), "{r}");
    let view = t.sim.ticket(id).unwrap_or_default();
    ensure!(
        view["closed"] == true && view["notes"][0]["text"] == "Resolved by PSA Bridge",
        "{view}"
    );
    // Without a status: the tenant's completed status.
    let id2 = t.new_ticket("default close").await?;
    let r = t
        .result(
            Method::POST,
            &format!("/v2/servicedesk/tickets/{id2}/resolve"),
            Some(json!({"Comment": "done"})),
        )
        .await?;
    ensure!(r["statusId"] == 6 && r["statusName"] == "Completed", "{r}");
    // JSON-Patch: a status and a priority; a completed status sets completedDate, an open one
    // clears it.
    let id3 = t.new_ticket("patch me").await?;
    let path = format!("/v2/servicedesk/tickets/{id3}");
    let r = t
        .result(Method::PATCH, &path, Some(json!([{"op": "replace", "path": "/StatusId", "value": 6}, {"op": "replace", "path": "/priorityid", "value": 1}])))
        .await?;
    ensure!(
        r["statusId"] == 6 && r["priorityId"] == 1 && r["completedDate"].is_string(),
        "{r}"
    );
    let r = t
        .result(
            Method::PATCH,
            &path,
            Some(json!([{"op": "replace", "path": "/StatusId", "value": 2}])),
        )
        .await?;
    ensure!(
        r["completedDate"].is_null() && r["reOpenedDate"].is_string(),
        "{r}"
    );
    let (s, v) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!([{"op": "replace", "path": "/StatusId", "value": 99}])),
        )
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && msg(&v).contains("Status with id 99"),
        "{s} {v}"
    );
    let (s, _) = t
        .call(
            Method::PATCH,
            &path,
            Some(json!([{"op": "replace", "path": "/NoSuchField", "value": 1}])),
        )
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST);
    // PUT replaces the whole DTO.
    let mut b = t.ticket_body("put title");
    b["PriorityId"] = json!(4);
    let r = t.result(Method::PUT, &path, Some(b)).await?;
    ensure!(r["title"] == "put title" && r["priorityId"] == 4, "{r}");
    let (s, v) = t.call(Method::DELETE, &path, None).await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED && v["success"] == false,
        "{s} {v}"
    );
    Ok(())
}
