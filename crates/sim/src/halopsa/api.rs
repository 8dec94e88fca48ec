//! The resource routes below `/api/`: wrapped, paged lists of the big entities, bare setup
//! lists, single records, and the array-bodied create-or-update POSTs of tickets and
//! actions, validated like Halo validates them.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::errors;
use super::seed::{STATUS_TYPE_CLOSED, ids};
use super::store::{Db, ENTITIES, SETUP};
use super::{Config, Shared};

/// Query parameters: names case-insensitive, booleans as `true`/`True`/`1`.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, name: &str) -> Option<bool> {
        self.get(name)
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .or_else(|| v.trim().parse::<f64>().ok().map(|f| f as i64))
        })
    }
}

/// An id as Halo accepts it: a number (integral floats too) or a numeric string.
pub fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lower(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

fn flag(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// The canonical name of a resource segment (`tickets` → `Tickets`), if it is one.
pub fn canonical(seg: &str) -> Option<&'static str> {
    ENTITIES
        .iter()
        .map(|(n, _)| *n)
        .chain(SETUP)
        .find(|n| n.eq_ignore_ascii_case(seg))
}

/// Is a status closed (its type)?
pub fn status_closed(db: &Db, status: i64) -> bool {
    db.list("Status")
        .iter()
        .any(|s| id_of(&s["id"]) == Some(status) && s["type"].as_i64() == Some(STATUS_TYPE_CLOSED))
}

/// A GET, POST or DELETE below `/api/` (`segs` after `api`), authenticated.
pub fn dispatch(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    params: &Params,
    body: &Bytes,
) -> Response {
    let Some(first) = segs.first() else {
        return errors::message(
            StatusCode::NOT_FOUND,
            "No HTTP resource was found that matches the request URI.",
        );
    };
    if segs.len() == 2 && first.eq_ignore_ascii_case("agent") && segs[1].eq_ignore_ascii_case("me")
    {
        if method != Method::GET {
            return method_not_allowed();
        }
        let db = s.db();
        return match db
            .list("Agent")
            .iter()
            .find(|a| id_of(&a["id"]) == Some(ids::API_AGENT))
        {
            Some(a) => {
                let mut a = a.clone();
                strip_internal(&mut a);
                axum::Json(a).into_response()
            }
            None => errors::not_found("Agent", "me"),
        };
    }
    if first.eq_ignore_ascii_case("webhook") {
        return super::webhooks::dispatch(s, method.as_str(), &segs[1..], body);
    }
    let Some(resource) = canonical(first) else {
        return errors::message(
            StatusCode::NOT_FOUND,
            "No HTTP resource was found that matches the request URI.",
        );
    };
    if let Some(r) = super::billing::dispatch(s, method.as_str(), resource, segs, params, body) {
        return r;
    }
    if let Some(r) = super::assets::dispatch(s, method.as_str(), resource, segs, params, body) {
        return r;
    }
    match (method.as_str(), segs.len()) {
        ("GET", 1) => list(s, resource, params),
        ("GET", 2) => one(s, resource, &segs[1]),
        ("POST", 1) => match resource {
            "Tickets" | "Actions" => {
                let touched = touched_tickets(body, resource);
                let before = statuses(s, &touched);
                let r = if resource == "Tickets" {
                    write(s, body, write_ticket)
                } else {
                    write(s, body, write_action)
                };
                if r.status().is_success() {
                    let after = statuses(s, &touched);
                    for (id, status) in after {
                        if before.get(&id) != Some(&status) {
                            call_out_later(s, id);
                        }
                    }
                }
                r
            }
            _ => errors::message(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("The simulator does not write {resource} records"),
            ),
        },
        ("DELETE", 2) if resource == "Tickets" => {
            let Ok(id) = segs[1].parse::<i64>() else {
                return errors::invalid(format!("'{}' is not a ticket id", segs[1]));
            };
            let mut db = s.db();
            let gone = db.records.get_mut("Tickets").and_then(|t| t.remove(&id));
            match gone {
                Some(_) => StatusCode::OK.into_response(),
                None => errors::not_found("Ticket", &id.to_string()),
            }
        }
        _ => method_not_allowed(),
    }
}

fn method_not_allowed() -> Response {
    errors::message(
        StatusCode::METHOD_NOT_ALLOWED,
        "The requested resource does not support this HTTP method.",
    )
}

/// `GET /api/<Resource>/{id}`.
fn one(s: &Shared, resource: &str, id: &str) -> Response {
    let text = id.trim();
    let entity = ENTITIES.iter().any(|(n, _)| *n == resource);
    let number = text.parse::<i64>().ok();
    let Some(id) = number.or(if entity { None } else { Some(0) }) else {
        return errors::invalid(format!("The value '{id}' is not valid for id."));
    };
    let db = s.db();
    let found = if entity {
        db.get(resource, id).cloned()
    } else {
        // A Priority (`Policy`) is named by its uuid: the document's `{id}` is a string.
        db.list(resource)
            .iter()
            .find(|r| match &r["id"] {
                Value::String(own) if number.is_none() => own.eq_ignore_ascii_case(text),
                other => number.is_some() && id_of(other) == Some(id),
            })
            .cloned()
    };
    match found {
        Some(mut v) => {
            if resource == "Agent" {
                strip_internal(&mut v);
            }
            axum::Json(v).into_response()
        }
        None => errors::not_found(resource.trim_end_matches('s'), text),
    }
}

fn strip_internal(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.remove("is_api_agent");
    }
}

/// `GET /api/<Resource>`: filters, ordering, paging, the wrapper or the bare array.
fn list(s: &Shared, resource: &'static str, p: &Params) -> Response {
    let db = s.db();
    if let Some((_, key)) = ENTITIES.iter().find(|(n, _)| *n == resource) {
        let mut items: Vec<Value> = db
            .table(resource)
            .values()
            .filter(|r| entity_matches(&db, resource, r, p))
            .cloned()
            .collect();
        order(&mut items, p, resource);
        return axum::Json(wrap(items, key, p, s.config.default_page_size)).into_response();
    }
    let mut items: Vec<Value> = db
        .list(resource)
        .iter()
        .filter(|r| setup_matches(resource, r, p))
        .cloned()
        .collect();
    match resource {
        "SLA" if p.flag("showpriorities") == Some(true) => {
            for sla in &mut items {
                let id = id_of(&sla["id"]);
                sla["priorities"] = Value::Array(
                    db.list("Priority")
                        .iter()
                        .filter(|x| id_of(&x["slaid"]) == id)
                        .cloned()
                        .collect(),
                );
            }
        }
        "Team" if p.flag("includeagentsforteams") == Some(true) => {
            for team in &mut items {
                let id = id_of(&team["id"]);
                let members: Vec<Value> = db
                    .list("Agent")
                    .iter()
                    .flat_map(|a| a["teams"].as_array().cloned().unwrap_or_default())
                    .filter(|m| id_of(&m["team_id"]) == id)
                    .collect();
                team["agents"] = Value::Array(members);
            }
        }
        "Agent" => items.iter_mut().for_each(strip_internal),
        _ => {}
    }
    order(&mut items, p, resource);
    axum::Json(Value::Array(items)).into_response()
}

/// The wrapper of a big entity's list: `record_count` and the records, paged with
/// `pageinate`/`page_size`/`page_no` or capped with `count`.
pub fn wrap(items: Vec<Value>, key: &str, p: &Params, default_page_size: usize) -> Value {
    let total = items.len();
    let mut out = Map::new();
    if p.flag("pageinate") == Some(true) {
        let size = p
            .int("page_size")
            .filter(|n| *n > 0)
            .map_or(default_page_size, |n| n as usize);
        let page = p.int("page_no").filter(|n| *n > 0).unwrap_or(1) as usize;
        let slice: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect();
        out.insert("page_no".into(), json!(page));
        out.insert("page_size".into(), json!(size));
        out.insert("record_count".into(), json!(total));
        out.insert(key.into(), Value::Array(slice));
    } else {
        let cap = p
            .int("count")
            .filter(|n| *n >= 0)
            .map_or(usize::MAX, |n| n as usize);
        out.insert("record_count".into(), json!(total));
        out.insert(
            key.into(),
            Value::Array(items.into_iter().take(cap).collect()),
        );
    }
    Value::Object(out)
}

fn order(items: &mut [Value], p: &Params, resource: &str) {
    let field = p
        .get("order")
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| {
            if resource == "Client" {
                "name".into()
            } else {
                "id".into()
            }
        });
    let desc = p.flag("orderdesc") == Some(true);
    items.sort_by(|a, b| {
        let o = match (&a[&field], &b[&field]) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (x, y) => lower_text(x).cmp(&lower_text(y)),
        }
        .then_with(|| id_of(&a["id"]).cmp(&id_of(&b["id"])));
        if desc { o.reverse() } else { o }
    });
}

fn lower_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_lowercase(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn active_filter(r: &Value, p: &Params) -> bool {
    let inactive = flag(r, "inactive");
    let include_inactive = p.flag("includeinactive").unwrap_or(false);
    let include_active = p.flag("includeactive").unwrap_or(true);
    if inactive {
        include_inactive
    } else {
        include_active
    }
}

fn entity_matches(db: &Db, resource: &str, r: &Value, p: &Params) -> bool {
    let eq = |param: &str, field: &str| {
        p.int(param)
            .is_none_or(|want| id_of(&r[field]) == Some(want))
    };
    match resource {
        "Client" => {
            active_filter(r, p)
                && eq("toplevel_id", "toplevel_id")
                && p.get("search").is_none_or(|q| {
                    let q = q.to_lowercase();
                    lower(r, "name").contains(&q) || lower(r, "ref").contains(&q)
                })
                && p.get("search_name_only")
                    .is_none_or(|q| lower(r, "name").contains(&q.to_lowercase()))
        }
        "Site" => {
            active_filter(r, p)
                && eq("client_id", "client_id")
                && p.get("search")
                    .is_none_or(|q| lower(r, "name").contains(&q.to_lowercase()))
        }
        "Users" => {
            active_filter(r, p)
                && eq("client_id", "client_id")
                && eq("site_id", "site_id")
                && !(p.flag("exclude_generaluser") == Some(true)
                    && lower(r, "name") == "general user")
                && p.get("search").is_none_or(|q| {
                    let q = q.to_lowercase();
                    ["name", "emailaddress", "email2", "email3"]
                        .iter()
                        .any(|k| lower(r, k).contains(&q))
                })
        }
        "Actions" => {
            eq("ticket_id", "ticket_id")
                && !(p.flag("excludesys") == Some(true)
                    && r["action_systemid"].as_i64().unwrap_or(0) != 0)
                && !(p.flag("agentonly") == Some(true) && r["who_type"].as_i64() != Some(1))
                && !(p.flag("excludeprivate") == Some(true) && flag(r, "hiddenfromuser"))
        }
        "ClientContract" => {
            // `includeinactive` also lists contracts Halo no longer counts as active.
            (p.flag("includeinactive") == Some(true) || r["active"].as_bool() != Some(false))
                && eq("client_id", "client_id")
                && eq("site_id", "site_id")
                && p.get("search")
                    .is_none_or(|q| lower(r, "ref").contains(&q.to_lowercase()))
        }
        "Tickets" => ticket_matches(db, r, p),
        _ => true,
    }
}

fn ticket_matches(db: &Db, t: &Value, p: &Params) -> bool {
    let eq = |param: &str, field: &str| {
        p.int(param)
            .is_none_or(|want| id_of(&t[field]) == Some(want))
    };
    let closed =
        flag(t, "hasbeenclosed") || id_of(&t["status_id"]).is_some_and(|s| status_closed(db, s));
    let contains = |param: &str, fields: &[&str]| {
        p.get(param).is_none_or(|q| {
            let q = q.to_lowercase();
            fields.iter().any(|f| lower_text(&t[*f]).contains(&q))
        })
    };
    eq("client_id", "client_id")
        && eq("site_id", "site_id")
        && eq("user_id", "user_id")
        && eq("agent_id", "agent_id")
        && eq("status_id", "status_id")
        && eq("tickettype_id", "tickettype_id")
        && eq("requesttype_id", "tickettype_id")
        && !(p.flag("open_only") == Some(true) && closed)
        && (p.flag("closed_only") != Some(true) || closed)
        && p.get("team")
            .is_none_or(|q| lower(t, "team") == q.to_lowercase())
        && p.get("ticketids").is_none_or(|list| {
            let id = id_of(&t["id"]);
            list.split(',').any(|x| x.trim().parse::<i64>().ok() == id)
        })
        && contains("search", &["summary", "details", "id"])
        && contains("search_summary", &["summary"])
        && contains("search_details", &["details"])
        && contains("search_supplier_reference", &["supplier_reference"])
}

fn setup_matches(resource: &str, r: &Value, p: &Params) -> bool {
    let eq = |param: &str, field: &str| {
        p.int(param)
            .is_none_or(|want| id_of(&r[field]) == Some(want))
    };
    match resource {
        "Status" => {
            !(p.flag("excludeclosed") == Some(true)
                && r["type"].as_i64() == Some(STATUS_TYPE_CLOSED))
        }
        "TicketType" => p.flag("showinactive") == Some(true) || !flag(r, "inactive"),
        "Priority" => eq("slaid", "slaid"),
        "Category" => eq("type_id", "type_id"),
        "Lookup" => eq("lookupid", "lookupid"),
        "Agent" => {
            let disabled = flag(r, "isdisabled");
            let include = if disabled {
                p.get("includedisabled")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
            } else {
                p.get("includeenabled")
                    .is_none_or(|v| v.eq_ignore_ascii_case("true") || v == "1")
            };
            let team_ok = p.int("team_id").is_none_or(|t| {
                r["teams"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|m| id_of(&m["team_id"]) == Some(t)))
            }) && p.get("team").is_none_or(|t| {
                r["teams"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|m| lower(m, "team_name") == t.to_lowercase()))
            });
            include
                && team_ok
                && (p.flag("includeapiagents") == Some(true) || !flag(r, "is_api_agent"))
                && p.get("search")
                    .is_none_or(|q| lower(r, "name").contains(&q.to_lowercase()))
        }
        _ => true,
    }
}

/// The write of one element of an array body: the saved record, or the validation message.
pub(super) type WriteOne = fn(&Config, &mut Db, Map<String, Value>, &str) -> Result<Value, String>;

/// Apply an array body with `each`, all or nothing; answer the saved records (an object for
/// one element, an array for several).
pub(super) fn write(s: &Shared, body: &Bytes, each: WriteOne) -> Response {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return errors::invalid(format!("The request body is not valid JSON: {e}")),
    };
    let Value::Array(elements) = parsed else {
        return errors::invalid("The request body must be a JSON array of records.");
    };
    if elements.is_empty() {
        return errors::invalid("The request body contains no records.");
    }
    let now = super::now_text();
    let mut db = s.db();
    let mut work = db.clone();
    let mut saved = Vec::new();
    for e in elements {
        let Value::Object(m) = e else {
            return errors::invalid("Each element of the request body must be a JSON object.");
        };
        match each(&s.config, &mut work, m, &now) {
            Ok(v) => saved.push(v),
            Err(msg) => return errors::invalid(msg),
        }
    }
    *db = work;
    if saved.len() == 1 {
        axum::Json(saved.remove(0)).into_response()
    } else {
        axum::Json(Value::Array(saved)).into_response()
    }
}

fn opt_id(m: &Map<String, Value>, k: &str) -> Result<Option<i64>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => id_of(v)
            .map(Some)
            .ok_or_else(|| format!("The value {v} is not valid for {k}.")),
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(format!(
            "The value {v} is not valid for {k}: a string is expected."
        )),
    }
}

fn in_list(db: &Db, list: &str, field: &str, id: i64) -> Option<Value> {
    db.list(list)
        .iter()
        .find(|r| id_of(&r[field]) == Some(id))
        .cloned()
}

/// Check a ticket's fields against the tenant (the merged record of an update, or a create).
fn check_ticket(c: &Config, db: &Db, m: &Map<String, Value>) -> Result<(), String> {
    let summary = opt_str(m, "summary")?.unwrap_or_default();
    if summary.trim().is_empty() {
        return Err("A summary is required.".into());
    }
    if summary.chars().count() > c.summary_max {
        return Err(format!(
            "The summary must be at most {} characters.",
            c.summary_max
        ));
    }
    let client = opt_id(m, "client_id")?.ok_or("A client (client_id) is required.")?;
    let cl = db
        .get("Client", client)
        .ok_or(format!("Client {client} does not exist."))?;
    if flag(cl, "inactive") {
        return Err(format!("Client {client} is inactive."));
    }
    if let Some(site) = opt_id(m, "site_id")? {
        let st = db
            .get("Site", site)
            .ok_or(format!("Site {site} does not exist."))?;
        if id_of(&st["client_id"]) != Some(client) {
            return Err(format!("Site {site} does not belong to client {client}."));
        }
        if flag(st, "inactive") {
            return Err(format!("Site {site} is inactive."));
        }
    }
    if let Some(user) = opt_id(m, "user_id")? {
        let u = db
            .get("Users", user)
            .ok_or(format!("User {user} does not exist."))?;
        if id_of(&u["client_id"]) != Some(client) {
            return Err(format!("User {user} does not belong to client {client}."));
        }
        if flag(u, "inactive") {
            return Err(format!("User {user} is inactive."));
        }
    }
    if let Some(contract) = opt_id(m, "contract_id")?.filter(|c| *c > 0) {
        let ct = db
            .get("ClientContract", contract)
            .ok_or(format!("Contract {contract} does not exist."))?;
        if id_of(&ct["client_id"]) != Some(client) {
            return Err(format!(
                "Contract {contract} does not belong to client {client}."
            ));
        }
    }
    if let Some(t) = opt_id(m, "tickettype_id")? {
        let tt =
            in_list(db, "TicketType", "id", t).ok_or(format!("Ticket type {t} does not exist."))?;
        if flag(&tt, "inactive") {
            return Err(format!("Ticket type {t} is inactive."));
        }
    }
    if let Some(st) = opt_id(m, "status_id")? {
        in_list(db, "Status", "id", st).ok_or(format!("Status {st} does not exist."))?;
    }
    let sla = opt_id(m, "sla_id")?;
    if let Some(sla) = sla {
        in_list(db, "SLA", "id", sla).ok_or(format!("SLA {sla} does not exist."))?;
    }
    if let Some(pr) = opt_id(m, "priority_id")? {
        let ok = db.list("Priority").iter().any(|x| {
            id_of(&x["priorityid"]) == Some(pr) && sla.is_none_or(|s| id_of(&x["slaid"]) == Some(s))
        });
        if !ok {
            return Err(format!(
                "Priority {pr} does not exist for SLA {}.",
                sla.unwrap_or(0)
            ));
        }
    }
    if let Some(team) = opt_str(m, "team")?.filter(|t| !t.is_empty()) {
        let t = db
            .list("Team")
            .iter()
            .find(|x| x["name"].as_str() == Some(team))
            .ok_or(format!("Team '{team}' does not exist."))?;
        if flag(t, "inactive") {
            return Err(format!("Team '{team}' is inactive."));
        }
    }
    if let Some(a) = opt_id(m, "agent_id")?.filter(|a| *a != 0) {
        let ag = in_list(db, "Agent", "id", a).ok_or(format!("Agent {a} does not exist."))?;
        if flag(&ag, "isdisabled") {
            return Err(format!("Agent {a} is disabled."));
        }
    }
    if let Some(cat) = opt_str(m, "category_1")?.filter(|c| !c.is_empty()) {
        let ok = db
            .list("Category")
            .iter()
            .any(|x| x["type_id"].as_i64() == Some(1) && x["value"].as_str() == Some(cat));
        if !ok {
            return Err(format!("Category '{cat}' does not exist."));
        }
    }
    for (field, lookup) in [
        ("urgency", c.urgency_lookup_id),
        ("impact", c.impact_lookup_id),
    ] {
        if let Some(v) = opt_id(m, field)?.filter(|v| *v != 0) {
            let ok = db
                .list("Lookup")
                .iter()
                .any(|x| id_of(&x["lookupid"]) == Some(lookup) && id_of(&x["id"]) == Some(v));
            if !ok {
                return Err(format!("The value {v} is not a valid {field}."));
            }
        }
    }
    for k in [
        "details",
        "details_html",
        "supplier_reference",
        "third_party_id_string",
        "category_1",
    ] {
        opt_str(m, k)?;
    }
    Ok(())
}

/// Fill the fields Halo fills: defaults, names of referenced records, dates, flags.
pub fn complete_ticket(db: &Db, id: i64, m: &mut Map<String, Value>, now: &str) {
    m.insert("id".into(), json!(id));
    let client = m.get("client_id").and_then(id_of).unwrap_or_default();
    m.insert("client_id".into(), json!(client));
    let cl = db.get("Client", client).cloned().unwrap_or(Value::Null);
    m.insert("client_name".into(), cl["name"].clone());
    let user = m.get("user_id").and_then(id_of);
    let u = user
        .and_then(|u| db.get("Users", u))
        .cloned()
        .unwrap_or(Value::Null);
    let site = m
        .get("site_id")
        .and_then(id_of)
        .or_else(|| id_of(&u["site_id"]))
        .or_else(|| id_of(&cl["main_site_id"]))
        .unwrap_or_default();
    m.insert("site_id".into(), json!(site));
    m.insert(
        "site_name".into(),
        db.get("Site", site)
            .map(|s| s["name"].clone())
            .unwrap_or(Value::Null),
    );
    m.insert("user_id".into(), json!(user.unwrap_or(0)));
    m.insert("user_name".into(), u["name"].clone());
    let tt = m.get("tickettype_id").and_then(id_of).unwrap_or(1);
    m.insert("tickettype_id".into(), json!(tt));
    let ttr = in_list(db, "TicketType", "id", tt).unwrap_or(Value::Null);
    let sla = m
        .get("sla_id")
        .and_then(id_of)
        .or_else(|| id_of(&ttr["default_sla"]))
        .unwrap_or(1);
    m.insert("sla_id".into(), json!(sla));
    let prio = m
        .get("priority_id")
        .and_then(id_of)
        .or_else(|| id_of(&ttr["default_priority"]))
        .unwrap_or(3);
    m.insert("priority_id".into(), json!(prio));
    let status = m
        .get("status_id")
        .and_then(id_of)
        .unwrap_or(ids::STATUS_NEW);
    m.insert("status_id".into(), json!(status));
    let name_of = |list: &str, id: i64| {
        in_list(db, list, "id", id)
            .map(|r| r["name"].clone())
            .unwrap_or(Value::Null)
    };
    m.insert("tickettype_name".into(), name_of("TicketType", tt));
    m.insert("status_name".into(), name_of("Status", status));
    m.insert("sla_name".into(), name_of("SLA", sla));
    m.insert(
        "priority_name".into(),
        db.list("Priority")
            .iter()
            .find(|x| id_of(&x["priorityid"]) == Some(prio) && id_of(&x["slaid"]) == Some(sla))
            .map(|x| x["name"].clone())
            .unwrap_or(Value::Null),
    );
    let agent = m.get("agent_id").and_then(id_of).unwrap_or(0);
    m.insert("agent_id".into(), json!(agent));
    m.insert("agent_name".into(), name_of("Agent", agent));
    for (k, d) in [
        ("team", json!("")),
        ("category_1", json!("")),
        ("urgency", json!(0)),
        ("impact", json!(0)),
        ("details", json!("")),
        ("supplier_reference", json!("")),
        ("third_party_id_string", json!("")),
        ("hasbeenclosed", json!(false)),
        ("dateclosed", Value::Null),
        ("datecreated", json!(now)),
        ("dateoccurred", json!(now)),
        ("inactive", json!(false)),
        ("customfields", json!([])),
    ] {
        let missing = m.get(k).is_none_or(Value::is_null);
        if missing {
            m.insert(k.into(), d);
        }
    }
    m.insert("lastactiondate".into(), json!(now));
}

/// Close or reopen by status: `hasbeenclosed` and `dateclosed` follow the status's type.
pub fn follow_status(db: &Db, t: &mut Map<String, Value>, now: &str) {
    let status = t.get("status_id").and_then(id_of).unwrap_or_default();
    let closed = status_closed(db, status);
    let was = t
        .get("hasbeenclosed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    t.insert("hasbeenclosed".into(), json!(closed));
    if closed && !was {
        t.insert("dateclosed".into(), json!(now));
    } else if !closed {
        t.insert("dateclosed".into(), Value::Null);
    }
    t.insert(
        "status_name".into(),
        in_list(db, "Status", "id", status)
            .map(|r| r["name"].clone())
            .unwrap_or(Value::Null),
    );
}

/// One element of `POST /api/Tickets`: an update with a known `id`, else a create.
fn write_ticket(
    c: &Config,
    db: &mut Db,
    mut m: Map<String, Value>,
    now: &str,
) -> Result<Value, String> {
    m.remove("_novalidate");
    m.remove("dont_do_rules");
    let id = opt_id(&m, "id")?.filter(|id| *id > 0);
    let record = match id {
        Some(id) => {
            let existing = db
                .get("Tickets", id)
                .and_then(Value::as_object)
                .cloned()
                .ok_or(format!("Ticket {id} does not exist."))?;
            let mut merged = existing;
            for (k, v) in m {
                merged.insert(k, v);
            }
            check_ticket(c, db, &merged)?;
            complete_ticket(db, id, &mut merged, now);
            follow_status(db, &mut merged, now);
            merged
        }
        None => {
            check_ticket(c, db, &m)?;
            let id = db.next_id("Tickets");
            complete_ticket(db, id, &mut m, now);
            follow_status(db, &mut m, now);
            m
        }
    };
    let id = record.get("id").and_then(id_of).unwrap_or_default();
    let v = Value::Object(record);
    db.put("Tickets", id, v.clone());
    Ok(v)
}

/// One element of `POST /api/Actions`: a note on a ticket, optionally changing its status,
/// agent or team.
fn write_action(
    _c: &Config,
    db: &mut Db,
    m: Map<String, Value>,
    now: &str,
) -> Result<Value, String> {
    if let Some(id) = opt_id(&m, "id")?.filter(|id| *id > 0) {
        let existing = db
            .get("Actions", id)
            .ok_or(format!("Action {id} does not exist."))?;
        let mut merged = existing.as_object().cloned().unwrap_or_default();
        for k in ["note", "outcome", "hiddenfromuser"] {
            if let Some(v) = m.get(k) {
                merged.insert(k.into(), v.clone());
            }
        }
        let v = Value::Object(merged);
        db.put("Actions", id, v.clone());
        return Ok(v);
    }
    let ticket_id = opt_id(&m, "ticket_id")?.ok_or("A ticket (ticket_id) is required.")?;
    let mut ticket = db
        .get("Tickets", ticket_id)
        .and_then(Value::as_object)
        .cloned()
        .ok_or(format!("Ticket {ticket_id} does not exist."))?;
    let note = opt_str(&m, "note")?
        .or(opt_str(&m, "note_html")?)
        .unwrap_or_default()
        .to_string();
    let outcome = opt_str(&m, "outcome")?.unwrap_or("Note").to_string();
    let new_status = opt_id(&m, "new_status")?.filter(|s| *s > 0);
    if let Some(st) = new_status {
        in_list(db, "Status", "id", st).ok_or(format!("Status {st} does not exist."))?;
        ticket.insert("status_id".into(), json!(st));
        follow_status(db, &mut ticket, now);
    }
    if let Some(a) = opt_id(&m, "new_agent")?.filter(|a| *a > 0) {
        in_list(db, "Agent", "id", a).ok_or(format!("Agent {a} does not exist."))?;
        ticket.insert("agent_id".into(), json!(a));
    }
    if let Some(t) = opt_str(&m, "new_team")?.filter(|t| !t.is_empty()) {
        if !db
            .list("Team")
            .iter()
            .any(|x| x["name"].as_str() == Some(t))
        {
            return Err(format!("Team '{t}' does not exist."));
        }
        ticket.insert("team".into(), json!(t));
    }
    ticket.insert("lastactiondate".into(), json!(now));
    db.put("Tickets", ticket_id, Value::Object(ticket));
    let id = db.next_id("Actions");
    let mut a = json!({
        "id": id, "ticket_id": ticket_id, "outcome": outcome, "note": note,
        "hiddenfromuser": m.get("hiddenfromuser").and_then(Value::as_bool).unwrap_or(false),
        "sendemail": m.get("sendemail").and_then(Value::as_bool).unwrap_or(false),
        "datetime": now, "who": "API Agent", "who_type": 1, "who_agentid": ids::API_AGENT,
        "actionby_agent_id": ids::API_AGENT, "action_systemid": 0,
    });
    if let Some(st) = new_status {
        a["new_status"] = json!(st);
    }
    db.put("Actions", id, a.clone());
    Ok(a)
}

/// The existing tickets a write may change: `id` of ticket elements, `ticket_id` of actions.
fn touched_tickets(body: &Bytes, resource: &str) -> Vec<i64> {
    let key = if resource == "Tickets" {
        "id"
    } else {
        "ticket_id"
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => a
            .iter()
            .filter_map(|e| e.get(key).and_then(id_of))
            .collect(),
        _ => Vec::new(),
    }
}

/// The status of each of `ids` that exists.
fn statuses(s: &Shared, ids: &[i64]) -> std::collections::BTreeMap<i64, Value> {
    let db = s.db();
    ids.iter()
        .filter_map(|i| db.get("Tickets", *i).map(|t| (*i, t["status_id"].clone())))
        .collect()
}

/// The ticket as the API shows it, for a webhook.
pub fn ticket_out(s: &Shared, id: i64) -> Option<Value> {
    let mut t = s.db().get("Tickets", id).cloned()?;
    strip_internal(&mut t);
    Some(t)
}

/// Call the webhooks about ticket `id`'s new status once this request is answered.
fn call_out_later(s: &Arc<Shared>, id: i64) {
    let Some(t) = ticket_out(s, id) else { return };
    let s = s.clone();
    tokio::spawn(async move { super::webhooks::status_changed(&s, t, false).await });
}
