//! What the simulator answers, checked against the models of Autotask's Swagger document.
//!
//! `tests/fixtures/autotask-models.json` is an excerpt of the vendor's Swagger 2.0 definitions
//! (made by `tests/fixtures/extract_models.py`). Every property of an answer must exist in its
//! model with the right JSON type; a misspelt or mistyped field fails here.

use anyhow::{Result, bail, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::common::{body, start};

fn models() -> Result<Map<String, Value>> {
    let text = include_str!("../fixtures/autotask-models.json");
    match serde_json::from_str(text)? {
        Value::Object(m) => Ok(m),
        _ => bail!("the models fixture is not an object"),
    }
}

/// Check `v` against the schema `schema` (a property or a model); problems into `out`.
fn check(defs: &Map<String, Value>, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if v.is_null() {
        return; // every Swagger 2.0 property here is nullable in practice
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        match defs.get(name) {
            Some(model) => check_model(defs, name, model, v, path, out),
            None => out.push(format!("{path}: unknown model {name}")),
        }
        return;
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("string") => {
            v.is_string()
                && (schema.get("format").and_then(Value::as_str) != Some("date-time")
                    || v.as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some())
        }
        Some("array") => match v.as_array() {
            Some(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        check(defs, item_schema, item, &format!("{path}[{i}]"), out);
                    }
                }
                true
            }
            None => false,
        },
        Some("object") => v.is_object(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: {v} is not a {schema}"));
    }
}

fn check_model(
    defs: &Map<String, Value>,
    name: &str,
    model: &Value,
    v: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let Some(props) = model.get("properties").and_then(Value::as_object) else {
        return;
    };
    if props.is_empty() {
        return; // `Object`, enums: anything goes
    }
    let Some(obj) = v.as_object() else {
        out.push(format!("{path}: {v} is not a {name}"));
        return;
    };
    for (k, value) in obj {
        match props.get(k) {
            Some(schema) => check(defs, schema, value, &format!("{path}.{k}"), out),
            None => out.push(format!("{path}.{k}: {name} has no such property")),
        }
    }
}

fn conforms(defs: &Map<String, Value>, model: &str, v: &Value) -> Result<()> {
    let mut out = Vec::new();
    let Some(m) = defs.get(model) else {
        bail!("no model {model}")
    };
    check_model(defs, model, m, v, model, &mut out);
    ensure!(out.is_empty(), "{model}:\n{}", out.join("\n"));
    Ok(())
}

#[tokio::test]
async fn answers_match_the_vendor_models() -> Result<()> {
    let defs = models()?;
    let t = start(Config::default()).await?;
    let r = t
        .http
        .get(format!(
            "{}/ATServicesRest/V1.0/zoneInformation?user={}",
            t.sim.base_url(),
            t.user
        ))
        .send()
        .await?;
    conforms(&defs, "ZoneInformationResultModel", &body(r).await?.1)?;
    let (_, v) = body(
        t.http
            .get(format!(
                "{}/ATServicesRest/VersionInformation",
                t.sim.base_url()
            ))
            .send()
            .await?,
    )
    .await?;
    conforms(&defs, "ApiVersionResultModel", &v)?;
    conforms(
        &defs,
        "AutotaskVersionResultModel",
        &t.call(Method::GET, "Version", None).await?.1,
    )?;
    conforms(
        &defs,
        "ModuleAccessResultModel",
        &t.call(Method::GET, "Modules", None).await?.1,
    )?;
    conforms(
        &defs,
        "ThresholdStatusResultModel",
        &t.call(Method::GET, "ThresholdInformation", None).await?.1,
    )?;

    let id = t.new_ticket("checked against the model").await?;
    let (_, full) = t
        .call(Method::POST, "Tickets", Some(json!({"companyID": ids::ACME, "contactID": 30684101, "title": "full", "status": 1, "priority": 4,
            "queueID": ids::QUEUE_SECURITY_ALERTS, "issueType": 10, "subIssueType": 103, "source": 6, "ticketType": 5, "ticketCategory": 4,
            "description": "d", "externalID": "x-1", "estimatedHours": 1.5, "dueDateTime": "2026-12-01T00:00:00Z",
            "assignedResourceID": ids::TECHNICIAN, "assignedResourceRoleID": ids::ROLE_TECHNICIAN,
            "userDefinedFields": [{"name": "Alert Source", "value": "EDR"}]})))
        .await?;
    let full_id = full["itemId"].as_i64().unwrap_or_default();
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": full_id, "status": 5})),
    )
    .await?;
    for tid in [id, full_id] {
        let (_, v) = t.call(Method::GET, &format!("Tickets/{tid}"), None).await?;
        ensure!(v["item"]["id"] == tid, "{v}");
        conforms(&defs, "ItemQueryResultModel[TicketModel,Ticket]", &v)?;
    }
    let (_, q) = t
        .query(
            "Tickets",
            json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 1}),
        )
        .await?;
    ensure!(q["pageDetails"]["nextPageUrl"].is_string(), "{q}");
    conforms(&defs, "QueryActionResult[TicketModel,Ticket]", &q)?;
    let (_, q) = t.query("Tickets", json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "IncludeFields": ["title", "status"]})).await?;
    conforms(&defs, "QueryActionResult[TicketModel,Ticket]", &q)?;
    conforms(
        &defs,
        "QueryCountResultModel",
        &t.call(
            Method::POST,
            "Tickets/query/count",
            Some(json!({"filter": []})),
        )
        .await?
        .1,
    )?;
    t.call(
        Method::POST,
        &format!("Tickets/{id}/Notes"),
        Some(json!({"title": "t", "description": "d", "noteType": 1, "publish": 1})),
    )
    .await?;

    for (entity, model) in [
        ("Companies", "CompanyModel"),
        ("Contacts", "ContactModel"),
        ("TicketNotes", "TicketNoteModel"),
        ("Resources", "ResourceModel"),
        ("TicketCategories", "TicketCategoryModel"),
        ("Contracts", "ContractModel"),
        ("Services", "ServiceModel"),
        ("ContractServices", "ContractServiceModel"),
        ("ContractServiceUnits", "ContractServiceUnitModel"),
        ("BillingCodes", "BillingCodeModel"),
    ] {
        let items = t
            .items(entity, json!([{"op": "gte", "field": "id", "value": 0}]))
            .await?;
        ensure!(!items.is_empty(), "{entity}");
        for item in &items {
            conforms(&defs, model, item)?;
        }
        let (_, f) = t
            .call(
                Method::GET,
                &format!("{entity}/entityInformation/fields"),
                None,
            )
            .await?;
        conforms(&defs, "FieldInformationResultModel", &f)?;
        // Every field the metadata names is a property of the model.
        let props = defs[model]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for field in f["fields"].as_array().into_iter().flatten() {
            let name = field["name"].as_str().unwrap_or_default();
            ensure!(props.contains_key(name), "{model} has no {name}");
        }
        conforms(
            &defs,
            "EntityInformationResultModel",
            &t.call(Method::GET, &format!("{entity}/entityInformation"), None)
                .await?
                .1,
        )?;
        conforms(
            &defs,
            "UserDefinedFieldInformationResultModel",
            &t.call(
                Method::GET,
                &format!("{entity}/entityInformation/userDefinedFields"),
                None,
            )
            .await?
            .1,
        )?;
    }

    let (_, w) = t
        .call(Method::POST, "TicketWebhooks", Some(json!({"name": "m", "webhookUrl": "http://127.0.0.1:9/hook", "secretKey": "k", "isActive": false,
            "isSubscribedToCreateEvents": false, "isSubscribedToUpdateEvents": true, "isSubscribedToDeleteEvents": false,
            "sendThresholdExceededNotification": false})))
        .await?;
    let hook = w["itemId"].as_i64().unwrap_or_default();
    t.call(
        Method::POST,
        &format!("TicketWebhooks/{hook}/Fields"),
        Some(json!({"fieldID": 13, "isSubscribedField": true, "isDisplayAlwaysField": false})),
    )
    .await?;
    conforms(
        &defs,
        "TicketWebhookModel",
        &t.call(Method::GET, &format!("TicketWebhooks/{hook}"), None)
            .await?
            .1["item"],
    )?;
    for f in t
        .items(
            "TicketWebhookFields",
            json!([{"op": "eq", "field": "webhookID", "value": hook}]),
        )
        .await?
    {
        conforms(&defs, "TicketWebhookFieldModel", &f)?;
    }
    // Create-only entities: their metadata names only properties of their model.
    let (_, f) = t
        .call(
            Method::GET,
            "ContractServiceAdjustments/entityInformation/fields",
            None,
        )
        .await?;
    let props = defs["ContractServiceAdjustmentModel"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for field in f["fields"].as_array().cloned().unwrap_or_default() {
        let name = field["name"].as_str().unwrap_or_default();
        ensure!(
            props.contains_key(name),
            "ContractServiceAdjustments: {name}"
        );
    }
    Ok(())
}

#[test]
fn the_check_catches_wrong_names_and_types() -> Result<()> {
    let defs = models()?;
    ensure!(conforms(&defs, "TicketNoteModel", &json!({"id": 1, "noteType": 1})).is_ok());
    ensure!(
        conforms(&defs, "TicketNoteModel", &json!({"id": 1, "notetype": 1})).is_err(),
        "a misspelt property"
    );
    ensure!(
        conforms(&defs, "TicketNoteModel", &json!({"id": 1, "noteType": "1"})).is_err(),
        "a string for an integer"
    );
    ensure!(
        conforms(&defs, "TicketModel", &json!({"createDate": "yesterday"})).is_err(),
        "not a date-time"
    );
    ensure!(
        conforms(&defs, "ContactModel", &json!({"isActive": true})).is_err(),
        "isActive is an integer"
    );
    Ok(())
}
