//! Creating and changing tickets, notes and contacts: typing and business rules.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, err, start};

const ACME: i64 = ids::ACME;

async fn refused(t: &T, body: Value, needle: &str) -> Result<()> {
    let (s, v) = t.call(Method::POST, "Tickets", Some(body.clone())).await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains(needle),
        "{body} should be refused naming {needle}: {s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn ticket_creation_rules() -> Result<()> {
    let t = start(Config::default()).await?;
    let base =
        json!({"companyID": ACME, "title": "Ransomware detected", "status": 1, "priority": 2});
    for f in ["companyID", "title", "status", "priority"] {
        let mut b = base.clone();
        b.as_object_mut().map(|o| o.remove(f));
        let (s, v) = t.call(Method::POST, "Tickets", Some(b)).await?;
        ensure!(
            s == StatusCode::INTERNAL_SERVER_ERROR
                && err(&v) == format!("{f} is required.; on record number [0]."),
            "{f}: {s} {v}"
        );
    }
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    refused(
        &t,
        with("queueID", json!(99)),
        "Value does not reference an existing entity for queueID",
    )
    .await?;
    refused(&t, with("status", json!(999)), "status").await?;
    refused(&t, with("queueID", json!(29682970)), "inactive").await?;
    refused(
        &t,
        with("companyID", json!(123)),
        "Value does not reference an existing entity for companyID",
    )
    .await?;
    let mut b = with("issueType", json!(11));
    b["subIssueType"] = json!(101);
    refused(&t, b, "subIssueType").await?;
    refused(
        &t,
        with("contactID", json!(ids::CATCH_ALL_CONTACT)),
        "contactID",
    )
    .await?;
    refused(
        &t,
        with("assignedResourceID", json!(ids::TECHNICIAN)),
        "assignedResourceRoleID",
    )
    .await?;
    refused(&t, with("title", json!("x".repeat(256))), "title").await?;
    refused(
        &t,
        with("description", json!("x".repeat(8001))),
        "description",
    )
    .await?;
    refused(
        &t,
        with("priority", json!(true)),
        "Unexpected character encountered while parsing value: t",
    )
    .await?;

    // Strings holding numbers are fine, unknown properties and read-only ones are ignored.
    let mut b = with("priority", json!("1"));
    b["queueID"] = json!(ids::QUEUE_SECURITY_ALERTS.to_string());
    b["issueType"] = json!(10);
    b["subIssueType"] = json!(105);
    b["shoeSize"] = json!(44);
    b["ticketNumber"] = json!("T19990101.9999");
    b["externalID"] = json!("alert-123");
    b["description"] = json!("x".repeat(8000));
    b["assignedResourceID"] = json!(ids::TECHNICIAN);
    b["assignedResourceRoleID"] = json!(ids::ROLE_TECHNICIAN);
    let (s, v) = t.call(Method::POST, "Tickets", Some(b)).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let id = v["itemId"].as_i64().unwrap_or_default();
    let (_, v) = t.call(Method::GET, &format!("Tickets/{id}"), None).await?;
    let item = &v["item"];
    let number = item["ticketNumber"].as_str().unwrap_or_default();
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    ensure!(
        number.starts_with(&format!("T{today}.")) && number.len() == 14,
        "generated: {number}"
    );
    ensure!(
        item["priority"] == 1 && item["queueID"] == ids::QUEUE_SECURITY_ALERTS,
        "{item}"
    );
    ensure!(item.get("shoeSize").is_none(), "{item}");
    ensure!(
        item["createDate"].is_string() && item["lastActivityDate"].is_string(),
        "{item}"
    );
    ensure!(
        item["dueDateTime"].is_string(),
        "the category's default due date: {item}"
    );
    ensure!(
        item["completedDate"].is_null() && item["creatorResourceID"] == ids::API_RESOURCE,
        "{item}"
    );
    ensure!(item["userDefinedFields"].is_array(), "{item}");
    let found = t
        .items(
            "Tickets",
            json!([{"op": "eq", "field": "externalid", "value": "ALERT-123"}]),
        )
        .await?;
    ensure!(
        found.len() == 1 && found[0]["id"] == id,
        "externalID is queryable: {found:?}"
    );
    ensure!(t.sim.ticket(id).is_some() && t.sim.tickets().len() == 1);

    // Ticket numbers count up within the day.
    let second = t.new_ticket("second").await?;
    let (_, v) = t
        .call(Method::GET, &format!("Tickets/{second}"), None)
        .await?;
    ensure!(
        v["item"]["ticketNumber"]
            .as_str()
            .is_some_and(|n| n.ends_with(".0002")),
        "{v}"
    );

    // Without the category's default, the due date is required.
    let strict = start(Config {
        category_supplies_due_date: false,
        ..Config::default()
    })
    .await?;
    refused(
        &strict,
        base.clone(),
        "dueDateTime is required.; on record number [0].",
    )
    .await?;
    let mut b = base.clone();
    b["dueDateTime"] = json!("2026-12-01T17:00:00.000000Z");
    let (s, v) = strict.call(Method::POST, "Tickets", Some(b)).await?;
    ensure!(s == StatusCode::OK, "{v}");
    Ok(())
}

#[tokio::test]
async fn ticket_updates_and_completion() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = t.new_ticket("Suspicious sign-in").await?;
    let (s, _) = t
        .call(
            Method::PATCH,
            &format!("Tickets/{id}"),
            Some(json!({"status": 5})),
        )
        .await?;
    ensure!(s == StatusCode::METHOD_NOT_ALLOWED, "no PATCH by id");
    let (s, v) = t
        .call(
            Method::PATCH,
            "Tickets",
            Some(json!({"id": id, "status": "5"})),
        )
        .await?;
    ensure!(s == StatusCode::OK && v["itemId"] == id, "{s} {v}");
    let item = t.sim.ticket(id).unwrap_or_default();
    ensure!(
        item["status"] == 5 && item["completedDate"].is_string(),
        "{item}"
    );
    ensure!(
        item["title"] == "Suspicious sign-in",
        "PATCH keeps what it was not sent: {item}"
    );
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "status": 8})),
    )
    .await?;
    ensure!(
        t.sim.ticket(id).unwrap_or_default()["completedDate"].is_null(),
        "reopened"
    );
    // PUT sets writable properties not sent to null: here the description.
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "description": "details"})),
    )
    .await?;
    let (s, v) = t
        .call(Method::PUT, "Tickets", Some(json!({"id": id, "companyID": ACME, "title": "Put", "status": 1, "priority": 3, "dueDateTime": "2026-12-01T00:00:00Z"})))
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let item = t.sim.ticket(id).unwrap_or_default();
    ensure!(
        item["description"].is_null() && item["title"] == "Put" && item["ticketNumber"].is_string(),
        "{item}"
    );
    let (s, v) = t
        .call(
            Method::PUT,
            "Tickets",
            Some(json!({"id": id, "title": "no status"})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("is required"),
        "{v}"
    );
    let (s, v) = t
        .call(
            Method::PATCH,
            "Tickets",
            Some(json!({"id": 1, "title": "x"})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("No matching records"),
        "{v}"
    );
    // Unknown ids read as null items.
    let (s, v) = t.call(Method::GET, "Tickets/123456789", None).await?;
    ensure!(s == StatusCode::OK && v["item"].is_null(), "{s} {v}");
    let strict = start(Config {
        missing_item_is_404: true,
        ..Config::default()
    })
    .await?;
    let (s, _) = strict.call(Method::GET, "Tickets/123456789", None).await?;
    ensure!(s == StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn notes_live_under_their_ticket() -> Result<()> {
    let t = start(Config::default()).await?;
    let id = t.new_ticket("Malware quarantined").await?;
    let (s, _) = t
        .call(
            Method::POST,
            "TicketNotes",
            Some(json!({"ticketID": id, "description": "d", "noteType": 1, "publish": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED,
        "notes are created under their ticket"
    );
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Tickets/{id}/Notes"),
            Some(json!({"title": "n"})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("is required"),
        "{v}"
    );
    let (s, v) = t
        .call(
            Method::POST,
            "Tickets/999999/Notes",
            Some(json!({"description": "d", "noteType": 1, "publish": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("ticketID"),
        "{v}"
    );
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Tickets/{id}/Notes"),
            Some(json!({"description": "d", "noteType": 42, "publish": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("noteType"),
        "{v}"
    );
    let mut note_ids = Vec::new();
    for i in 0..2 {
        let r = t
            .request(Method::POST, &format!("{}V1.0/tickets/{id}/notes", t.sim.zone_url()))
            .header("ImpersonationResourceId", ids::TECHNICIAN.to_string())
            .json(&json!({"title": format!("n{i}"), "description": format!("Note {i}"), "noteType": "1", "publish": 1}))
            .send()
            .await?;
        let (s, v) = crate::common::body(r).await?;
        ensure!(s == StatusCode::OK && v["itemId"].is_i64(), "{s} {v}");
        note_ids.push(v["itemId"].as_i64().unwrap_or_default());
    }
    let (_, v) = t
        .call(Method::GET, &format!("Tickets/{id}/Notes"), None)
        .await?;
    ensure!(
        v["items"].as_array().map(Vec::len) == Some(2) && v["pageDetails"]["count"] == 2,
        "{v}"
    );
    let (_, v) = t
        .call(Method::GET, &format!("TicketNotes/{}", note_ids[0]), None)
        .await?;
    let note = &v["item"];
    ensure!(
        note["ticketID"] == id
            && note["description"] == "Note 0"
            && note["createDateTime"].is_string(),
        "{note}"
    );
    ensure!(
        note["creatorResourceID"] == ids::TECHNICIAN
            && note["impersonatorCreatorResourceID"] == ids::TECHNICIAN,
        "{note}"
    );
    let (_, v) = t
        .call(
            Method::GET,
            &format!("Tickets/{id}/Notes/{}", note_ids[1]),
            None,
        )
        .await?;
    ensure!(v["item"]["title"] == "n1", "{v}");
    ensure!(t.sim.notes_of(id).len() == 2);
    let (s, v) = t
        .call(
            Method::PATCH,
            &format!("Tickets/{id}/Notes"),
            Some(json!({"id": note_ids[0], "description": "edited"})),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    ensure!(t.sim.notes_of(id)[0]["description"] == "edited");
    let found = t
        .items(
            "TicketNotes",
            json!([{"op": "eq", "field": "ticketID", "value": id}]),
        )
        .await?;
    ensure!(found.len() == 2, "{found:?}");
    Ok(())
}

#[tokio::test]
async fn contacts_are_children_of_companies() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Companies/{ACME}/Contacts"),
            Some(json!({"firstName": "A", "lastName": "B", "isActive": true})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR
            && err(&v).starts_with("Unexpected character encountered while parsing value: t"),
        "Json.NET typing: {v}"
    );
    let (s, _) = t
        .call(
            Method::POST,
            "Contacts",
            Some(json!({"companyID": ACME, "firstName": "A", "lastName": "B", "isActive": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED,
        "a child create on the root route"
    );
    let (s, v) = t
        .call(Method::POST, &format!("Companies/{ACME}/Contacts"), Some(json!({"firstName": "Ada", "lastName": "Byron", "isActive": "1", "emailAddress": "ada@acmedental.example", "externalID": "ext-ada"})))
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let cid = v["itemId"].as_i64().unwrap_or_default();
    let (_, v) = t
        .call(Method::GET, &format!("Contacts/{cid}"), None)
        .await?;
    ensure!(
        v["item"]["companyID"] == ACME
            && v["item"]["isActive"] == 1
            && v["item"]["createDate"].is_string(),
        "{v}"
    );
    let found = t
        .items(
            "Contacts",
            json!([{"op": "eq", "field": "externalID", "value": "ext-ada"}]),
        )
        .await?;
    ensure!(found.len() == 1, "{found:?}");
    let (s, v) = t
        .call(
            Method::PATCH,
            &format!("Companies/{ACME}/Contacts"),
            Some(json!({"id": cid, "isActive": 0, "companyID": 29684102})),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let (_, v) = t
        .call(Method::GET, &format!("Contacts/{cid}"), None)
        .await?;
    ensure!(
        v["item"]["isActive"] == 0 && v["item"]["companyID"] == ACME,
        "companyID is read-only after create: {v}"
    );
    let (s, v) = t
        .call(
            Method::PATCH,
            "Companies/29684102/Contacts",
            Some(json!({"id": cid, "isActive": 1})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR,
        "another company's contact: {v}"
    );
    let (s, v) = t
        .call(
            Method::DELETE,
            &format!("Companies/{ACME}/Contacts/{cid}"),
            None,
        )
        .await?;
    ensure!(s == StatusCode::OK && v["itemId"] == cid, "{v}");
    let (_, v) = t
        .call(Method::GET, &format!("Contacts/{cid}"), None)
        .await?;
    ensure!(v["item"].is_null());
    let (s, _) = t
        .call(
            Method::DELETE,
            &format!("Tickets/{}", t.new_ticket("x").await?),
            None,
        )
        .await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED,
        "tickets cannot be deleted"
    );
    // Companies: create and update on the collection.
    let (s, v) = t.call(Method::POST, "Companies", Some(json!({"companyName": "New Client Ltd", "companyType": 1, "ownerResourceID": ids::API_RESOURCE, "phone": "555-0199"}))).await?;
    ensure!(s == StatusCode::OK, "{v}");
    let co = v["itemId"].as_i64().unwrap_or_default();
    let (s, _) = t
        .call(
            Method::PATCH,
            "Companies",
            Some(json!({"id": co, "phone": "555-0200"})),
        )
        .await?;
    ensure!(s == StatusCode::OK);
    let (_, v) = t
        .call(Method::GET, &format!("Companies/{co}"), None)
        .await?;
    ensure!(
        v["item"]["phone"] == "555-0200" && v["item"]["isActive"] == true,
        "{v}"
    );
    Ok(())
}
