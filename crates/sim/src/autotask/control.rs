//! The control surface under `/_sim/`: faults, statistics, and what people do in the PSA.
//!
//! Kept apart from the API (no Autotask authentication, never faulted, never counted against
//! the limits) so that tests and demos can steer the simulator while it is being hammered.
//! Ticket actions here are a technician's: they are checked like API writes and fire webhooks
//! like any update, and they answer only once the callouts have been delivered, so a test that
//! completes a ticket and then acts sees the callout first.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::entities::{write_create, write_update};
use super::model::ids;
use super::query::coerce_i64;
use super::validation::Write;
use super::{ApiError, Shared};
use crate::control::{bad, ok};

const ENDPOINTS: &[&str] = &[
    "GET /_sim",
    "POST /_sim/faults {kind: status|html|delay|timeout|drop|after_commit, status, retry_after_secs, delay_ms, hold_ms, count, probability, seed, entity, method, path_contains}",
    "GET /_sim/faults",
    "DELETE /_sim/faults",
    "GET /_sim/stats",
    "POST /_sim/reset-stats",
    "POST /_sim/reset (data back to the seed; faults and statistics cleared)",
    "GET /_sim/tickets?open=true&limit=N (normalised views)",
    "GET /_sim/fixtures (facts about the seed, for conformance suites)",
    "GET /_sim/billing (every service on a contract: contract_id, service_id, service_name, this period's units, unit_cost, unit_price)",
    "GET /_sim/tickets/{id} (normalised view, the Autotask record under raw)",
    "POST /_sim/tickets/{id}/complete (also /close)",
    "POST /_sim/tickets/{id}/reopen",
    "POST /_sim/tickets/{id}/update {field: value, ...}",
    "POST /_sim/tickets/{id}/notes {description, title?, noteType?, publish?}",
    "GET /_sim/webhook-deliveries",
    "POST /_sim/companies {count, name_prefix, contracts} (adds that many active customer companies, with `contracts: true` each with a Recurring Service contract carrying the security seat: a large PSA for benchmarks; answers first_id and the [company, contract] pairs)",
];

/// `/_sim/...` (`segs` are the segments after `_sim`).
pub async fn handle(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    query: Option<&str>,
    body: &Bytes,
) -> Response {
    let lower: Vec<String> = segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(r) = crate::control::faults_route(&s.faults, method.as_str(), &parts, body) {
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => ok(
            json!({"simulator": "Autotask PSA REST API", "zone_url": s.zone_url, "endpoints": ENDPOINTS}),
        ),
        ("GET", ["stats"]) => ok(s.stats_json()),
        ("POST", ["reset-stats"]) => {
            s.reset_stats();
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["reset"]) => {
            s.reset_data();
            s.faults.clear();
            s.reset_stats();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["fixtures"]) => ok(fixtures(s)),
        ("GET", ["billing"]) => ok(super::billing::lines_now(&s.db(), chrono::Utc::now())),
        ("GET", ["webhook-deliveries"]) => ok(json!({"deliveries": s.deliveries.list()})),
        ("POST", ["companies"]) => add_companies(s, body),
        ("GET", ["tickets"]) => {
            let params: Vec<(String, String)> = query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let open_only = get("open").is_some_and(|v| v == "true" || v == "1");
            let limit: usize = get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
            let db = s.db();
            let tickets: Vec<Value> = db
                .table("Tickets")
                .into_iter()
                .flat_map(|t| t.values())
                .filter(|t| {
                    !open_only || t.get("status").and_then(coerce_i64) != Some(ids::STATUS_COMPLETE)
                })
                .take(limit)
                .map(|t| {
                    let id = t.get("id").and_then(coerce_i64).unwrap_or_default();
                    normalised(t, &db.children_of("TicketNotes", id))
                })
                .collect();
            ok(json!({ "tickets": tickets }))
        }
        ("GET", ["tickets", id]) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("'{id}' is not a ticket id"),
                );
            };
            let db = s.db();
            match db.get("Tickets", id) {
                Some(t) => ok(normalised(t, &db.children_of("TicketNotes", id))),
                None => bad(StatusCode::NOT_FOUND, "no such ticket"),
            }
        }
        (
            "POST",
            [
                "tickets",
                id,
                action @ ("complete" | "close" | "reopen" | "update" | "notes"),
            ],
        ) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("'{id}' is not a ticket id"),
                );
            };
            if !s.db().exists("Tickets", id) {
                return bad(StatusCode::NOT_FOUND, "no such ticket");
            }
            let mut fields: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
                Map::new()
            } else {
                match serde_json::from_slice(body) {
                    Ok(Value::Object(m)) => m,
                    _ => return bad(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
                }
            };
            technician(s, id, action, &mut fields).await
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown control endpoint", "endpoints": ENDPOINTS})),
        )
            .into_response(),
    }
}

/// A technician's action on a ticket.
async fn technician(
    s: &Arc<Shared>,
    id: i64,
    action: &str,
    fields: &mut Map<String, Value>,
) -> Response {
    let Some(tickets) = s.entity("Tickets") else {
        return bad(StatusCode::INTERNAL_SERVER_ERROR, "no Tickets entity");
    };
    let result = match action {
        "notes" => {
            let Some(notes) = s.entity("TicketNotes") else {
                return bad(StatusCode::INTERNAL_SERVER_ERROR, "no TicketNotes entity");
            };
            fields
                .entry("noteType")
                .or_insert(json!(ids::NOTE_TYPE_SUMMARY));
            fields.entry("publish").or_insert(json!(ids::PUBLISH_ALL));
            write_create(
                s,
                notes,
                fields,
                Some(("ticketID", id)),
                ids::TECHNICIAN,
                None,
                true,
            )
            .await
            .map(|n| json!({"note": n}))
        }
        _ => {
            if action == "complete" || action == "close" {
                fields.insert("status".into(), json!(ids::STATUS_COMPLETE));
            }
            if action == "reopen" {
                fields.insert("status".into(), json!(ids::STATUS_IN_PROGRESS));
            }
            fields.insert("id".into(), json!(id));
            write_update(
                s,
                tickets,
                fields,
                Write::Patch,
                None,
                ids::TECHNICIAN,
                None,
                true,
            )
            .await
            .map(|t| json!({"ticket": t}))
        }
    };
    match result {
        Ok(v) => ok(v),
        Err(ApiError::Server(m)) => bad(StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// Facts about the seed in PSA Bridge's terms, so that one conformance suite can drive every
/// simulator (see the crate docs).
fn fixtures(s: &Arc<Shared>) -> Value {
    let db = s.db();
    let active_companies = db
        .table("Companies")
        .into_iter()
        .flat_map(|t| t.values())
        .filter(|c| c.get("isActive").and_then(Value::as_bool) == Some(true))
        .count();
    let contacts_with = |email: &str| -> Vec<String> {
        db.table("Contacts")
            .into_iter()
            .flat_map(|t| t.values())
            .filter(|c| {
                c.get("isActive").and_then(coerce_i64) == Some(1)
                    && c.get("emailAddress")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .filter_map(|c| c.get("id").and_then(coerce_i64).map(|i| i.to_string()))
            .collect()
    };
    json!({
        "search": "acme",
        "company_id": ids::ACME.to_string(),
        "company_name": "Acme Dental Group",
        "active_companies": active_companies,
        "contact_email": "maria.lopez@acmedental.example",
        "contact_id": contacts_with("maria.lopez@acmedental.example").first(),
        "primary_contact_id": primary_contact_of(&db, ids::ACME),
        "duplicate_email": "Front.Desk@acmedental.example",
        "duplicate_contact_ids": contacts_with("front.desk@acmedental.example"),
        "missing_email": "nobody@acmedental.example",
        "defaults": {
            "queue": ids::QUEUE_SECURITY_ALERTS.to_string(),
            "status": ids::STATUS_NEW.to_string(),
            "priority": ids::PRIORITY_HIGH.to_string(),
            "issue_type": ids::ISSUE_SECURITY.to_string(),
            "sub_issue_type": "103",
            "source": "2",
            "ticket_type": ids::TICKET_TYPE_ALERT.to_string(),
        },
        "close_status": ids::STATUS_COMPLETE.to_string(),
        "contracts": contracts_of(&db, ids::ACME),
        "contract_id": ids::ACME_CONTRACT.to_string(),
        "other_company_contract_id": ids::OTHER_COMPANY_CONTRACT.to_string(),
        "unknown_contract_id": "29699999",
    })
}

/// The lowest-id active contact Autotask marks `primaryContact` in a company.
fn primary_contact_of(db: &super::store::Db, company: i64) -> Option<String> {
    db.table("Contacts")
        .into_iter()
        .flat_map(|t| t.values())
        .filter(|c| {
            c.get("companyID").and_then(coerce_i64) == Some(company)
                && c.get("isActive").and_then(coerce_i64) == Some(1)
                && c.get("primaryContact").and_then(Value::as_bool) == Some(true)
        })
        .filter_map(|c| c.get("id").and_then(coerce_i64))
        .min()
        .map(|id| id.to_string())
}

/// A company's contracts in PSA Bridge's terms: active when in force today (status 1 Active
/// and not past its end date).
fn contracts_of(db: &super::store::Db, company: i64) -> Vec<Value> {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    db.table("Contracts")
        .into_iter()
        .flat_map(|t| t.values())
        .filter(|c| c.get("companyID").and_then(coerce_i64) == Some(company))
        .map(|c| {
            json!({
                "id": c.get("id").and_then(coerce_i64).map(|i| i.to_string()),
                "name": c.get("contractName"),
                "active": c.get("status").and_then(coerce_i64) == Some(1)
                    && c.get("endDate")
                        .and_then(Value::as_str)
                        .and_then(|d| d.get(..10))
                        .is_none_or(|end| end >= today.as_str()),
            })
        })
        .collect()
}

/// A ticket in PSA Bridge's terms, with the Autotask record under `raw`.
fn normalised(t: &Value, notes: &[Value]) -> Value {
    let id_text = |v: Option<&Value>| v.and_then(coerce_i64).map(|i| i.to_string());
    let mut fields = Map::new();
    for (theirs, ours) in [
        ("queueID", "queue"),
        ("status", "status"),
        ("priority", "priority"),
        ("issueType", "issue_type"),
        ("subIssueType", "sub_issue_type"),
        ("source", "source"),
        ("ticketType", "ticket_type"),
    ] {
        if let Some(v) = id_text(t.get(theirs)) {
            fields.insert(ours.into(), Value::String(v));
        }
    }
    let status = t.get("status").and_then(coerce_i64);
    json!({
        "id": id_text(t.get("id")),
        "closed": status == Some(ids::STATUS_COMPLETE),
        "status": id_text(t.get("status")),
        "company_id": id_text(t.get("companyID")),
        "contact_id": id_text(t.get("contactID")),
        "contract_id": id_text(t.get("contractID")),
        "title": t.get("title"),
        "description": t.get("description"),
        "reference": t.get("externalID"),
        "fields": fields,
        "notes": notes.iter().map(|n| json!({
            "text": n.get("description"),
            "internal": n.get("publish").and_then(coerce_i64) != Some(ids::PUBLISH_ALL),
        })).collect::<Vec<_>>(),
        "raw": t,
    })
}

/// `POST /_sim/companies {count, name_prefix}`: many more customer companies, numbered, for
/// the portal's and the import's benchmarks (an MSP with 20,000 companies in its PSA).
fn add_companies(s: &Arc<Shared>, body: &Bytes) -> Response {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(count) = req
        .get("count")
        .and_then(Value::as_u64)
        .filter(|n| *n <= 100_000)
    else {
        return bad(StatusCode::BAD_REQUEST, "count: 0 to 100000 companies");
    };
    let prefix = req
        .get("name_prefix")
        .and_then(Value::as_str)
        .unwrap_or("Customer");
    let Some(entity) = super::all_entities().iter().find(|e| e.name == "Companies") else {
        return bad(StatusCode::INTERNAL_SERVER_ERROR, "no Companies entity");
    };
    let with_contracts = req.get("contracts").and_then(Value::as_bool) == Some(true);
    let Some(contracts_entity) = super::all_entities().iter().find(|e| e.name == "Contracts")
    else {
        return bad(StatusCode::INTERNAL_SERVER_ERROR, "no Contracts entity");
    };
    let billing = super::billing_entities();
    let now = chrono::Utc::now();
    let year = chrono::Datelike::year(&now);
    let mut db = s.db();
    let mut first = None;
    let mut contracts = Vec::new();
    for n in 0..count {
        let id = db.next_id();
        first.get_or_insert(id);
        let mut record = json!({"id": id, "companyName": format!("{prefix} {:05}", n + 1),
            "companyType": 1, "isActive": true, "phone": "312-555-0000",
            "companyNumber": format!("B{id}")});
        super::store::fill(entity, &mut record);
        db.put(entity, id, record);
        if with_contracts {
            // An active Recurring Service contract carrying the security seat at 0 units.
            let contract = db.next_id();
            let mut c = json!({"id": contract, "companyID": id,
                "contractName": format!("{prefix} {:05} Managed Security", n + 1),
                "contractNumber": format!("MS-B{contract}"), "contractType": 7, "status": 1,
                "startDate": format!("{year}-01-01T00:00:00Z"),
                "endDate": format!("{}-12-31T00:00:00Z", year + 1),
                "timeReportingRequiresStartAndStopTimes": 0, "isDefaultContract": false,
                "setupFee": 0.0});
            super::store::fill(contracts_entity, &mut c);
            db.put(contracts_entity, contract, c);
            super::billing::add_service(
                &mut db,
                &billing,
                contract,
                ids::SERVICE_SECURITY_SEAT,
                None,
                None,
                now,
            );
            contracts.push(json!([id, contract]));
        }
    }
    s.mark_dirty();
    ok(json!({"added": count, "first_id": first, "contracts": contracts}))
}
