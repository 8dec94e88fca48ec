//! Entity metadata and the seed data it describes.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::start;

fn field<'a>(fields: &'a Value, name: &str) -> &'a Value {
    fields["fields"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["name"] == name))
        .unwrap_or(&Value::Null)
}

fn values(f: &Value) -> Vec<(String, String)> {
    f["picklistValues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or("?").to_string(),
                v["label"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn entity_information_and_picklists() -> Result<()> {
    let t = start(Config::default()).await?;
    for e in [
        "Companies",
        "Contacts",
        "Tickets",
        "TicketNotes",
        "Resources",
        "TicketCategories",
        "Contracts",
        "TicketWebhooks",
        "TicketWebhookFields",
    ] {
        let (s, v) = t
            .call(Method::GET, &format!("{e}/entityInformation"), None)
            .await?;
        ensure!(
            s == StatusCode::OK && v["info"]["name"] == e && v["info"]["canQuery"] == true,
            "{e}: {v}"
        );
        let (s, v) = t
            .call(Method::GET, &format!("{e}/entityInformation/fields"), None)
            .await?;
        ensure!(
            s == StatusCode::OK && field(&v, "id")["dataType"] == "long",
            "{e}: {v}"
        );
        let (s, v) = t
            .call(
                Method::GET,
                &format!("{e}/entityInformation/userDefinedFields"),
                None,
            )
            .await?;
        ensure!(s == StatusCode::OK && v["fields"].is_array(), "{e}: {v}");
    }
    let (_, info) = t
        .call(Method::GET, "Tickets/entityInformation", None)
        .await?;
    ensure!(
        info["info"]["canDelete"] == false && info["info"]["userAccessForCreate"] == "All",
        "{info}"
    );
    let (_, f) = t
        .call(Method::GET, "tickets/entityinformation/fields", None)
        .await?;
    let status = field(&f, "status");
    ensure!(
        status["isPickList"] == true
            && status["isRequired"] == true
            && status["dataType"] == "integer",
        "{status}"
    );
    let sv = values(status);
    for (v, l) in [
        ("1", "New"),
        ("5", "Complete"),
        ("7", "Waiting Customer"),
        ("8", "In Progress"),
    ] {
        ensure!(sv.contains(&(v.into(), l.into())), "status {v} {l}: {sv:?}");
    }
    let pv = values(field(&f, "priority"));
    for (v, l) in [
        ("1", "High"),
        ("2", "Medium"),
        ("3", "Low"),
        ("4", "Critical"),
    ] {
        ensure!(pv.contains(&(v.into(), l.into())), "{pv:?}");
    }
    let qv = values(field(&f, "queueID"));
    for l in ["Monitoring Alert", "Level I Support", "Security Alerts"] {
        ensure!(qv.iter().any(|(_, x)| x == l), "{qv:?}");
    }
    ensure!(qv.contains(&(
        ids::QUEUE_SECURITY_ALERTS.to_string(),
        "Security Alerts".into()
    )));
    let tv = values(field(&f, "ticketType"));
    ensure!(
        tv.contains(&("5".into(), "Alert".into())) && tv.contains(&("2".into(), "Incident".into())),
        "{tv:?}"
    );
    let sub = field(&f, "subIssueType");
    ensure!(sub["picklistParentValueField"] == "issueType", "{sub}");
    let issue_values: Vec<String> = values(field(&f, "issueType"))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    for p in sub["picklistValues"].as_array().into_iter().flatten() {
        ensure!(
            p["value"].is_string()
                && issue_values.contains(&p["parentValue"].as_str().unwrap_or("").to_string()),
            "{p}"
        );
    }
    ensure!(field(&f, "title")["length"] == 255 && field(&f, "description")["length"] == 8000);
    ensure!(
        field(&f, "companyID")["isReference"] == true
            && field(&f, "companyID")["referenceEntityType"] == "Company"
    );
    ensure!(
        field(&f, "ticketNumber")["isReadOnly"] == true
            && field(&f, "title")["picklistValues"].is_null()
    );
    ensure!(
        !values(field(&f, "source")).is_empty() && !values(field(&f, "ticketCategory")).is_empty()
    );
    let (_, n) = t
        .call(Method::GET, "TicketNotes/entityInformation/fields", None)
        .await?;
    ensure!(!values(field(&n, "noteType")).is_empty() && !values(field(&n, "publish")).is_empty());
    let (_, c) = t
        .call(Method::GET, "Contacts/entityInformation/fields", None)
        .await?;
    ensure!(
        field(&c, "isActive")["dataType"] == "integer",
        "contacts' isActive is an integer"
    );
    let (_, u) = t
        .call(
            Method::GET,
            "Tickets/entityInformation/userDefinedFields",
            None,
        )
        .await?;
    ensure!(
        u["fields"][0]["name"] == "Alert Source" && u["fields"][0]["type"] == "string",
        "{u}"
    );
    Ok(())
}

#[tokio::test]
async fn the_seed() -> Result<()> {
    let t = start(Config::default()).await?;
    let companies = t
        .items(
            "Companies",
            json!([{"op": "gte", "field": "id", "value": 0}]),
        )
        .await?;
    ensure!(
        companies.len() == 11,
        "own, eight customers, the catch-all, one closed: {}",
        companies.len()
    );
    ensure!(companies[0]["id"] == 0 && companies[0]["companyName"] == "Bridgewater IT Services");
    let (_, v) = t
        .call(
            Method::GET,
            &format!("Companies/{}", ids::CATCH_ALL_COMPANY),
            None,
        )
        .await?;
    ensure!(v["item"]["companyName"] == "Default Customer", "{v}");
    let (_, v) = t
        .call(
            Method::GET,
            &format!("Contacts/{}", ids::CATCH_ALL_CONTACT),
            None,
        )
        .await?;
    ensure!(
        v["item"]["firstName"] == "Default"
            && v["item"]["lastName"] == "Contact"
            && v["item"]["companyID"] == ids::CATCH_ALL_COMPANY,
        "{v}"
    );
    for c in companies
        .iter()
        .filter(|c| (29684101..=29684108).contains(&c["id"].as_i64().unwrap_or(0)))
    {
        let contacts = t
            .items(
                "Contacts",
                json!([{"op": "eq", "field": "companyID", "value": c["id"]}]),
            )
            .await?;
        ensure!((3..=6).contains(&contacts.len()), "{c}");
        let domain = c["webAddress"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("www.")
            .to_string();
        ensure!(
            contacts.iter().all(|x| x["emailAddress"]
                .as_str()
                .is_some_and(|e| e.ends_with(&format!("@{domain}")))),
            "{contacts:?}"
        );
    }
    let resources = t
        .items(
            "Resources",
            json!([{"op": "eq", "field": "isActive", "value": true}]),
        )
        .await?;
    ensure!(
        resources.iter().any(|r| r["id"] == ids::API_RESOURCE) && resources.len() >= 3,
        "{resources:?}"
    );
    let cats = t
        .items(
            "TicketCategories",
            json!([{"op": "exist", "field": "name"}]),
        )
        .await?;
    ensure!(
        cats.iter().any(|c| c["id"] == ids::DEFAULT_CATEGORY),
        "{cats:?}"
    );
    let contracts = t
        .items(
            "Contracts",
            json!([{"op": "eq", "field": "contractType", "value": 7}]),
        )
        .await?;
    ensure!(
        contracts.len() == 4 && contracts.iter().all(|c| c["status"] == 1),
        "{contracts:?}"
    );
    Ok(())
}
