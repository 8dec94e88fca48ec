//! The entity routes below `/ATServicesRest/V1.0/`: query, count, paging, get, create,
//! update, delete, child collections and metadata.
//!
//! Updates go to the collection URL with `id` in the body (there is no `PATCH /E/{id}`);
//! children are created, updated and deleted under their parent's URL but queried and read
//! on their own root. Every write is checked and applied under one lock, so concurrent
//! writers never see half a rule.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::billing;
use super::errors::{ApiError, fail};
use super::model::{EntityInfo, ids};
use super::query::{self, Query, coerce_i64, get_ci};
use super::store::fill;
use super::validation::{self, Rules, Write};
use super::webhooks::{self, TicketChange};
use super::{Shared, now_text};

type Answer = Result<Response, ApiError>;

fn ok(v: Value) -> Answer {
    Ok(axum::Json(v).into_response())
}

/// A request below `V1.0/`, after authentication and limits.
pub struct Request<'a> {
    pub method: &'a Method,
    /// The path segments after `V1.0`, as sent.
    pub rest: &'a [String],
    pub params: &'a [(String, String)],
    pub body: &'a Bytes,
    pub caller: &'a Caller<'a>,
}

impl Request<'_> {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Route a request below `V1.0/`.
/// Adjustments are create-only: no query, no read, no update.
const ADJUSTMENTS: &str = "ContractServiceAdjustments";

pub async fn dispatch(s: &Arc<Shared>, req: Request<'_>) -> Answer {
    let lower: Vec<String> = req.rest.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let not_allowed = || Err(ApiError::MethodNotAllowed(req.method.clone()));
    match parts.as_slice() {
        ["thresholdinformation"] => {
            return if m == "GET" {
                ok(json!({
                    "externalRequestThreshold": s.config.hourly_limit,
                    "requestThresholdTimeframe": 60,
                    "currentTimeframeRequestCount": s.window_count(),
                }))
            } else {
                not_allowed()
            };
        }
        ["version"] => {
            return if m == "GET" {
                ok(json!({"majorVersion": "1", "minorVersion": "0", "build": "2026.1.0"}))
            } else {
                not_allowed()
            };
        }
        ["modules"] => {
            return if m == "GET" {
                ok(
                    json!({"modules": [{"key": 1, "value": true}, {"key": 11, "value": true},
                    {"key": 24, "value": true}, {"key": 33, "value": false}]}),
                )
            } else {
                not_allowed()
            };
        }
        _ => {}
    }
    let Some(first) = parts.first() else {
        return Err(ApiError::NotFound);
    };
    let Some(entity) = s.entity(first) else {
        return Err(ApiError::NotFound);
    };
    if entity.name == ADJUSTMENTS && parts.get(1) != Some(&"entityinformation") {
        // Create-only: POST /ContractServiceAdjustments (and its metadata), nothing else.
        return match (m, &parts[1..]) {
            ("POST", []) => create(s, entity, req.body, None, req.caller).await,
            _ => not_allowed(),
        };
    }
    match (m, &parts[1..]) {
        ("POST", ["query"]) => run_query(s, entity, body_json(req.body), None, false),
        ("GET", ["query"]) => run_query(s, entity, search(&req), None, false),
        ("POST", ["query", "count"]) => run_query(s, entity, body_json(req.body), None, true),
        ("GET", ["query", "count"]) => run_query(s, entity, search(&req), None, true),
        ("GET" | "POST", ["query", dir @ ("next" | "prev")]) => {
            let paging: Value = req
                .param("paging")
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            let size = paging
                .get("pageSize")
                .and_then(coerce_i64)
                .map(|n| n.clamp(1, query::MAX_RECORDS as i64) as usize);
            let page = if *dir == "next" {
                Page::After(
                    paging
                        .get("lastId")
                        .and_then(coerce_i64)
                        .unwrap_or(i64::MIN),
                    size,
                )
            } else {
                Page::Before(
                    paging
                        .get("firstId")
                        .and_then(coerce_i64)
                        .unwrap_or(i64::MAX),
                    size,
                )
            };
            run_query(s, entity, search(&req), Some(page), false)
        }
        (_, ["query", ..]) => not_allowed(),
        ("GET", ["entityinformation"]) => ok(entity.info_json()),
        ("GET", ["entityinformation", "fields"]) => ok(json!({
            "fields": entity.fields.iter().map(|f| f.to_json()).collect::<Vec<_>>()
        })),
        ("GET", ["entityinformation", "userdefinedfields"]) => ok(json!({
            "fields": entity.udfs.iter().flatten().map(|u| u.to_json()).collect::<Vec<_>>()
        })),
        (_, ["entityinformation", ..]) => not_allowed(),
        ("POST", []) if entity.parent.is_none() && entity.can_create => {
            create(s, entity, req.body, None, req.caller).await
        }
        ("PATCH" | "PUT", []) if entity.parent.is_none() && entity.can_update => {
            let mode = if m == "PUT" { Write::Put } else { Write::Patch };
            update(s, entity, req.body, mode, None, req.caller).await
        }
        (_, []) => not_allowed(),
        (_, [id]) if id.parse::<i64>().is_ok() => {
            let id: i64 = id.parse().unwrap_or_default();
            match m {
                "GET" => get_item(s, entity, id),
                "DELETE" if entity.can_delete && entity.parent.is_none() => {
                    delete(s, entity, id, None)
                }
                _ => not_allowed(),
            }
        }
        (_, [pid, child, tail @ ..]) if pid.parse::<i64>().is_ok() => {
            let pid: i64 = pid.parse().unwrap_or_default();
            let Some(child_entity) = s.child_of(entity, child) else {
                return Err(ApiError::NotFound);
            };
            child_route(s, &req, entity, child_entity, pid, tail).await
        }
        _ => Err(ApiError::NotFound),
    }
}

async fn child_route(
    s: &Arc<Shared>,
    req: &Request<'_>,
    parent: &EntityInfo,
    child: &'static EntityInfo,
    pid: i64,
    tail: &[&str],
) -> Answer {
    let m = req.method.as_str();
    let parent_field = child.parent.map(|(_, f)| f).unwrap_or_default();
    let parent_exists = s.db().exists(parent.name, pid);
    match (m, tail) {
        (_, _) if child.name == ADJUSTMENTS && !(m == "POST" && tail.is_empty()) => {
            Err(ApiError::MethodNotAllowed(req.method.clone()))
        }
        ("GET", []) => {
            let items = s.db().children_of(child.name, pid);
            let n = items.len();
            ok(
                json!({"items": items, "pageDetails": {"count": n, "requestCount": n.max(1),
                "prevPageUrl": null, "nextPageUrl": null}}),
            )
        }
        ("POST", []) if child.can_create => {
            if !parent_exists {
                return fail(format!(
                    "Value does not reference an existing entity for {parent_field}."
                ));
            }
            create(s, child, req.body, Some((parent_field, pid)), req.caller).await
        }
        ("PATCH" | "PUT", []) if child.can_update => {
            if !parent_exists {
                return fail(format!(
                    "Value does not reference an existing entity for {parent_field}."
                ));
            }
            let mode = if m == "PUT" { Write::Put } else { Write::Patch };
            update(
                s,
                child,
                req.body,
                mode,
                Some((parent_field, pid)),
                req.caller,
            )
            .await
        }
        ("GET", ["entityinformation"]) => ok(child.info_json()),
        (_, [id]) if id.parse::<i64>().is_ok() => {
            let id: i64 = id.parse().unwrap_or_default();
            match m {
                "GET" => {
                    let item = s
                        .db()
                        .get(child.name, id)
                        .filter(|r| r.get(parent_field).and_then(coerce_i64) == Some(pid))
                        .cloned();
                    item_answer(s, item)
                }
                "DELETE" if child.can_delete => delete(s, child, id, Some((parent_field, pid))),
                _ => Err(ApiError::MethodNotAllowed(req.method.clone())),
            }
        }
        (_, []) => Err(ApiError::MethodNotAllowed(req.method.clone())),
        _ => Err(ApiError::NotFound),
    }
}

fn body_json(body: &Bytes) -> Option<Result<Value, serde_json::Error>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(serde_json::from_slice(body))
}

fn search(req: &Request<'_>) -> Option<Result<Value, serde_json::Error>> {
    req.param("search").map(serde_json::from_str)
}

fn json_error(e: &serde_json::Error) -> String {
    format!(
        "Unexpected character encountered while parsing value. Path '', line {}, position {}.",
        e.line(),
        e.column()
    )
}

fn item_answer(s: &Shared, item: Option<Value>) -> Answer {
    match item {
        Some(item) => ok(json!({ "item": item })),
        None if s.config.missing_item_is_404 => Err(ApiError::NoRecord),
        None => ok(json!({ "item": null })),
    }
}

fn get_item(s: &Shared, entity: &EntityInfo, id: i64) -> Answer {
    let item = s.db().get(entity.name, id).cloned();
    item_answer(s, item)
}

/// Where a page starts: after the last id of the previous page, or before the first id of
/// the next one; with the page size the link carried.
enum Page {
    After(i64, Option<usize>),
    Before(i64, Option<usize>),
}

fn run_query(
    s: &Shared,
    entity: &EntityInfo,
    q: Option<Result<Value, serde_json::Error>>,
    page: Option<Page>,
    count_only: bool,
) -> Answer {
    let q = match q {
        None => {
            return fail(
                "A filter is required for a query. (Object reference not set to an instance of an object.)",
            );
        }
        Some(Err(e)) => return fail(json_error(&e)),
        Some(Ok(v)) => v,
    };
    let parsed: Query = query::parse(&q, entity)?;
    let db = s.db();
    let Some(table) = db.table(entity.name) else {
        return ok(
            json!({"items": [], "pageDetails": {"count": 0, "requestCount": 0, "prevPageUrl": null, "nextPageUrl": null}}),
        );
    };
    if count_only {
        let n = table.values().filter(|r| parsed.matches(r)).count();
        return ok(json!({ "queryCount": n }));
    }
    let (size, forward) = match &page {
        Some(Page::After(_, n)) => (n.unwrap_or(parsed.max_records), true),
        Some(Page::Before(_, n)) => (n.unwrap_or(parsed.max_records), false),
        None => (parsed.max_records, true),
    };
    // Keyset paging on id: take one more than a page to know whether another follows.
    let mut items: Vec<&Value> = match &page {
        Some(Page::Before(before, _)) => {
            let mut v: Vec<&Value> = table
                .range(..*before)
                .rev()
                .map(|(_, r)| r)
                .filter(|r| parsed.matches(r))
                .take(size + 1)
                .collect();
            v.reverse();
            v
        }
        Some(Page::After(after, _)) => table
            .range(after.saturating_add(1)..)
            .map(|(_, r)| r)
            .filter(|r| parsed.matches(r))
            .take(size + 1)
            .collect(),
        None => table
            .values()
            .filter(|r| parsed.matches(r))
            .take(size + 1)
            .collect(),
    };
    let id_of = |v: &Value| v.get("id").and_then(Value::as_i64).unwrap_or_default();
    let (more_after, more_before) = if forward {
        let more = items.len() > size;
        items.truncate(size);
        let before = items
            .first()
            .is_some_and(|f| table.range(..id_of(f)).any(|(_, r)| parsed.matches(r)));
        (more, before)
    } else {
        let more = items.len() > size;
        if more {
            items.remove(0);
        }
        let after = items.last().is_some_and(|l| {
            table
                .range(id_of(l).saturating_add(1)..)
                .any(|(_, r)| parsed.matches(r))
        });
        (after, more)
    };
    let link = |dir: &str, paging: Value| {
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!(
            "{}V1.0/{}/query/{dir}?paging={}&search={}",
            s.zone_url,
            entity.name,
            enc(&paging.to_string()),
            enc(&parsed.raw.to_string())
        )
    };
    let next = more_after.then(|| {
        link(
            "next",
            json!({"pageSize": size, "lastId": items.last().map(|v| id_of(v))}),
        )
    });
    let prev = more_before.then(|| {
        link(
            "prev",
            json!({"pageSize": size, "firstId": items.first().map(|v| id_of(v))}),
        )
    });
    let out: Vec<Value> = items.iter().map(|i| parsed.project(i, entity)).collect();
    let n = out.len();
    ok(json!({
        "items": out,
        "pageDetails": {"count": n, "requestCount": size, "prevPageUrl": prev, "nextPageUrl": next},
    }))
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => fail("The request body must be a JSON object."),
        Err(e) => fail(json_error(&e)),
    }
}

fn rules(s: &Shared) -> Rules {
    Rules {
        category_supplies_due_date: s.config.category_supplies_due_date,
        category_due_hours: s.config.category_due_hours,
    }
}

async fn create(
    s: &Arc<Shared>,
    entity: &'static EntityInfo,
    body: &Bytes,
    parent: Option<(&str, i64)>,
    caller: &Caller<'_>,
) -> Answer {
    let body = body_object(body)?;
    let person = caller.impersonate.unwrap_or(ids::API_RESOURCE);
    let after = write_create(s, entity, &body, parent, person, caller.impersonate, false).await?;
    ok(json!({ "itemId": after.get("id").cloned().unwrap_or(Value::Null) }))
}

/// What Autotask sets itself on a new record.
fn stamp_create(
    db: &mut super::store::Db,
    entity: &EntityInfo,
    r: &mut Map<String, Value>,
    now: &str,
    person: i64,
    impersonate: Option<i64>,
) {
    match entity.name {
        "Tickets" => {
            let today = chrono::Utc::now().format("%Y%m%d").to_string();
            r.insert("ticketNumber".into(), json!(db.ticket_number(&today)));
            r.insert("createDate".into(), json!(now));
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("lastTrackedModificationDateTime".into(), json!(now));
            r.insert("creatorResourceID".into(), json!(person));
            r.insert("lastActivityResourceID".into(), json!(person));
            r.insert("creatorType".into(), json!(1));
            r.insert("lastActivityPersonType".into(), json!(1));
            r.insert("impersonatorCreatorResourceID".into(), json!(impersonate));
            if r.get("status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE) {
                r.insert("completedDate".into(), json!(now));
                r.insert("completedByResourceID".into(), json!(person));
            }
        }
        "TicketNotes" => {
            r.insert("createDateTime".into(), json!(now));
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("creatorResourceID".into(), json!(person));
            r.insert("impersonatorCreatorResourceID".into(), json!(impersonate));
            // A note is activity on its ticket.
            if let Some(t) = r.get("ticketID").and_then(coerce_i64)
                && let Some(Value::Object(ticket)) = db.get_mut("Tickets", t)
            {
                ticket.insert("lastActivityDate".into(), json!(now));
                ticket.insert("lastActivityResourceID".into(), json!(person));
            }
        }
        "Companies" => {
            r.insert("createDate".into(), json!(now));
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("lastTrackedModifiedDateTime".into(), json!(now));
            r.insert("createdByResourceID".into(), json!(person));
            r.insert("impersonatorCreatorResourceID".into(), json!(impersonate));
            r.entry("isActive").or_insert(json!(true));
        }
        "Contacts" => {
            r.insert("createDate".into(), json!(now));
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("lastModifiedDate".into(), json!(now));
            r.insert("impersonatorCreatorResourceID".into(), json!(impersonate));
        }
        "TicketWebhooks" => {
            let guid: u128 = rand::random();
            let g = format!("{guid:032x}");
            r.insert(
                "webhookGUID".into(),
                json!(format!(
                    "{}-{}-{}-{}-{}",
                    &g[..8],
                    &g[8..12],
                    &g[12..16],
                    &g[16..20],
                    &g[20..]
                )),
            );
            r.insert("isReady".into(), json!(true));
        }
        _ => {}
    }
}

async fn update(
    s: &Arc<Shared>,
    entity: &'static EntityInfo,
    body: &Bytes,
    mode: Write,
    parent: Option<(&str, i64)>,
    caller: &Caller<'_>,
) -> Answer {
    let body = body_object(body)?;
    let person = caller.impersonate.unwrap_or(ids::API_RESOURCE);
    let after = write_update(
        s,
        entity,
        &body,
        mode,
        parent,
        person,
        caller.impersonate,
        false,
    )
    .await?;
    ok(json!({ "itemId": after.get("id").cloned().unwrap_or(Value::Null) }))
}

/// Update a record as `person` (checked like any API update; ticket webhooks fire). With
/// `wait`, webhook callouts are delivered before this returns. The record after the update.
#[allow(clippy::too_many_arguments)]
pub async fn write_update(
    s: &Arc<Shared>,
    entity: &'static EntityInfo,
    body: &Map<String, Value>,
    mode: Write,
    parent: Option<(&str, i64)>,
    person: i64,
    impersonate: Option<i64>,
    wait: bool,
) -> Result<Value, ApiError> {
    let Some(id) = get_ci(body, "id").and_then(coerce_i64) else {
        return fail("id is required.; on record number [0].");
    };
    let (before, after) = {
        let mut db = s.db();
        let Some(before) = db.get(entity.name, id).cloned() else {
            return fail(format!(
                "No matching records found. The logged in Resource may not have the required permissions to update the data. ({} {id})",
                entity.singular
            ));
        };
        if let Some((f, pid)) = parent
            && before.get(f).and_then(coerce_i64) != Some(pid)
        {
            return fail(format!(
                "Value does not reference an existing entity for {f}. ({} {id} does not belong to {pid})",
                entity.singular
            ));
        }
        let mut record = before.as_object().cloned().unwrap_or_default();
        validation::apply(entity, body, &mut record, mode)?;
        validation::validate(&db, &rules(s), entity, &mut record, false)?;
        stamp_update(entity, &before, &mut record, person, impersonate);
        let after = Value::Object(record);
        db.put(entity, id, after.clone());
        (before, after)
    };
    s.mark_dirty();
    if entity.name == "Tickets" {
        let change = TicketChange {
            action: "Update",
            before: Some(&before),
            after: &after,
            person,
        };
        webhooks::ticket_changed(s, change, wait).await;
    }
    Ok(after)
}

/// Create a record as `person` (checked like any API create); the new record.
pub async fn write_create(
    s: &Arc<Shared>,
    entity: &'static EntityInfo,
    body: &Map<String, Value>,
    parent: Option<(&str, i64)>,
    person: i64,
    impersonate: Option<i64>,
    wait: bool,
) -> Result<Value, ApiError> {
    let mut record = Map::new();
    validation::apply(entity, body, &mut record, Write::Create)?;
    if let Some((f, pid)) = parent {
        record.insert(f.to_string(), json!(pid));
    }
    let now = now_text();
    let after = {
        let mut db = s.db();
        validation::validate(&db, &rules(s), entity, &mut record, true)?;
        let id = db.next_id();
        record.insert("id".into(), json!(id));
        stamp_create(&mut db, entity, &mut record, &now, person, impersonate);
        let mut v = Value::Object(record.clone());
        fill(entity, &mut v);
        db.put(entity, id, v.clone());
        match entity.name {
            "ContractServices" => billing::after_contract_service_created(
                &mut db,
                &super::billing_entities(),
                &record,
                chrono::Utc::now(),
            ),
            "ContractServiceAdjustments" => {
                billing::apply_adjustment(&mut db, &super::billing_entities(), &record)
            }
            _ => {}
        }
        v
    };
    s.mark_dirty();
    if entity.name == "Tickets" {
        let change = TicketChange {
            action: "Create",
            before: None,
            after: &after,
            person,
        };
        webhooks::ticket_changed(s, change, wait).await;
    }
    Ok(after)
}

/// What Autotask maintains itself on an update.
pub fn stamp_update(
    entity: &EntityInfo,
    before: &Value,
    r: &mut Map<String, Value>,
    person: i64,
    impersonate: Option<i64>,
) {
    let now = now_text();
    match entity.name {
        "Tickets" => {
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("lastTrackedModificationDateTime".into(), json!(now));
            r.insert("lastActivityResourceID".into(), json!(person));
            let complete = r.get("status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE);
            let was = before.get("status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE);
            if complete && !was {
                r.insert("completedDate".into(), json!(now));
                r.insert("completedByResourceID".into(), json!(person));
            } else if !complete {
                r.insert("completedDate".into(), Value::Null);
                r.insert("completedByResourceID".into(), Value::Null);
            }
        }
        "TicketNotes" => {
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("impersonatorUpdaterResourceID".into(), json!(impersonate));
        }
        "Contacts" => {
            r.insert("lastModifiedDate".into(), json!(now));
            r.insert("lastActivityDate".into(), json!(now));
        }
        "Companies" => {
            r.insert("lastActivityDate".into(), json!(now));
            r.insert("lastTrackedModifiedDateTime".into(), json!(now));
        }
        _ => {}
    }
}

fn delete(s: &Shared, entity: &EntityInfo, id: i64, parent: Option<(&str, i64)>) -> Answer {
    let removed = {
        let mut db = s.db();
        let belongs = db.get(entity.name, id).is_some_and(|r| {
            parent.is_none_or(|(f, pid)| r.get(f).and_then(coerce_i64) == Some(pid))
        });
        if belongs { db.remove(entity, id) } else { None }
    };
    if removed.is_none() {
        return fail(format!(
            "No matching records found. The {} {id} does not exist or cannot be deleted.",
            entity.singular
        ));
    }
    if entity.name == "TicketWebhooks" {
        // A webhook's fields go with it.
        let mut db = s.db();
        let fields = db.children_of("TicketWebhookFields", id);
        if let Some(fe) = s.entity("TicketWebhookFields") {
            for f in fields {
                if let Some(fid) = f.get("id").and_then(Value::as_i64) {
                    db.remove(fe, fid);
                }
            }
        }
    }
    s.mark_dirty();
    ok(json!({ "itemId": id }))
}
