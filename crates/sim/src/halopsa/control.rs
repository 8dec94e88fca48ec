//! The control surface under `/_sim/`: faults, statistics, fixtures, a normalised view of
//! tickets, and a technician's close and reopen. No Halo authentication; never faulted,
//! counted or limited.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Shared;
use super::api::{Params, follow_status, id_of, status_closed};
use super::seed::{self, ids};
use super::store::Db;
use crate::control::{bad, ok};

const ENDPOINTS: &[&str] = &[
    "GET /_sim",
    "POST /_sim/faults {kind: status|html|delay|timeout|drop|after_commit, status, retry_after_secs, delay_ms, hold_ms, count, probability, seed, entity, method, path_contains}",
    "GET /_sim/faults",
    "DELETE /_sim/faults",
    "GET /_sim/stats",
    "POST /_sim/reset (data back to the seed; faults and statistics cleared)",
    "POST /_sim/expire-tokens (every issued access token stops working)",
    "GET /_sim/fixtures",
    "GET /_sim/tickets?open=true",
    "GET /_sim/tickets/{id}",
    "POST /_sim/tickets/{id}/close",
    "POST /_sim/tickets/{id}/reopen (webhooks are called before the answer)",
    "GET /_sim/webhook-deliveries",
    "GET /_sim/billing (every recurring invoice line on a contract: contract_id, service_id, service_name, units, unit_cost, unit_price)",
];

pub fn handle(s: &Shared, method: &Method, segs: &[String], query: &str, body: &Bytes) -> Response {
    let lower: Vec<String> = segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(r) = crate::control::faults_route(&s.faults, method.as_str(), &parts, body) {
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => ok(json!({
            "simulator": "HaloPSA REST API",
            "resource_url": s.base_url,
            "auth_url": format!("{}/auth", s.base_url),
            "tenant": s.config.tenant,
            "endpoints": ENDPOINTS,
        })),
        ("GET", ["stats"]) => ok(s.stats_json()),
        ("GET", ["webhook-deliveries"]) => ok(json!({"deliveries": s.webhooks.deliveries()})),
        ("POST", ["reset"]) => {
            s.reset();
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["expire-tokens"]) => {
            s.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["fixtures"]) => ok(fixtures(&s.db())),
        ("GET", ["billing"]) => ok(super::billing::lines_view(&s.db())),
        ("GET", ["tickets"]) => {
            let p = Params::parse(query);
            let open_only = p.flag("open") == Some(true);
            let db = s.db();
            let tickets: Vec<Value> = db
                .table("Tickets")
                .keys()
                .filter_map(|id| ticket_view(&db, *id))
                .filter(|t| !open_only || t["closed"] == json!(false))
                .collect();
            ok(json!({"tickets": tickets}))
        }
        ("GET", ["tickets", id]) => match id
            .parse::<i64>()
            .ok()
            .and_then(|id| ticket_view(&s.db(), id))
        {
            Some(t) => ok(t),
            None => bad(StatusCode::NOT_FOUND, "no such ticket"),
        },
        ("POST", ["tickets", id, action @ ("close" | "reopen")]) => {
            let Ok(id) = id.parse::<i64>() else {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("'{id}' is not a ticket id"),
                );
            };
            let mut db = s.db();
            let Some(mut t) = db.get("Tickets", id).and_then(Value::as_object).cloned() else {
                return bad(StatusCode::NOT_FOUND, "no such ticket");
            };
            let status = if *action == "close" {
                ids::STATUS_CLOSED
            } else {
                2
            };
            let now = super::now_text();
            t.insert("status_id".into(), json!(status));
            follow_status(&db, &mut t, &now);
            db.put("Tickets", id, Value::Object(t));
            let aid = db.next_id("Actions");
            let name = if *action == "close" {
                "Closed"
            } else {
                "In Progress"
            };
            db.put(
                "Actions",
                aid,
                json!({"id": aid, "ticket_id": id, "outcome": "Status Change",
                       "note": format!("Status changed to {name} by Ben Carter"),
                       "hiddenfromuser": true, "datetime": now, "who": "Ben Carter", "who_type": 1,
                       "who_agentid": 3, "action_systemid": 2, "new_status": status}),
            );
            match ticket_view(&db, id) {
                Some(v) => ok(v),
                None => bad(StatusCode::NOT_FOUND, "no such ticket"),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown control endpoint", "endpoints": ENDPOINTS})),
        )
            .into_response(),
    }
}

fn id_text(v: &Value) -> Option<String> {
    id_of(v).filter(|i| *i != 0).map(|i| i.to_string())
}

/// A ticket in PSA Bridge's terms, with the record as the API returns it under `raw`.
pub fn ticket_view(db: &Db, id: i64) -> Option<Value> {
    let t = db.get("Tickets", id)?;
    let mut fields = Map::new();
    for (ours, theirs) in [
        ("ticket_type", "tickettype_id"),
        ("status", "status_id"),
        ("priority", "priority_id"),
        ("sla", "sla_id"),
        ("agent", "agent_id"),
        ("urgency", "urgency"),
        ("impact", "impact"),
    ] {
        if let Some(v) = id_text(&t[theirs]) {
            fields.insert(ours.into(), json!(v));
        }
    }
    for (ours, theirs) in [("team", "team"), ("category", "category_1")] {
        if let Some(v) = t[theirs].as_str().filter(|v| !v.is_empty()) {
            fields.insert(ours.into(), json!(v));
        }
    }
    let status = id_of(&t["status_id"]).unwrap_or_default();
    let closed = t["hasbeenclosed"].as_bool().unwrap_or(false) || status_closed(db, status);
    let client = id_of(&t["client_id"]).unwrap_or_default();
    let site = id_of(&t["site_id"]).unwrap_or_default();
    let main_site = db
        .get("Client", client)
        .and_then(|c| id_of(&c["main_site_id"]));
    let multi = db
        .table("Site")
        .values()
        .filter(|s| {
            id_of(&s["client_id"]) == Some(client) && !s["inactive"].as_bool().unwrap_or(false)
        })
        .count()
        > 1;
    let company_id = if multi && site != 0 && Some(site) != main_site {
        format!("{client}/{site}")
    } else {
        client.to_string()
    };
    let notes: Vec<Value> = db
        .table("Actions")
        .values()
        .filter(|a| id_of(&a["ticket_id"]) == Some(id) && a["action_systemid"].as_i64().unwrap_or(0) == 0)
        .map(|a| json!({"text": a["note"], "internal": a["hiddenfromuser"].as_bool().unwrap_or(false)}))
        .collect();
    Some(json!({
        "id": id.to_string(),
        "closed": closed,
        "status": status.to_string(),
        "company_id": company_id,
        "client_id": client.to_string(),
        "site_id": (site != 0).then(|| site.to_string()),
        "contact_id": id_text(&t["user_id"]),
        "contract_id": id_of(&t["contract_id"]).filter(|c| *c > 0).map(|c| c.to_string()),
        "title": t["summary"],
        "description": t["details"],
        "reference": t["supplier_reference"].as_str().filter(|r| !r.is_empty()),
        "fields": fields,
        "notes": notes,
        "raw": t,
    }))
}

/// Facts about the seed, in PSA Bridge's terms.
pub fn fixtures(db: &Db) -> Value {
    json!({
        "search": "acme",
        "company_id": ids::ACME.to_string(),
        "company_name": "Acme Ltd",
        "active_companies": seed::active_companies(db),
        "contact_email": "bob@acme.test",
        "contact_id": ids::BOB.to_string(),
        "primary_contact_id": seed::main_contact_of_client(db, ids::ACME).map(|id| id.to_string()),
        "duplicate_email": "shared@acme.test",
        "duplicate_contact_ids": [ids::SHARED_1.to_string(), ids::SHARED_2.to_string()],
        "missing_email": "nobody@acme.test",
        "site_company_id": format!("{}/{}", ids::ACME, ids::ACME_WAREHOUSE),
        "defaults": {
            "ticket_type": ids::TICKET_TYPE_SECURITY.to_string(),
            "status": ids::STATUS_NEW.to_string(),
            "priority": ids::PRIORITY_HIGH.to_string(),
            "sla": ids::SLA_STANDARD.to_string(),
            "team": ids::TEAM_SECURITY,
            "agent": ids::AGENT_ERIN.to_string(),
            "category": ids::CATEGORY_SECURITY,
            "urgency": ids::URGENCY_HIGH.to_string(),
            "impact": ids::IMPACT_SINGLE.to_string(),
        },
        "close_status": ids::STATUS_CLOSED.to_string(),
        "contracts": db
            .table("ClientContract")
            .values()
            // The company `12` is the client without a site: its site contracts belong to the
            // companies of its sites.
            .filter(|c| {
                id_of(&c["client_id"]) == Some(ids::ACME) && id_of(&c["site_id"]).unwrap_or(0) == 0
            })
            .map(|c| json!({
                "id": id_of(&c["id"]).map(|i| i.to_string()),
                "name": c["ref"],
                "active": c["active"].as_bool() == Some(true) && c["expired"].as_bool() != Some(true),
            }))
            .collect::<Vec<_>>(),
        "contract_id": ids::ACME_CONTRACT.to_string(),
        "other_company_contract_id": ids::OTHER_CLIENT_CONTRACT.to_string(),
        "unknown_contract_id": "4999",
    })
}

/// The ticket a control request changes the status of, if it is a close or reopen.
pub fn status_changed_by(method: &Method, segs: &[String]) -> Option<i64> {
    match segs {
        [t, id, action]
            if method == Method::POST
                && t.eq_ignore_ascii_case("tickets")
                && (action.eq_ignore_ascii_case("close")
                    || action.eq_ignore_ascii_case("reopen")) =>
        {
            id.parse().ok()
        }
        _ => None,
    }
}
