//! The API endpoints below `/{codebase}/apis/3.0/`.
//!
//! | path | methods |
//! |---|---|
//! | `system/info` | GET |
//! | `company/companies`, `company/contacts`, `service/boards`, `service/priorities`, `service/sources`, `system/members` (+ `/count`, `/{id}`) | GET |
//! | `service/boards/{id}/statuses|types|subtypes|items|teams|typeSubTypeItemAssociations` (+ `/count`, `/{id}`) | GET |
//! | `company/companies/{id}/sites` (+ `/count`, `/{id}`) | GET |
//! | `finance/agreements` (+ `/count`, `/{id}`) | GET |
//! | `finance/agreements/{id}/additions` (+ `/count`, `/{id}`) | GET, POST |
//! | `finance/agreements/{id}/additions/{id}` | PATCH |
//! | `procurement/catalog` (+ `/count`, `/{id}`) | GET, POST |
//! | `company/configurations/types` (+ `/count`, `/{id}`) | GET |
//! | `company/configurations` (+ `/count`, `/{id}`) | GET, POST |
//! | `company/configurations/{id}` | PATCH |
//! | `service/tickets` (+ `/count`) | GET, POST |
//! | `service/tickets/{id}` | GET, PATCH |
//! | `service/tickets/{id}/notes` (+ `/count`, `/{id}`) | GET, POST |
//! | `system/callbacks` (+ `/count`) | GET, POST |
//! | `system/callbacks/{id}` | GET, PUT, PATCH, DELETE |
//! | `system/callbacks/{id}/signingKey` | GET (the key a callout's `Metadata.key_url` names) |

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use std::sync::Arc;

use super::Shared;
use super::additions;
use super::auth::Caller;
use super::callbacks::{self, CALLBACKS};
use super::catalog;
use super::configurations;
use super::errors::ApiError;
use super::listing::{self, Paging, Params};
use super::store::*;
use super::tickets;

pub struct Request<'a> {
    pub method: &'a Method,
    /// Segments after `apis/3.0`, as sent.
    pub segs: &'a [String],
    pub params: &'a Params,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub caller: &'a Caller,
    /// The absolute URL of the request without its query (for `Link`).
    pub self_url: String,
}

fn top_level(a: &str, b: &str) -> Option<&'static str> {
    let t = match (a, b) {
        ("company", "companies") => COMPANIES,
        ("company", "contacts") => CONTACTS,
        ("service", "boards") => BOARDS,
        ("service", "priorities") => PRIORITIES,
        ("service", "sources") => SOURCES,
        ("system", "members") => MEMBERS,
        ("service", "tickets") => TICKETS,
        ("finance", "agreements") => AGREEMENTS,
        _ => return None,
    };
    Some(t)
}

fn board_child(name: &str) -> Option<&'static str> {
    Some(match name {
        "statuses" => STATUSES,
        "types" => TYPES,
        "subtypes" => SUBTYPES,
        "items" => ITEMS,
        "teams" => TEAMS,
        "typesubtypeitemassociations" => ASSOCIATIONS,
        _ => return None,
    })
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("The request body could not be read as JSON: {e}"))
    })
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("{what} with id {id} was not found."))
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|i| *i > 0)
}

pub fn dispatch(s: &Arc<Shared>, r: Request<'_>) -> Result<Response, ApiError> {
    let lower: Vec<String> = r.segs.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    let paging = Paging {
        default_size: s.config.default_page_size.max(1),
        max_size: s.config.max_page_size.max(1),
    };
    let get = r.method == Method::GET;
    let list = |rows: Vec<Value>| listing::answer(rows, r.params, r.headers, &r.self_url, &paging);
    let one = |v: Option<Value>, what: &str, id: &str| match v {
        Some(v) => Ok(axum::Json(listing::project(v, r.params)).into_response()),
        None => Err(not_found(what, id)),
    };
    match parts.as_slice() {
        ["system", "info"] if get => Ok(axum::Json(json!({
            "version": s.config.version_code,
            "isCloud": false,
            "serverTimeZone": "Eastern Standard Time",
            "licenseBits": [],
            "cloudRegion": "NA",
        }))
        .into_response()),

        // Tickets and notes: reads and writes.
        ["service", "tickets"] if r.method == Method::POST => {
            let body = json_body(r.body)?;
            let t = tickets::create(
                &mut s.db(),
                &body,
                &r.caller.member,
                s.config.default_board_id,
            )?;
            call_back_later(s, id_of(&t), "added", &r.caller.member);
            Ok((StatusCode::CREATED, axum::Json(t)).into_response())
        }
        ["service", "tickets", id] if *id != "count" && r.method == Method::PATCH => {
            let id = parse_id(id).ok_or_else(|| not_found("Ticket", id))?;
            let body = json_body(r.body)?;
            let t = tickets::patch(
                &mut s.db(),
                id,
                &body,
                &r.caller.member,
                s.config.default_board_id,
            )?;
            call_back_later(s, Some(id), "updated", &r.caller.member);
            Ok(axum::Json(t).into_response())
        }
        ["service", "tickets", id, "notes", rest @ ..] => {
            let tid = parse_id(id).ok_or_else(|| not_found("Ticket", id))?;
            let db = s.db();
            if db.get(TICKETS, tid).is_none() {
                return Err(not_found("Ticket", id));
            }
            match (r.method.as_str(), rest) {
                ("POST", []) => {
                    drop(db);
                    let body = json_body(r.body)?;
                    let n = tickets::add_note(&mut s.db(), tid, &body, &r.caller.member)?;
                    Ok((StatusCode::CREATED, axum::Json(n)).into_response())
                }
                ("GET", []) => list(db.notes_of(tid).into_iter().map(note_out).collect()),
                ("GET", ["count"]) => listing::count(
                    db.notes_of(tid).into_iter().map(note_out).collect(),
                    r.params,
                ),
                ("GET", [nid]) => {
                    let n = parse_id(nid)
                        .and_then(|n| db.get(NOTES, n))
                        .filter(|n| n.get("ticketId").and_then(Value::as_i64) == Some(tid))
                        .map(note_out);
                    one(n, "Note", nid)
                }
                ("GET", _) => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
                _ => Err(ApiError::MethodNotAllowed),
            }
        }

        // Callbacks: subscriptions to record changes.
        ["system", "callbacks"] if r.method == Method::POST => {
            let body = json_body(r.body)?;
            let c = callbacks::create(&mut s.db(), &body, &r.caller.member)?;
            Ok((StatusCode::CREATED, axum::Json(c)).into_response())
        }
        ["system", "callbacks", id, "signingkey"] if get => {
            let db = s.db();
            let k = parse_id(id).and_then(|i| callbacks::signing_key(&db, i));
            one(k, "Callback", id)
        }
        ["system", "callbacks", id] if *id != "count" && !get => {
            let cid = parse_id(id).ok_or_else(|| not_found("Callback", id))?;
            match r.method.as_str() {
                "PUT" => {
                    let body = json_body(r.body)?;
                    let c = callbacks::replace(&mut s.db(), cid, &body, &r.caller.member)?;
                    Ok(axum::Json(c).into_response())
                }
                "PATCH" => {
                    let body = json_body(r.body)?;
                    let c = callbacks::patch(&mut s.db(), cid, &body, &r.caller.member)?;
                    Ok(axum::Json(c).into_response())
                }
                "DELETE" => match s.db().tables_mut(CALLBACKS).remove(&cid) {
                    Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
                    None => Err(not_found("Callback", id)),
                },
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        ["system", "callbacks", rest @ ..] if get => {
            let db = s.db();
            let rows: Vec<Value> = db.table(CALLBACKS).values().map(clean).collect();
            match rest {
                [] => list(rows),
                ["count"] => listing::count(rows, r.params),
                [id] => {
                    let v = parse_id(id).and_then(|i| db.get(CALLBACKS, i)).map(clean);
                    one(v, "Callback", id)
                }
                _ => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
            }
        }

        // Agreement additions: the products an agreement bills.
        ["finance", "agreements", aid, "additions", rest @ ..] => {
            let agreement = parse_id(aid)
                .filter(|a| s.db().get(AGREEMENTS, *a).is_some())
                .ok_or_else(|| not_found("Agreement", aid))?;
            match (r.method.as_str(), rest) {
                ("POST", []) => {
                    let body = json_body(r.body)?;
                    let a = additions::create(&mut s.db(), agreement, &body, &r.caller.member)?;
                    Ok((StatusCode::CREATED, axum::Json(a)).into_response())
                }
                ("PATCH", [id]) => {
                    let id = parse_id(id).ok_or_else(|| not_found("Addition", id))?;
                    let body = json_body(r.body)?;
                    let a = additions::patch(&mut s.db(), agreement, id, &body, &r.caller.member)?;
                    Ok(axum::Json(a).into_response())
                }
                ("GET", []) => list(additions::of_agreement(&s.db(), agreement)),
                ("GET", ["count"]) => {
                    listing::count(additions::of_agreement(&s.db(), agreement), r.params)
                }
                ("GET", [id]) => {
                    let v = parse_id(id).and_then(|i| {
                        additions::of_agreement(&s.db(), agreement)
                            .into_iter()
                            .find(|a| id_of(a) == Some(i))
                    });
                    one(v, "Addition", id)
                }
                ("GET", _) => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
                _ => Err(ApiError::MethodNotAllowed),
            }
        }

        // The product catalogue.
        ["procurement", "catalog", rest @ ..] => match (r.method.as_str(), rest) {
            ("POST", []) => {
                let body = json_body(r.body)?;
                let item = catalog::create(&mut s.db(), &body, &r.caller.member)?;
                Ok((StatusCode::CREATED, axum::Json(item)).into_response())
            }
            ("GET", rest) => {
                let db = s.db();
                let rows: Vec<Value> = db.table(CATALOG).values().map(clean).collect();
                match rest {
                    [] => list(rows),
                    ["count"] => listing::count(rows, r.params),
                    [id] => {
                        let v = parse_id(id).and_then(|i| db.get(CATALOG, i)).map(clean);
                        one(v, "Catalog item", id)
                    }
                    _ => Err(ApiError::NotFound(
                        "The requested URL was not found.".into(),
                    )),
                }
            }
            _ => Err(ApiError::MethodNotAllowed),
        },

        // Configurations (a company's devices) and their types.
        ["company", "configurations", "types", rest @ ..] => {
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            let rows = configurations::types(&s.db());
            match rest {
                [] => list(rows),
                ["count"] => listing::count(rows, r.params),
                [id] => {
                    let v =
                        parse_id(id).and_then(|i| rows.into_iter().find(|t| id_of(t) == Some(i)));
                    one(v, "Configuration type", id)
                }
                _ => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
            }
        }
        ["company", "configurations", rest @ ..] => match (r.method.as_str(), rest) {
            ("POST", []) => {
                let body = json_body(r.body)?;
                let c = configurations::create(&mut s.db(), &body, &r.caller.member)?;
                Ok((StatusCode::CREATED, axum::Json(c)).into_response())
            }
            ("PATCH", [id]) if *id != "count" => {
                let id = parse_id(id).ok_or_else(|| not_found("Configuration", id))?;
                let body = json_body(r.body)?;
                let c = configurations::patch(&mut s.db(), id, &body, &r.caller.member)?;
                Ok(axum::Json(c).into_response())
            }
            ("GET", rest) => {
                let db = s.db();
                match rest {
                    [] => list(configurations::all(&db)),
                    ["count"] => listing::count(configurations::all(&db), r.params),
                    [id] => {
                        let v = parse_id(id)
                            .and_then(|i| db.get(CONFIGURATIONS, i))
                            .map(clean);
                        one(v, "Configuration", id)
                    }
                    _ => Err(ApiError::NotFound(
                        "The requested URL was not found.".into(),
                    )),
                }
            }
            _ => Err(ApiError::MethodNotAllowed),
        },

        // A company's sites (each seeded company has its main site).
        ["company", "companies", cid, "sites", rest @ ..] if get => {
            let db = s.db();
            let c = parse_id(cid)
                .and_then(|c| db.get(COMPANIES, c))
                .ok_or_else(|| not_found("Company", cid))?;
            let site = json!({
                "id": c["site"]["id"], "name": c["site"]["name"],
                "addressLine1": c["addressLine1"], "city": c["city"], "stateReference": {"identifier": c["state"]},
                "zip": c["zip"], "country": c["country"], "phoneNumber": c["phoneNumber"],
                "company": db.company_ref(c), "primaryAddressFlag": true,
                "defaultShippingFlag": true, "defaultBillingFlag": true, "defaultMailingFlag": true,
                "inactiveFlag": false, "_info": c["_info"],
            });
            match rest {
                [] => list(vec![site]),
                ["count"] => listing::count(vec![site], r.params),
                [sid] if parse_id(sid) == id_of(&site) => one(Some(site), "Site", sid),
                [sid] => Err(not_found("Site", sid)),
                _ => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
            }
        }

        // Board-scoped lists.
        ["service", "boards", bid, child, rest @ ..] if board_child(child).is_some() => {
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            let table = board_child(child).unwrap_or(STATUSES);
            let db = s.db();
            let board = parse_id(bid)
                .filter(|b| db.get(BOARDS, *b).is_some())
                .ok_or_else(|| not_found("Board", bid))?;
            let rows: Vec<Value> = db.on_board(table, board).into_iter().map(clean).collect();
            match rest {
                [] => list(rows),
                ["count"] => listing::count(rows, r.params),
                [cid] => {
                    let v =
                        parse_id(cid).and_then(|c| rows.into_iter().find(|x| id_of(x) == Some(c)));
                    one(v, "Record", cid)
                }
                _ => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
            }
        }

        // Top-level collections.
        [a, b, rest @ ..] if top_level(a, b).is_some() => {
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            let table = top_level(a, b).unwrap_or(COMPANIES);
            let db = s.db();
            let rows = || db.table(table).values().map(clean).collect::<Vec<_>>();
            match rest {
                [] => list(rows()),
                ["count"] => listing::count(rows(), r.params),
                [id] => {
                    let v = parse_id(id).and_then(|i| db.get(table, i)).map(clean);
                    let what = match table {
                        TICKETS => "Ticket",
                        COMPANIES => "Company",
                        CONTACTS => "Contact",
                        BOARDS => "Board",
                        AGREEMENTS => "Agreement",
                        _ => "Record",
                    };
                    one(v, what, id)
                }
                _ => Err(ApiError::NotFound(
                    "The requested URL was not found.".into(),
                )),
            }
        }
        _ => Err(ApiError::NotFound(format!(
            "The requested URL '/{}' was not found.",
            r.segs.join("/")
        ))),
    }
}

/// Call the ticket callbacks about `id` once this request is answered.
fn call_back_later(s: &Arc<Shared>, id: Option<i64>, action: &'static str, member: &str) {
    let Some(id) = id else { return };
    let s = s.clone();
    let member = member.to_string();
    tokio::spawn(async move { callbacks::ticket_changed(&s, id, action, &member, false).await });
}
