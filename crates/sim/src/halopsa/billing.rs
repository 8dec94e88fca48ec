//! Recurring billing as Halo keeps it: catalogue `Item`s and `RecurringInvoice`s whose lines
//! (`InvoiceDetail`) bill an item's quantity on a client contract every period.
//!
//! - `GET /api/Item` (`search` over name and description, `recurringonly`, paging) answers
//!   `{"record_count", "items": [...]}`; `POST /api/Item` creates or updates by `id`.
//! - `GET /api/RecurringInvoice` filters by `client_id`, `client_ids` (comma separated),
//!   `contract_id`, `recurringinvoice_id`; lines only with `includelines=true`; answers
//!   `{"record_count", "invoices": [...]}`. `GET /api/RecurringInvoice/{id}` carries its lines.
//! - `POST /api/RecurringInvoice` creates or updates by `id`. An update that carries `lines`
//!   replaces the invoice's lines with them: an element with the `id` of one of its lines
//!   changes that line (only the fields given), one without an `id` adds a line, and a line left
//!   out is removed. Halo documents no partial line update that clients can trust (the PyPI
//!   client's author warns `updatelines` misbehaves and resends every line), so this is the
//!   closest documented behaviour.
//! - A line names its item in `_itemid` (the InvoiceDetail schema's name) and its contract in
//!   `contract_id`, which defaults to the invoice's. Halo fills `item_code` and
//!   `item_shortdescription` from the item, and a missing price or cost from the item's
//!   recurring price and cost. A quantity below zero, an unknown item, or a contract of another
//!   client is refused with 400 and Halo's bare-string message.
//!
//! Halo keeps no per-period history of a recurring line: the quantity on the line is what the
//! next invoice bills, so "the current period's units" are `qty_order`.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Params, id_of, wrap, write};
use super::store::Db;
use super::{Config, Shared};

/// The simulator's answer to a billing route, or `None` when the request is not one.
pub fn dispatch(
    s: &Shared,
    method: &str,
    resource: &str,
    segs: &[String],
    params: &Params,
    body: &Bytes,
) -> Option<Response> {
    match (method, resource, segs.len()) {
        ("GET", "Item", 1) => Some(list_items(s, params)),
        ("GET", "RecurringInvoice", 1) => Some(list_invoices(s, params)),
        ("POST", "Item", 1) => Some(write(s, body, write_item)),
        ("POST", "RecurringInvoice", 1) => Some(write(s, body, write_invoice)),
        _ => None,
    }
}

/// The fields the simulator keeps of each record. Like Halo, it ignores the others a client
/// sends (so a misspelt field is lost, not echoed back as if Halo knew it).
const ITEM_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "isrecurringitem",
    "baseprice",
    "costprice",
    "recurringprice",
    "recurringcost",
    "datecreated",
];
const INVOICE_FIELDS: &[&str] = &[
    "id",
    "client_id",
    "client_name",
    "contract_id",
    "contract_ref",
    "is_recurring_invoice",
    "nextcreationdate",
    "date_created",
    "lines",
];
const LINE_FIELDS: &[&str] = &[
    "id",
    "ihid",
    "_itemid",
    "item_code",
    "item_shortdescription",
    "qty_order",
    "unit_price",
    "unit_cost",
    "net_total",
    "contract_id",
];

fn keep_known(record: &mut Map<String, Value>, known: &[&str]) {
    record.retain(|k, _| known.contains(&k.as_str()));
}

fn text_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

fn list_items(s: &Shared, p: &Params) -> Response {
    let db = s.db();
    let items: Vec<Value> = db
        .table("Item")
        .values()
        .filter(|i| {
            p.get("search").is_none_or(|q| {
                let q = q.to_lowercase();
                text_of(i, "name").contains(&q) || text_of(i, "description").contains(&q)
            }) && (p.flag("recurringonly") != Some(true)
                || i["isrecurringitem"].as_bool() == Some(true))
        })
        .cloned()
        .collect();
    axum::Json(wrap(items, "items", p, s.config.default_page_size)).into_response()
}

/// The contract a line bills on: its own, else its invoice's.
pub fn line_contract(invoice: &Value, line: &Value) -> Option<i64> {
    id_of(&line["contract_id"])
        .filter(|c| *c > 0)
        .or_else(|| id_of(&invoice["contract_id"]).filter(|c| *c > 0))
}

fn list_invoices(s: &Shared, p: &Params) -> Response {
    let clients: Option<Vec<i64>> = p.get("client_ids").map(|list| {
        list.split(',')
            .filter_map(|x| x.trim().parse::<i64>().ok())
            .collect()
    });
    let eq = |v: &Value, param: &str, field: &str| {
        p.int(param)
            .is_none_or(|want| id_of(&v[field]) == Some(want))
    };
    let with_lines = p.flag("includelines") == Some(true);
    let db = s.db();
    let invoices: Vec<Value> = db
        .table("RecurringInvoice")
        .values()
        .filter(|i| {
            eq(i, "client_id", "client_id")
                && eq(i, "contract_id", "contract_id")
                && eq(i, "recurringinvoice_id", "id")
                && clients
                    .as_ref()
                    .is_none_or(|c| id_of(&i["client_id"]).is_some_and(|id| c.contains(&id)))
        })
        .map(|i| {
            let mut i = i.clone();
            if !with_lines && let Some(m) = i.as_object_mut() {
                m.remove("lines");
            }
            i
        })
        .collect();
    axum::Json(wrap(invoices, "invoices", p, s.config.default_page_size)).into_response()
}

/// A money or quantity field: absent, or a number not below zero.
fn amount(m: &Map<String, Value>, k: &str, what: &str) -> Result<Option<f64>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n >= 0.0 => Ok(Some(n)),
            Some(_) => Err(format!("The {what} must not be negative.")),
            None => Err(format!("The value {v} is not valid for {k}.")),
        },
    }
}

/// One element of `POST /api/Item`.
fn write_item(
    _config: &Config,
    db: &mut Db,
    m: Map<String, Value>,
    now: &str,
) -> Result<Value, String> {
    let id = m.get("id").and_then(id_of).filter(|id| *id > 0);
    let mut record = match id {
        Some(id) => db
            .get("Item", id)
            .and_then(Value::as_object)
            .cloned()
            .ok_or(format!("Item {id} does not exist."))?,
        None => Map::new(),
    };
    for (k, v) in m {
        record.insert(k, v);
    }
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty() {
        return Err("An item needs a name.".into());
    }
    for (k, what) in [
        ("baseprice", "price"),
        ("costprice", "cost"),
        ("recurringprice", "recurring price"),
        ("recurringcost", "recurring cost"),
    ] {
        let value = amount(&record, k, what)?.unwrap_or(0.0);
        record.insert(k.into(), json!(value));
    }
    let id = id.unwrap_or_else(|| db.next_id("Item"));
    record.insert("id".into(), json!(id));
    for (k, default) in [
        ("description", json!("")),
        ("isrecurringitem", json!(false)),
        ("datecreated", json!(now)),
    ] {
        if record.get(k).is_none_or(Value::is_null) {
            record.insert(k.into(), default);
        }
    }
    keep_known(&mut record, ITEM_FIELDS);
    let v = Value::Object(record);
    db.put("Item", id, v.clone());
    Ok(v)
}

/// Is `contract` a client contract of `client`? The refusal otherwise.
fn check_contract(db: &Db, contract: i64, client: i64) -> Result<Value, String> {
    let c = db
        .get("ClientContract", contract)
        .ok_or(format!("Contract {contract} does not exist."))?;
    if id_of(&c["client_id"]) != Some(client) {
        return Err(format!(
            "Contract {contract} does not belong to client {client}."
        ));
    }
    Ok(c.clone())
}

/// One element of `POST /api/RecurringInvoice`: an update with a known `id`, else a create.
fn write_invoice(
    _config: &Config,
    db: &mut Db,
    mut m: Map<String, Value>,
    now: &str,
) -> Result<Value, String> {
    let given_lines = m.remove("lines");
    let id = m.get("id").and_then(id_of).filter(|id| *id > 0);
    let mut record = match id {
        Some(id) => db
            .get("RecurringInvoice", id)
            .and_then(Value::as_object)
            .cloned()
            .ok_or(format!("Recurring Invoice {id} does not exist."))?,
        None => Map::new(),
    };
    for (k, v) in m {
        record.insert(k, v);
    }
    let client = record
        .get("client_id")
        .and_then(id_of)
        .ok_or("A client (client_id) is required.")?;
    let client_record = db
        .get("Client", client)
        .cloned()
        .ok_or(format!("Client {client} does not exist."))?;
    if client_record["inactive"].as_bool() == Some(true) {
        return Err(format!("Client {client} is inactive."));
    }
    let contract = record.get("contract_id").and_then(id_of).filter(|c| *c > 0);
    let contract_ref = match contract {
        Some(c) => check_contract(db, c, client)?["ref"].clone(),
        None => Value::Null,
    };
    let id = id.unwrap_or_else(|| db.next_id("RecurringInvoice"));
    record.insert("id".into(), json!(id));
    record.insert("client_id".into(), json!(client));
    record.insert("client_name".into(), client_record["name"].clone());
    record.insert("contract_id".into(), json!(contract.unwrap_or(0)));
    record.insert("contract_ref".into(), contract_ref);
    record.insert("is_recurring_invoice".into(), json!(true));
    if record.get("nextcreationdate").is_none_or(Value::is_null) {
        record.insert("nextcreationdate".into(), json!(next_month_start()));
    }
    if record.get("date_created").is_none_or(Value::is_null) {
        record.insert("date_created".into(), json!(now));
    }
    let old_lines: Vec<Value> = record
        .get("lines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let lines = match given_lines {
        None | Some(Value::Null) => old_lines
            .into_iter()
            .filter_map(|l| l.as_object().cloned())
            .collect(),
        Some(Value::Array(given)) => {
            let mut next = next_line_id(db);
            let mut out = Vec::new();
            for g in given {
                let Value::Object(g) = g else {
                    return Err("Each line must be a JSON object.".into());
                };
                out.push(merge_line(&old_lines, g, id, &mut next)?);
            }
            out
        }
        Some(other) => return Err(format!("The value {other} is not valid for lines.")),
    };
    let mut checked = Vec::new();
    for line in lines {
        checked.push(complete_line(db, line, id, client, contract)?);
    }
    record.insert("lines".into(), Value::Array(checked));
    keep_known(&mut record, INVOICE_FIELDS);
    let v = Value::Object(record);
    db.put("RecurringInvoice", id, v.clone());
    Ok(v)
}

/// A given line over the invoice's line of the same `id`, or a new line.
fn merge_line(
    old: &[Value],
    given: Map<String, Value>,
    invoice: i64,
    next: &mut i64,
) -> Result<Map<String, Value>, String> {
    match given.get("id").and_then(id_of).filter(|id| *id > 0) {
        Some(line_id) => {
            let mut line = old
                .iter()
                .find(|l| id_of(&l["id"]) == Some(line_id))
                .and_then(Value::as_object)
                .cloned()
                .ok_or(format!(
                    "Line {line_id} is not a line of recurring invoice {invoice}."
                ))?;
            for (k, v) in given {
                line.insert(k, v);
            }
            Ok(line)
        }
        None => {
            let mut line = given;
            line.insert("id".into(), json!(*next));
            *next += 1;
            Ok(line)
        }
    }
}

/// Check a line and fill what Halo fills: the item's code and description, its recurring
/// price and cost where the line gives none, the invoice's contract.
fn complete_line(
    db: &Db,
    line: Map<String, Value>,
    invoice: i64,
    client: i64,
    invoice_contract: Option<i64>,
) -> Result<Value, String> {
    let mut line = line;
    let item_id = line
        .get("_itemid")
        .and_then(id_of)
        .ok_or("Each line needs an item (_itemid).")?;
    let item = db
        .get("Item", item_id)
        .cloned()
        .ok_or(format!("Item {item_id} does not exist."))?;
    let qty = amount(&line, "qty_order", "quantity")?.unwrap_or(0.0);
    let price = amount(&line, "unit_price", "unit price")?
        .unwrap_or_else(|| item["recurringprice"].as_f64().unwrap_or(0.0));
    let cost = amount(&line, "unit_cost", "unit cost")?
        .unwrap_or_else(|| item["recurringcost"].as_f64().unwrap_or(0.0));
    let contract = match line.get("contract_id").and_then(id_of).filter(|c| *c > 0) {
        Some(c) => {
            check_contract(db, c, client)?;
            c
        }
        None => invoice_contract.unwrap_or(0),
    };
    line.insert("ihid".into(), json!(invoice));
    line.insert("_itemid".into(), json!(item_id));
    line.insert("item_code".into(), item["name"].clone());
    line.insert("item_shortdescription".into(), item["name"].clone());
    line.insert("qty_order".into(), json!(qty));
    line.insert("unit_price".into(), json!(price));
    line.insert("unit_cost".into(), json!(cost));
    line.insert("net_total".into(), json!(qty * price));
    line.insert("contract_id".into(), json!(contract));
    keep_known(&mut line, LINE_FIELDS);
    Ok(Value::Object(line))
}

/// Line ids are unique across invoices.
fn next_line_id(db: &Db) -> i64 {
    db.table("RecurringInvoice")
        .values()
        .flat_map(|i| i["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| id_of(&l["id"]))
        .max()
        .unwrap_or(0)
        + 1
}

/// The first day of next month, when a new recurring invoice is first raised.
fn next_month_start() -> String {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let (y, m) = if today.month() == 12 {
        (today.year() + 1, 1)
    } else {
        (today.year(), today.month() + 1)
    };
    format!("{y:04}-{m:02}-01T00:00:00Z")
}

/// `GET /_sim/billing`: every line on a contract, in PSA Bridge's terms.
pub fn lines_view(db: &Db) -> Value {
    let mut out = Vec::new();
    for invoice in db.table("RecurringInvoice").values() {
        for line in invoice["lines"].as_array().into_iter().flatten() {
            let Some(contract) = line_contract(invoice, line) else {
                continue;
            };
            let item = id_of(&line["_itemid"]);
            let name = item
                .and_then(|i| db.get("Item", i))
                .map_or(Value::Null, |i| i["name"].clone());
            out.push(json!({
                "contract_id": contract.to_string(),
                "service_id": item.map(|i| i.to_string()),
                "service_name": name,
                "units": line["qty_order"].as_f64().unwrap_or(0.0).round() as i64,
                "unit_cost": line["unit_cost"].as_f64().unwrap_or(0.0),
                "unit_price": line["unit_price"].as_f64().unwrap_or(0.0),
            }));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        super::super::seed::seed()
    }

    fn post(db: &mut Db, body: Value) -> Result<Value, String> {
        let element = body.as_object().cloned().unwrap_or_default();
        write_invoice(&Config::default(), db, element, "now")
    }

    fn lines_of(db: &Db, invoice: i64) -> Vec<Value> {
        db.get("RecurringInvoice", invoice).unwrap()["lines"]
            .as_array()
            .cloned()
            .unwrap()
    }

    #[test]
    fn fields_halo_does_not_have_are_not_kept() {
        let mut db = db();
        let body = json!({"client_id": 12, "contract_id": 44, "colour": "red",
            "lines": [{"_itemid": 31, "item_id": 31, "qty_order": 1}]});
        let saved = post(&mut db, body).unwrap();
        assert!(saved.get("colour").is_none(), "{saved}");
        assert!(saved["lines"][0].get("item_id").is_none(), "{saved}");
        assert_eq!(saved["lines"][0]["_itemid"], json!(31));
    }

    #[test]
    fn a_negative_quantity_is_refused() {
        let mut db = db();
        let body = json!({"client_id": 12, "contract_id": 44,
            "lines": [{"_itemid": 31, "qty_order": -1}]});
        let err = post(&mut db, body).unwrap_err();
        assert_eq!(err, "The quantity must not be negative.");
    }

    #[test]
    fn lines_left_out_of_an_update_are_removed_and_named_ones_change() {
        let mut db = db();
        let invoice = super::super::seed::ids::ACME_RECURRING_INVOICE;
        let before = lines_of(&db, invoice);
        assert_eq!(before.len(), 2);
        let keep = before[0]["id"].clone();
        let body = json!({"id": invoice, "lines": [{"id": keep, "qty_order": 7}]});
        post(&mut db, body).unwrap();
        let after = lines_of(&db, invoice);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0]["qty_order"], json!(7.0));
        assert_eq!(after[0]["unit_cost"], before[0]["unit_cost"]);
    }

    #[test]
    fn a_line_takes_the_items_recurring_price_and_a_contract_of_its_client_only() {
        let mut db = db();
        let body = json!({"client_id": 12, "contract_id": 44,
            "lines": [{"_itemid": 31, "qty_order": 3}]});
        let saved = post(&mut db, body).unwrap();
        let item = db.get("Item", 31).unwrap();
        assert_eq!(saved["lines"][0]["unit_price"], item["recurringprice"]);
        assert_eq!(saved["lines"][0]["contract_id"], json!(44));
        let foreign = json!({"client_id": 12, "contract_id": 46});
        let err = post(&mut db, foreign).unwrap_err();
        assert_eq!(err, "Contract 46 does not belong to client 12.");
        let unknown = json!({"client_id": 12, "lines": [{"_itemid": 9999}]});
        let err = post(&mut db, unknown).unwrap_err();
        assert_eq!(err, "Item 9999 does not exist.");
    }
}
