//! The entity routes: query, count, paging, get, create, update, delete and metadata.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::data::{EntityInfo, Field, ids};
use super::query::{self, Query, coerce_bool, coerce_i64, field};
use super::{Shared, errors, not_allowed, now_text, webhooks};

fn server_error(msg: &str) -> Response {
    errors(StatusCode::INTERNAL_SERVER_ERROR, &[msg])
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Route a request below `V1.0/`.
pub async fn dispatch(
    s: &Arc<Shared>,
    method: &Method,
    rest: &[&str],
    query_text: Option<&str>,
    body: &Bytes,
    impersonate: Option<i64>,
) -> Response {
    let Some(first) = rest.first() else {
        return super::iis_not_found();
    };
    match first.to_ascii_lowercase().as_str() {
        "thresholdinformation" if rest.len() == 1 => {
            return ok(json!({
                "externalRequestThreshold": s.config.hourly_limit,
                "requestThresholdTimeframe": 60,
                "currentTimeframeRequestCount": s.window_count(),
            }));
        }
        "version" if rest.len() == 1 => {
            return ok(json!({"majorVersion": "1", "minorVersion": "0", "build": "2026.11"}));
        }
        "modules" if rest.len() == 1 => {
            return ok(
                json!({"modules": [{"key": 24, "value": true}, {"key": 11, "value": true}]}),
            );
        }
        _ => {}
    }
    let Some(entity) = s.entity(first).cloned() else {
        return super::iis_not_found();
    };
    let lower: Vec<String> = rest.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    let params: Vec<(String, String)> = query_text
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let m = method.as_str();
    match (m, &parts[1..]) {
        ("POST", ["query"]) => run_query(s, &entity, parse_body(body), None, false),
        ("GET", ["query"]) => run_query(
            s,
            &entity,
            param("search").map(|t| serde_json::from_str(&t)),
            None,
            false,
        ),
        ("POST" | "GET", ["query", "count"]) => {
            let q = if m == "POST" {
                parse_body(body)
            } else {
                param("search").map(|t| serde_json::from_str(&t))
            };
            run_query(s, &entity, q, None, true)
        }
        ("POST" | "GET", ["query", dir @ ("next" | "prev")]) => {
            let paging: Value = param("paging")
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(Value::Null);
            let q = param("search").map(|t| serde_json::from_str(&t));
            run_query(s, &entity, q, Some((dir == &"next", paging)), false)
        }
        ("GET", ["entityinformation"]) => ok(entity.info_json()),
        ("GET", ["entityinformation", "fields"]) => {
            ok(json!({"fields": entity.fields.iter().map(Field::to_json).collect::<Vec<_>>()}))
        }
        ("GET", ["entityinformation", "userdefinedfields"]) => ok(json!({"fields": []})),
        (_, ["entityinformation", ..]) => not_allowed(method),
        ("POST", []) => {
            if entity.parent.is_some() {
                return not_allowed(method);
            }
            create(s, &entity, body, None, impersonate).await
        }
        ("PATCH" | "PUT", []) => {
            if entity.parent.is_some() {
                return not_allowed(method);
            }
            update(s, &entity, body, m == "PUT", None).await
        }
        ("GET", []) => not_allowed(method),
        (_, [id]) if id.parse::<i64>().is_ok() => {
            let id: i64 = id.parse().unwrap_or_default();
            match m {
                "GET" => get_item(s, &entity, id),
                "DELETE" if entity.can_delete && entity.parent.is_none() => {
                    delete(s, &entity, id, None)
                }
                _ => not_allowed(method),
            }
        }
        (_, [pid, child, tail @ ..]) if pid.parse::<i64>().is_ok() => {
            let pid: i64 = pid.parse().unwrap_or_default();
            let Some(child_entity) = s
                .entities
                .iter()
                .find(|e| {
                    e.parent.is_some_and(|(p, _)| p == entity.name)
                        && e.child_path.is_some_and(|c| c.eq_ignore_ascii_case(child))
                })
                .cloned()
            else {
                return super::iis_not_found();
            };
            let parent_field = child_entity.parent.map(|(_, f)| f).unwrap_or_default();
            if !exists(s, entity.name, pid) {
                return server_error(&format!(
                    "Value does not reference an existing entity for {parent_field}."
                ));
            }
            match (m, tail) {
                ("GET", []) => {
                    let items: Vec<Value> = records(s, child_entity.name)
                        .into_iter()
                        .filter(|r| field(r, parent_field).and_then(coerce_i64) == Some(pid))
                        .collect();
                    let n = items.len();
                    ok(
                        json!({"items": items, "pageDetails": {"count": n, "requestCount": 500, "prevPageUrl": null, "nextPageUrl": null}}),
                    )
                }
                ("POST", []) => {
                    create(
                        s,
                        &child_entity,
                        body,
                        Some((parent_field, pid)),
                        impersonate,
                    )
                    .await
                }
                ("PATCH" | "PUT", []) => {
                    update(
                        s,
                        &child_entity,
                        body,
                        m == "PUT",
                        Some((parent_field, pid)),
                    )
                    .await
                }
                ("GET", ["entityinformation", ..]) => ok(child_entity.info_json()),
                ("GET", [id]) => match id.parse::<i64>() {
                    Ok(id) => get_item(s, &child_entity, id),
                    Err(_) => super::iis_not_found(),
                },
                ("DELETE", [id]) if child_entity.can_delete => match id.parse::<i64>() {
                    Ok(id) => delete(s, &child_entity, id, Some((parent_field, pid))),
                    Err(_) => super::iis_not_found(),
                },
                _ => not_allowed(method),
            }
        }
        _ => super::iis_not_found(),
    }
}

fn parse_body(body: &Bytes) -> Option<Result<Value, serde_json::Error>> {
    Some(serde_json::from_slice(body))
}

fn records(s: &Shared, entity: &str) -> Vec<Value> {
    let db = s.db.lock().unwrap_or_else(|p| p.into_inner());
    db.records
        .get(entity)
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}

fn exists(s: &Shared, entity: &str, id: i64) -> bool {
    let db = s.db.lock().unwrap_or_else(|p| p.into_inner());
    db.records.get(entity).is_some_and(|m| m.contains_key(&id))
}

fn get_record(s: &Shared, entity: &str, id: i64) -> Option<Value> {
    let db = s.db.lock().unwrap_or_else(|p| p.into_inner());
    db.records.get(entity).and_then(|m| m.get(&id)).cloned()
}

fn get_item(s: &Shared, entity: &EntityInfo, id: i64) -> Response {
    match get_record(s, entity.name, id) {
        Some(item) => ok(json!({"item": item})),
        None if s.config.missing_item_is_404 => {
            errors(StatusCode::NOT_FOUND, &["No matching records found."])
        }
        None => ok(json!({"item": null})),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    format!(
        "Unexpected character encountered while parsing value. Path '', line {}, position {}.",
        e.line(),
        e.column()
    )
}

/// Run a query (or a page of it). `page` = (forward, paging JSON) for next/prev links.
fn run_query(
    s: &Shared,
    entity: &EntityInfo,
    q: Option<Result<Value, serde_json::Error>>,
    page: Option<(bool, Value)>,
    count_only: bool,
) -> Response {
    let q = match q {
        None => return server_error("A filter is required for a query."),
        Some(Err(e)) => return server_error(&json_error(&e)),
        Some(Ok(v)) => v,
    };
    let parsed: Query = match query::parse(&q, entity) {
        Ok(p) => p,
        Err(m) => return server_error(&m),
    };
    let mut items: Vec<Value> = records(s, entity.name)
        .into_iter()
        .filter(|r| !parsed.filter.is_empty() && parsed.filter.iter().all(|c| query::matches(r, c)))
        .collect();
    if count_only {
        return ok(json!({"queryCount": items.len()}));
    }
    let page_size = page
        .as_ref()
        .and_then(|(_, p)| field(p, "pageSize").and_then(coerce_i64))
        .map(|n| n.clamp(1, query::MAX_RECORDS as i64) as usize)
        .unwrap_or(parsed.max_records);
    let id_of = |v: &Value| field(v, "id").and_then(coerce_i64).unwrap_or_default();
    match &page {
        Some((true, p)) => {
            let after = field(p, "lastId").and_then(coerce_i64).unwrap_or(i64::MIN);
            items.retain(|v| id_of(v) > after);
        }
        Some((false, p)) => {
            let before = field(p, "firstId").and_then(coerce_i64).unwrap_or(i64::MAX);
            items.retain(|v| id_of(v) < before);
            let skip = items.len().saturating_sub(page_size);
            items.drain(..skip);
        }
        None => {}
    }
    let more = items.len() > page_size;
    items.truncate(page_size);
    let earlier = items.first().map(id_of).is_some_and(|first| {
        records(s, entity.name)
            .iter()
            .any(|r| id_of(r) < first && parsed.filter.iter().all(|c| query::matches(r, c)))
    });
    let link = |dir: &str, paging: Value| {
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        format!(
            "{}/ATServicesRest/V1.0/{}/query/{dir}?paging={}&search={}",
            s.base_url,
            entity.name,
            enc(&paging.to_string()),
            enc(&parsed.raw.to_string())
        )
    };
    let next = (more && page.as_ref().is_none_or(|(fwd, _)| *fwd)).then(|| {
        link(
            "next",
            json!({"pageSize": page_size, "lastId": items.last().map(id_of)}),
        )
    });
    let prev = earlier.then(|| {
        link(
            "prev",
            json!({"pageSize": page_size, "firstId": items.first().map(id_of)}),
        )
    });
    let items: Vec<Value> = items
        .iter()
        .map(|i| query::project(i, &parsed.include))
        .collect();
    ok(json!({
        "items": items,
        "pageDetails": {"count": items.len(), "requestCount": page_size, "prevPageUrl": prev, "nextPageUrl": next},
    }))
}

/// Coerce a body value into a field's type, as Json.NET would; `Err` is Autotask's message.
fn coerce(f: &Field, v: &Value) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let unexpected = || {
        let first = v.to_string().chars().next().unwrap_or(' ');
        format!(
            "Unexpected character encountered while parsing value: {first}. Path '{}'.",
            f.name
        )
    };
    match f.data_type {
        "integer" | "long" | "short" => match v {
            Value::Bool(_) => Err(unexpected()),
            _ => coerce_i64(v).map(Value::from).ok_or_else(unexpected),
        },
        "double" | "decimal" => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(t) => t
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| unexpected()),
            _ => Err(unexpected()),
        },
        "boolean" => coerce_bool(v).map(Value::Bool).ok_or_else(unexpected),
        "datetime" => match v {
            Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| {
                    json!(
                        d.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").map(|d| {
                        json!(
                            d.and_utc()
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        )
                    })
                })
                .map_err(|_| {
                    format!(
                        "The value '{t}' is not a valid date and time for {}.",
                        f.name
                    )
                }),
            _ => Err(unexpected()),
        },
        _ => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(json!(n.to_string())),
            Value::Bool(b) => Ok(json!(b.to_string())),
            _ => Err(unexpected()),
        },
    }
}

/// Apply the writable fields of `body` onto `record`; errors are Autotask's messages.
fn apply(
    entity: &EntityInfo,
    body: &Map<String, Value>,
    record: &mut Map<String, Value>,
    put: bool,
) -> Result<(), String> {
    for f in &entity.fields {
        if f.read_only || f.name == "id" {
            continue;
        }
        match body.iter().find(|(k, _)| k.eq_ignore_ascii_case(f.name)) {
            Some((_, v)) => {
                let v = coerce(f, v)?;
                if let (Value::String(t), true) = (&v, f.length > 0)
                    && t.chars().count() > f.length as usize
                {
                    return Err(format!(
                        "{} exceeds the maximum length of {} characters.",
                        f.name, f.length
                    ));
                }
                record.insert(f.name.to_string(), v);
            }
            None if put => {
                record.insert(f.name.to_string(), Value::Null);
            }
            None => {}
        }
    }
    if let Some((_, udfs)) = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userDefinedFields"))
    {
        record.insert("userDefinedFields".into(), udfs.clone());
    }
    Ok(())
}

/// Business rules of a finished record (after create or update).
fn validate(s: &Shared, entity: &EntityInfo, r: &Map<String, Value>) -> Result<(), String> {
    let get = |k: &str| r.get(k).filter(|v| !v.is_null());
    for f in entity.fields.iter().filter(|f| f.required && !f.read_only) {
        if get(f.name).is_none() {
            return Err(format!("{} is required.; on record number [0].", f.name));
        }
    }
    for f in &entity.fields {
        if let (Some(_), Some(v)) = (&f.picklist, get(f.name)) {
            let text = v
                .as_i64()
                .map(|i| i.to_string())
                .or_else(|| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match f.picklist_value(&text) {
                None => {
                    return Err(format!(
                        "Value does not reference an existing entity for {}.",
                        f.name
                    ));
                }
                Some((_, _, false, _)) => {
                    return Err(format!("The value {text} of {} is inactive.", f.name));
                }
                Some((_, _, true, parent)) => {
                    if let (Some(parent), Some(parent_field)) = (parent, f.picklist_parent) {
                        let have = get(parent_field)
                            .and_then(coerce_i64)
                            .map(|i| i.to_string());
                        if have.as_deref() != Some(parent.as_str()) {
                            return Err(format!(
                                "The {} {text} does not belong to the {parent_field} {}.",
                                f.name,
                                have.unwrap_or_else(|| "(none)".into())
                            ));
                        }
                    }
                }
            }
        }
        if let (Some(target), Some(v)) = (f.reference, get(f.name)) {
            let table = match target {
                "Company" => "Companies",
                "Contact" => "Contacts",
                "Resource" => "Resources",
                "Ticket" => "Tickets",
                "Contract" => "Contracts",
                "TicketWebhook" => "TicketWebhooks",
                _ => continue,
            };
            if !coerce_i64(v).is_some_and(|id| exists(s, table, id)) {
                return Err(format!(
                    "Value does not reference an existing entity for {}.",
                    f.name
                ));
            }
        }
    }
    if entity.name == "Tickets" {
        if let Some(contact) = get("contactID").and_then(coerce_i64) {
            let owner = get_record(s, "Contacts", contact)
                .and_then(|c| field(&c, "companyID").and_then(coerce_i64));
            if owner != get("companyID").and_then(coerce_i64) {
                return Err(
                    "The contactID must belong to the ticket's companyID or its parent.".into(),
                );
            }
        }
        if get("assignedResourceID").is_some() != get("assignedResourceRoleID").is_some() {
            return Err("When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.".into());
        }
        if get("dueDateTime").is_none() && !s.config.category_supplies_due_date {
            return Err("dueDateTime is required.; on record number [0].".into());
        }
    }
    Ok(())
}

async fn create(
    s: &Arc<Shared>,
    entity: &EntityInfo,
    body: &Bytes,
    parent: Option<(&str, i64)>,
    impersonate: Option<i64>,
) -> Response {
    if !entity.can_create {
        return not_allowed(&Method::POST);
    }
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return server_error("The request body must be a JSON object."),
        Err(e) => return server_error(&json_error(&e)),
    };
    let mut record = Map::new();
    if let Err(m) = apply(entity, &body, &mut record, false) {
        return server_error(&m);
    }
    if let Some((f, pid)) = parent {
        record.insert(f.to_string(), json!(pid));
    }
    if let Err(m) = validate(s, entity, &record) {
        return server_error(&m);
    }
    let now = now_text();
    let creator = impersonate.unwrap_or(ids::API_RESOURCE);
    let (id, after) = {
        let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
        db.next_id += 1;
        let id = db.next_id;
        record.insert("id".into(), json!(id));
        match entity.name {
            "Tickets" => {
                db.ticket_seq += 1;
                let date = chrono::Utc::now().format("%Y%m%d");
                record.insert(
                    "ticketNumber".into(),
                    json!(format!("T{date}.{:04}", db.ticket_seq)),
                );
                record.insert("createDate".into(), json!(now));
                record.insert("lastActivityDate".into(), json!(now));
                record.insert("creatorResourceID".into(), json!(creator));
                record.insert("creatorType".into(), json!(1));
                let complete =
                    record.get("status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE);
                record.insert(
                    "completedDate".into(),
                    if complete { json!(now) } else { Value::Null },
                );
                record.entry("userDefinedFields").or_insert(json!([]));
            }
            "TicketNotes" => {
                record.insert("createDateTime".into(), json!(now));
                record.insert("lastActivityDate".into(), json!(now));
                record.insert("creatorResourceID".into(), json!(creator));
                if impersonate.is_some() {
                    record.insert("impersonatorCreatorResourceID".into(), json!(impersonate));
                }
                if let Some(t) = record.get("ticketID").and_then(coerce_i64)
                    && let Some(ticket) = db.records.get_mut("Tickets").and_then(|m| m.get_mut(&t))
                {
                    ticket["lastActivityDate"] = json!(now);
                }
            }
            "Contacts" | "Companies" => {
                record.insert("createDate".into(), json!(now));
                record.insert("lastActivityDate".into(), json!(now));
                record.entry("userDefinedFields").or_insert(json!([]));
            }
            "TicketWebhooks" => {
                let guid: u128 = rand::rng().random();
                let g = format!("{guid:032x}");
                record.insert(
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
                record.insert("isReady".into(), json!(true));
            }
            _ => {}
        }
        let v = Value::Object(record);
        db.records
            .entry(entity.name.to_string())
            .or_default()
            .insert(id, v.clone());
        (id, v)
    };
    s.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
    if entity.name == "Tickets" {
        webhooks::ticket_changed(s, "Create", None, &after, false).await;
    }
    ok(json!({"itemId": id}))
}

async fn update(
    s: &Arc<Shared>,
    entity: &EntityInfo,
    body: &Bytes,
    put: bool,
    parent: Option<(&str, i64)>,
) -> Response {
    if !entity.can_update {
        return not_allowed(if put { &Method::PUT } else { &Method::PATCH });
    }
    let body: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return server_error("The request body must be a JSON object."),
        Err(e) => return server_error(&json_error(&e)),
    };
    let Some(id) = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| coerce_i64(v))
    else {
        return server_error("id is required to update an entity.");
    };
    let Some(before) = get_record(s, entity.name, id) else {
        return server_error(
            "No matching records found. The logged in Resource may not have the required permissions.",
        );
    };
    if let Some((f, pid)) = parent
        && field(&before, f).and_then(coerce_i64) != Some(pid)
    {
        return server_error(&format!(
            "The record {id} does not belong to the parent {pid}."
        ));
    }
    let mut record = before.as_object().cloned().unwrap_or_default();
    if let Err(m) = apply(entity, &body, &mut record, put) {
        return server_error(&m);
    }
    if let Err(m) = validate(s, entity, &record) {
        return server_error(&m);
    }
    let now = now_text();
    if entity.name == "Tickets" {
        record.insert("lastActivityDate".into(), json!(now));
        let complete = record.get("status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE);
        let was = field(&before, "status").and_then(coerce_i64) == Some(ids::STATUS_COMPLETE);
        if complete && !was {
            record.insert("completedDate".into(), json!(now));
        } else if !complete {
            record.insert("completedDate".into(), Value::Null);
        }
    }
    let after = Value::Object(record);
    {
        let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
        db.records
            .entry(entity.name.to_string())
            .or_default()
            .insert(id, after.clone());
    }
    s.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
    if entity.name == "Tickets" {
        webhooks::ticket_changed(s, "Update", Some(&before), &after, false).await;
    }
    ok(json!({"itemId": id}))
}

fn delete(s: &Shared, entity: &EntityInfo, id: i64, parent: Option<(&str, i64)>) -> Response {
    let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
    let Some(table) = db.records.get_mut(entity.name) else {
        return super::iis_not_found();
    };
    match table.get(&id) {
        Some(r) if parent.is_none_or(|(f, pid)| field(r, f).and_then(coerce_i64) == Some(pid)) => {
            table.remove(&id);
            s.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
            ok(json!({"itemId": id}))
        }
        _ => server_error("No matching records found."),
    }
}
