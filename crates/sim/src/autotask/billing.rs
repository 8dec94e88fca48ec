//! Recurring services on contracts, as Autotask keeps them.
//!
//! A `ContractService` puts a catalogue `Service` on a Recurring Service contract (type 7) but
//! holds no unit count. The count lives in read-only `ContractServiceUnits`, one row per
//! service and billing period (calendar months here), and only a
//! `ContractServiceAdjustment` (create-only) moves it: `unitChange` is a signed delta applied
//! to the period holding `effectiveDate` and every later one. An adjustment for a service not
//! yet on the contract adds it. So a client that wants "N units" reads the current row and
//! posts `N - units`; a client that re-posts a delta after a lost answer counts twice, which
//! is why PSA Bridge always reads before it adjusts.
//!
//! Simplification: an adjustment's `adjustedUnitPrice` / `adjustedUnitCost` become the contract
//! service's `unitPrice` / `unitCost` from then on, and each period row's `price` and `cost` are
//! units times those.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::errors::{ApiError, fail};
use super::model::EntityInfo;
use super::query::{coerce_i64, parse_time};
use super::store::{Db, fill};
use super::validation::time_text;

/// `contractType` of a Recurring Service contract, the only kind that takes services.
pub const RECURRING_SERVICE: i64 = 7;

fn int(r: &Map<String, Value>, k: &str) -> Option<i64> {
    r.get(k).and_then(coerce_i64)
}

fn number(r: &Value, k: &str) -> f64 {
    r.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn recurring_contract(db: &Db, contract: Option<i64>) -> Result<&Value, ApiError> {
    let c = contract
        .and_then(|id| db.get("Contracts", id))
        .ok_or(())
        .or_else(|()| fail("Value does not reference an existing entity for contractID."))?;
    if c.get("contractType").and_then(coerce_i64) != Some(RECURRING_SERVICE) {
        return fail("Services can only be added to Recurring Service contracts.");
    }
    Ok(c)
}

/// The contract service of (contract, service), if the service is on the contract.
pub fn contract_service_of(db: &Db, contract: i64, service: i64) -> Option<&Value> {
    db.table("ContractServices")?.values().find(|cs| {
        cs.get("contractID").and_then(coerce_i64) == Some(contract)
            && cs.get("serviceID").and_then(coerce_i64) == Some(service)
    })
}

/// Rules of a new ContractService.
pub fn check_contract_service(db: &Db, r: &Map<String, Value>) -> Result<(), ApiError> {
    recurring_contract(db, int(r, "contractID"))?;
    if let (Some(k), Some(s)) = (int(r, "contractID"), int(r, "serviceID"))
        && contract_service_of(db, k, s).is_some()
    {
        return fail("The service is already on this contract.");
    }
    Ok(())
}

/// Rules of a new adjustment: a recurring contract, a service, a date inside the contract, and
/// no period left below zero units.
pub fn check_adjustment(db: &Db, r: &Map<String, Value>) -> Result<(), ApiError> {
    let contract = recurring_contract(db, int(r, "contractID"))?;
    let service = service_of_adjustment(db, r)?;
    let Some(effective) = r
        .get("effectiveDate")
        .and_then(Value::as_str)
        .and_then(parse_time)
    else {
        return fail("effectiveDate is required.; on record number [0].");
    };
    let start = contract
        .get("startDate")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let end = contract
        .get("endDate")
        .and_then(Value::as_str)
        .and_then(parse_time);
    if start.is_some_and(|s| effective < month_start(s)) || end.is_some_and(|e| effective > e) {
        return fail("The effectiveDate must fall within the contract's dates.");
    }
    let change = int(r, "unitChange").unwrap_or(0);
    let contract_id = int(r, "contractID").unwrap_or_default();
    let current = contract_service_of(db, contract_id, service)
        .and_then(|cs| cs.get("id").and_then(coerce_i64))
        .map(|cs| units_rows(db, cs))
        .unwrap_or_default();
    let period = month_start(effective);
    let at_effective = current
        .iter()
        .filter(|(start, _)| *start <= period)
        .max_by_key(|(start, _)| *start)
        .map_or(0, |(_, units)| *units);
    let later_min = current
        .iter()
        .filter(|(start, _)| *start > period)
        .map(|(_, u)| *u)
        .min()
        .unwrap_or(at_effective);
    if at_effective.min(later_min) + change < 0 {
        return fail("The unitChange would leave the service with fewer than zero units.");
    }
    Ok(())
}

fn service_of_adjustment(db: &Db, r: &Map<String, Value>) -> Result<i64, ApiError> {
    match (int(r, "serviceID"), int(r, "contractServiceID")) {
        (Some(s), _) => Ok(s),
        (None, Some(cs)) => db
            .get("ContractServices", cs)
            .filter(|x| x.get("contractID").and_then(coerce_i64) == int(r, "contractID"))
            .and_then(|x| x.get("serviceID").and_then(coerce_i64))
            .ok_or(())
            .or_else(|()| {
                fail("Value does not reference an existing entity for contractServiceID.")
            }),
        (None, None) => fail("Either serviceID or contractServiceID is required."),
    }
}

/// The (period start, units) rows of a contract service.
fn units_rows(db: &Db, contract_service: i64) -> Vec<(DateTime<Utc>, i64)> {
    db.table("ContractServiceUnits")
        .map(|t| {
            t.values()
                .filter(|u| {
                    u.get("contractServiceID").and_then(coerce_i64) == Some(contract_service)
                })
                .filter_map(|u| {
                    let start = u
                        .get("startDate")
                        .and_then(Value::as_str)
                        .and_then(parse_time)?;
                    Some((start, u.get("units").and_then(coerce_i64).unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

pub(super) fn month_end(start: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if start.month() == 12 {
        (start.year() + 1, 1)
    } else {
        (start.year(), start.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(start)
        - chrono::Duration::seconds(1)
}

/// Put a service on a contract (what a ContractServices create, or an adjustment for a service
/// not on the contract, does): the contract service, with its first period at zero units.
pub fn add_service(
    db: &mut Db,
    entities: &Entities,
    contract: i64,
    service: i64,
    price: Option<f64>,
    cost: Option<f64>,
    at: DateTime<Utc>,
) -> i64 {
    let catalogue = db.get("Services", service).cloned().unwrap_or(Value::Null);
    let unit_price = price.unwrap_or_else(|| number(&catalogue, "unitPrice"));
    let unit_cost = cost.unwrap_or_else(|| number(&catalogue, "unitCost"));
    let id = db.next_id();
    let mut cs = json!({"id": id, "contractID": contract, "serviceID": service,
        "unitPrice": unit_price, "unitCost": unit_cost});
    fill(entities.contract_services, &mut cs);
    db.put(entities.contract_services, id, cs);
    open_period(db, entities, id, at);
    id
}

/// After a ContractServices create: the service's price and (unless given) cost, and its
/// first period's row.
pub fn after_contract_service_created(
    db: &mut Db,
    entities: &Entities,
    r: &Map<String, Value>,
    at: DateTime<Utc>,
) {
    let Some(id) = int(r, "id") else { return };
    let catalogue = int(r, "serviceID")
        .and_then(|s| db.get("Services", s))
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(Value::Object(cs)) = db.get_mut("ContractServices", id) {
        cs.insert("unitPrice".into(), json!(number(&catalogue, "unitPrice")));
        if cs.get("unitCost").is_none_or(Value::is_null) {
            cs.insert("unitCost".into(), json!(number(&catalogue, "unitCost")));
        }
    }
    open_period(db, entities, id, at);
}

/// Make sure the contract service has a row for the period holding `at`, carrying the units
/// of the latest earlier period forward.
fn open_period(db: &mut Db, entities: &Entities, contract_service: i64, at: DateTime<Utc>) {
    let start = month_start(at);
    let rows = units_rows(db, contract_service);
    if rows.iter().any(|(s, _)| *s == start) {
        return;
    }
    let carried = rows
        .iter()
        .filter(|(s, _)| *s < start)
        .max_by_key(|(s, _)| *s)
        .map_or(0, |(_, u)| *u);
    let Some(cs) = db.get("ContractServices", contract_service).cloned() else {
        return;
    };
    let id = db.next_id();
    let unit_price = number(&cs, "unitPrice");
    let unit_cost = number(&cs, "unitCost");
    let mut row = json!({"id": id, "contractID": cs["contractID"], "serviceID": cs["serviceID"],
        "contractServiceID": contract_service, "startDate": time_text(start),
        "endDate": time_text(month_end(start)), "units": carried,
        "price": unit_price * carried as f64, "cost": unit_cost * carried as f64,
        "internalCurrencyPrice": unit_price * carried as f64});
    fill(entities.contract_service_units, &mut row);
    db.put(entities.contract_service_units, id, row);
}

/// Carry out a stored adjustment: add the service if it is not on the contract, then move the
/// units (and unit price or cost when given) of the effective period and every later one.
pub fn apply_adjustment(db: &mut Db, entities: &Entities, r: &Map<String, Value>) {
    let Some(contract) = int(r, "contractID") else {
        return;
    };
    let Ok(service) = service_of_adjustment(db, r) else {
        return;
    };
    let Some(effective) = r
        .get("effectiveDate")
        .and_then(Value::as_str)
        .and_then(parse_time)
    else {
        return;
    };
    let price = r.get("adjustedUnitPrice").and_then(Value::as_f64);
    let cost = r.get("adjustedUnitCost").and_then(Value::as_f64);
    let cs = match contract_service_of(db, contract, service).and_then(|c| int_of(c, "id")) {
        Some(cs) => cs,
        None => add_service(db, entities, contract, service, price, cost, effective),
    };
    open_period(db, entities, cs, effective);
    if let Some(Value::Object(c)) = db.get_mut("ContractServices", cs) {
        if let Some(p) = price {
            c.insert("unitPrice".into(), json!(p));
        }
        if let Some(k) = cost {
            c.insert("unitCost".into(), json!(k));
        }
    }
    let change = int(r, "unitChange").unwrap_or(0);
    let from = month_start(effective);
    let ids: Vec<i64> = db
        .table("ContractServiceUnits")
        .map(|t| {
            t.iter()
                .filter(|(_, u)| u.get("contractServiceID").and_then(coerce_i64) == Some(cs))
                .filter(|(_, u)| {
                    u.get("startDate")
                        .and_then(Value::as_str)
                        .and_then(parse_time)
                        .is_some_and(|s| s >= from)
                })
                .map(|(id, _)| *id)
                .collect()
        })
        .unwrap_or_default();
    let cs_row = db
        .get("ContractServices", cs)
        .cloned()
        .unwrap_or(Value::Null);
    let (unit_price, unit_cost) = (number(&cs_row, "unitPrice"), number(&cs_row, "unitCost"));
    for id in ids {
        if let Some(Value::Object(u)) = db.get_mut("ContractServiceUnits", id) {
            let units = u.get("units").and_then(coerce_i64).unwrap_or(0) + change;
            u.insert("units".into(), json!(units));
            u.insert("price".into(), json!(unit_price * units as f64));
            u.insert(
                "internalCurrencyPrice".into(),
                json!(unit_price * units as f64),
            );
            u.insert("cost".into(), json!(unit_cost * units as f64));
        }
    }
}

fn int_of(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(coerce_i64)
}

/// The entity descriptions this module writes rows of.
pub struct Entities {
    pub contract_services: &'static EntityInfo,
    pub contract_service_units: &'static EntityInfo,
}

/// Every service on a contract with the units of the period holding `at`, in the normalised
/// shape every simulator answers at `GET /_sim/billing` (for tests that read any PSA alike).
pub fn lines_now(db: &Db, at: DateTime<Utc>) -> Value {
    let mut lines: Vec<Value> = db
        .table("ContractServices")
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(|cs| {
            let id = int_of(cs, "id")?;
            let service = int_of(cs, "serviceID")?;
            let units = units_rows(db, id)
                .into_iter()
                .filter(|(start, _)| *start <= at)
                .max_by_key(|(start, _)| *start)
                .map_or(0, |(_, units)| units);
            let name = db
                .get("Services", service)
                .and_then(|s| s.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            Some(json!({
                "contract_id": int_of(cs, "contractID")?.to_string(),
                "service_id": service.to_string(),
                "service_name": name,
                "units": units,
                "unit_cost": number(cs, "unitCost"),
                "unit_price": number(cs, "unitPrice"),
            }))
        })
        .collect();
    lines.sort_by_key(|l| (l["contract_id"].to_string(), l["service_id"].to_string()));
    Value::Array(lines)
}
