//! The control surface under `/_sim/`: faults, statistics, seed facts, a normalised view of
//! tickets, the service lines on agreements (`billing`), and what a technician does in the PSA. No ConnectWise authentication; never
//! faulted, throttled or counted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::conditions;
use super::seed::{
    ACME_AGREEMENT, ACME_CANCELLED_AGREEMENT, ACME_ID, BOB_ID, HELP_DESK, OTHER_COMPANY_AGREEMENT,
    RETIRED_ITEM, SECURITY_SEAT, SECURITY_SEAT_NAME,
};
use super::store::*;
use super::tickets;
use crate::control::{bad, ok};

const ENDPOINTS: &[&str] = &[
    "GET /_sim",
    "POST /_sim/faults {kind: status|html|delay|timeout|drop|after_commit, status, retry_after_secs, delay_ms, hold_ms, count, probability, seed, entity, method, path_contains}",
    "GET /_sim/faults",
    "DELETE /_sim/faults",
    "GET /_sim/stats",
    "POST /_sim/reset (data back to the seed; faults, limits and statistics cleared)",
    "GET /_sim/fixtures",
    "GET /_sim/tickets?open=true",
    "GET /_sim/tickets/{id}",
    "POST /_sim/tickets/{id}/close",
    "POST /_sim/tickets/{id}/reopen (ticket callbacks are called before the answer)",
    "GET /_sim/callback-deliveries",
    "GET /_sim/billing (agreement additions in force: contract_id, service_id, service_name, units, unit_cost, unit_price)",
];

/// The filter our connector's company list uses: not deleted, not in the Inactive status.
pub const ACTIVE_COMPANIES: &str = "deletedFlag=false and status/name!=\"Inactive\"";

fn id_text(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |i| json!(i.to_string()))
}

/// A ticket in PSA Bridge's terms.
pub fn normalised(db: &Db, t: &Value) -> Value {
    let id = id_of(t).unwrap_or_default();
    let notes = db.notes_of(id);
    let description = notes
        .iter()
        .find(|n| flag(n, INITIAL_DESCRIPTION))
        .map(|n| text(n, "text"))
        .unwrap_or_default();
    let mut fields = serde_json::Map::new();
    for (ours, theirs) in [
        ("board", "board"),
        ("status", "status"),
        ("type", "type"),
        ("subtype", "subType"),
        ("item", "item"),
        ("team", "team"),
        ("priority", "priority"),
        ("source", "source"),
    ] {
        if let Some(i) = ref_id(t, theirs) {
            fields.insert(ours.into(), json!(i.to_string()));
        }
    }
    let closed = flag(t, "closedFlag")
        || ref_id(t, "status")
            .and_then(|s| db.get(STATUSES, s))
            .is_some_and(|s| flag(s, "closedStatus"));
    json!({
        "id": id.to_string(),
        "closed": closed,
        "status": id_text(ref_id(t, "status")),
        "company_id": id_text(ref_id(t, "company")),
        "contact_id": id_text(ref_id(t, "contact")),
        "contract_id": id_text(ref_id(t, "agreement")),
        "title": text(t, "summary"),
        "description": description,
        "reference": t.get("externalXRef").and_then(Value::as_str).filter(|s| !s.is_empty()),
        "fields": fields,
        "notes": notes.iter().filter(|n| !flag(n, INITIAL_DESCRIPTION)).map(|n| json!({
            "text": text(n, "text"),
            "internal": flag(n, "internalAnalysisFlag"),
        })).collect::<Vec<_>>(),
        "raw": clean(t),
    })
}

/// Facts about the seed, in PSA Bridge's terms.
pub fn fixtures(db: &Db) -> Value {
    let active = conditions::parse(ACTIVE_COMPANIES)
        .map(|e| {
            db.table(COMPANIES)
                .values()
                .filter(|c| e.matches(c))
                .count()
        })
        .unwrap_or_default();
    let acme = db.get(COMPANIES, ACME_ID);
    let dupes: Vec<String> = db
        .table(CONTACTS)
        .values()
        .filter(|c| {
            ref_id(c, "company") == Some(ACME_ID)
                && !flag(c, "inactiveFlag")
                && contact_email(c).is_some_and(|e| e.eq_ignore_ascii_case("shared@acme.test"))
        })
        .filter_map(id_of)
        .map(|i| i.to_string())
        .collect();
    let board = HELP_DESK;
    let first = |table: &str, pred: &dyn Fn(&Value) -> bool| {
        let mut rows: Vec<&Value> = db
            .on_board(table, board)
            .into_iter()
            .filter(|r| pred(r))
            .collect();
        rows.sort_by_key(|r| (r.get("sortOrder").and_then(Value::as_i64), id_of(r)));
        rows.first().and_then(|r| id_of(r))
    };
    let status = first(STATUSES, &|s| {
        flag(s, "defaultFlag") && !flag(s, "inactive")
    });
    let ty = first(TYPES, &|t| {
        flag(t, "defaultFlag") && !flag(t, "inactiveFlag")
    });
    let subtype = first(SUBTYPES, &|s| {
        !flag(s, "inactiveFlag")
            && s["typeAssociationIds"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x.as_i64() == ty))
    });
    let item = first(ITEMS, &|i| !flag(i, "inactiveFlag"));
    let team = first(TEAMS, &|_| true);
    let close = first(STATUSES, &|s| {
        flag(s, "closedStatus") && !flag(s, "inactive")
    });
    let priority = db
        .table(PRIORITIES)
        .values()
        .find(|p| flag(p, "defaultFlag"))
        .and_then(id_of);
    let source = db
        .table(SOURCES)
        .values()
        .find(|s| text(s, "name") == "Security Alert")
        .and_then(id_of);
    json!({
        "search": "acme",
        "company_id": ACME_ID.to_string(),
        "company_name": acme.map(|a| text(a, "name")).unwrap_or_default(),
        "active_companies": active,
        "contact_email": "bob@acme.test",
        "contact_id": BOB_ID.to_string(),
        "primary_contact_id": BOB_ID.to_string(),
        "duplicate_email": "shared@acme.test",
        "duplicate_contact_ids": dupes,
        "missing_email": "nobody@acme.test",
        "defaults": {
            "board": board.to_string(),
            "status": id_text(status),
            "type": id_text(ty),
            "subtype": id_text(subtype),
            "item": id_text(item),
            "team": id_text(team),
            "priority": id_text(priority),
            "source": id_text(source),
        },
        "close_status": id_text(close),
        "contracts": db
            .table(AGREEMENTS)
            .values()
            .filter(|a| ref_id(a, "company") == Some(ACME_ID))
            .map(|a| json!({
                "id": id_text(id_of(a)),
                "name": text(a, "name"),
                "active": text(a, "agreementStatus") == "Active",
            }))
            .collect::<Vec<_>>(),
        "contract_id": ACME_AGREEMENT.to_string(),
        "other_company_contract_id": OTHER_COMPANY_AGREEMENT.to_string(),
        "unknown_contract_id": "4999",
        "cancelled_contract_id": ACME_CANCELLED_AGREEMENT.to_string(),
        "billing_service": {
            "id": SECURITY_SEAT.to_string(),
            "name": SECURITY_SEAT_NAME,
            "inactive_id": RETIRED_ITEM.to_string(),
        },
    })
}

/// `/_sim/...` (`segs` are the segments after `_sim`).
pub async fn handle(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    query: &str,
    body: &Bytes,
) -> Response {
    let lower: Vec<String> = segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    if let Some(r) = crate::control::faults_route(&s.faults, method.as_str(), &parts, body) {
        return r;
    }
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => ok(json!({
            "simulator": "ConnectWise PSA (Manage) REST API",
            "api_url": s.api_base(),
            "company": s.config.company_id,
            "endpoints": ENDPOINTS,
        })),
        ("GET", ["stats"]) => ok(s.stats_json()),
        ("GET", ["callback-deliveries"]) => ok(json!({"deliveries": s.callouts.list()})),
        ("POST", ["reset"]) => {
            s.reset();
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["fixtures"]) => ok(fixtures(&s.db())),
        ("GET", ["billing"]) => ok(Value::Array(super::additions::billing_lines(&s.db()))),
        ("GET", ["tickets"]) => {
            let open_only = url::form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == "open" && (v == "true" || v == "1"));
            let db = s.db();
            let list: Vec<Value> = db
                .table(TICKETS)
                .values()
                .map(|t| normalised(&db, t))
                .filter(|t| !open_only || t["closed"] == json!(false))
                .collect();
            ok(json!({ "tickets": list }))
        }
        ("GET", ["tickets", id]) => {
            let db = s.db();
            match id.parse::<i64>().ok().and_then(|i| db.get(TICKETS, i)) {
                Some(t) => ok(normalised(&db, t)),
                None => bad(StatusCode::NOT_FOUND, "no such ticket"),
            }
        }
        ("POST", ["tickets", id, action @ ("close" | "reopen")]) => {
            let (answer, changed) = technician_sets_status(s, id, action);
            if let Some(tid) = changed {
                super::callbacks::ticket_changed(s, tid, "updated", "jdoe", true).await;
            }
            answer
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "unknown control endpoint", "endpoints": ENDPOINTS})),
        )
            .into_response(),
    }
}

/// A technician moves a ticket to the board's first closed (or default open) status: the
/// answer, and the ticket whose callbacks are due.
fn technician_sets_status(s: &Shared, id: &str, action: &str) -> (Response, Option<i64>) {
    let mut db = s.db();
    let Some(t) = id
        .parse::<i64>()
        .ok()
        .and_then(|i| db.get(TICKETS, i))
        .cloned()
    else {
        return (bad(StatusCode::NOT_FOUND, "no such ticket"), None);
    };
    let tid = id_of(&t).unwrap_or_default();
    let board = ref_id(&t, "board").unwrap_or(HELP_DESK);
    let mut candidates: Vec<&Value> = db
        .on_board(STATUSES, board)
        .into_iter()
        .filter(|st| !flag(st, "inactive"))
        .filter(|st| flag(st, "closedStatus") == (action == "close"))
        .collect();
    candidates.sort_by_key(|st| {
        (
            !(action == "reopen" && flag(st, "defaultFlag")),
            st.get("sortOrder").and_then(Value::as_i64),
            id_of(st),
        )
    });
    let Some(status) = candidates.first().and_then(|st| id_of(st)) else {
        return (
            bad(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the board has no such status",
            ),
            None,
        );
    };
    match tickets::set_status(&mut db, tid, status, "jdoe", s.config.default_board_id) {
        Ok(_) => {
            let t = db.get(TICKETS, tid).cloned().unwrap_or_default();
            (ok(normalised(&db, &t)), Some(tid))
        }
        Err(e) => (bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()), None),
    }
}
