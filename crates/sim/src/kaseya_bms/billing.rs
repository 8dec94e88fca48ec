//! Contract billing as BMS v2 publishes it: the contracts summary, the finance catalogue's
//! services, service entries of recurring-services contracts, and a service's "related
//! services" (the contracts it is on).
//!
//! What the published v2 document leaves open, and what this simulator chose:
//! - **No read of one contract's services and no update of an entry's units.** v2 only adds
//!   services to a contract (`POST finance/contracts/recurringservices/{contractId}/services`,
//!   each with an `EffectiveDate`). A service added again to the same contract is kept as a
//!   new **effective-dated entry**: the units, cost and price of the period holding an instant
//!   are those of the latest entry of that service effective at or before it (ties: the later
//!   entry). Earlier entries stay as history.
//! - **The read of a service's contract entries** is the closest published one,
//!   `POST admin/finance/services/{serviceId}/relatedservices/search`, one row per entry.
//!   [?] Its `RelatedServicesListOutputDto` names no unit count; this simulator adds `units`
//!   to each row so that a client can compare, and says so here: unverified on a real tenant.
//! - **The cost and price of existing entries** change through the published bulk update
//!   (`…/relatedservices/bulkupdate`), applied at once here. [?] BMS may run it as a
//!   background job (`GET …/{serviceId}/backgroundjob`); the simulator never does.
//! - Only **Recurring Services** contracts that are active take services.

use axum::response::Response;
use serde_json::{Value, json};

use super::api::{DEFAULT_PAGE_SIZE, contains};
use super::envelope::{Fail, ok, paged};
use super::input::{Body, Params, page};
use super::store::{CatalogueService, ContractRec, ContractServiceEntry, Db};
use super::{Config, now_text};

/// `contractType` of the contracts that carry recurring services.
pub const RECURRING_SERVICES: &str = "Recurring Services";

fn today() -> String {
    now_text().get(..10).unwrap_or_default().to_string()
}

fn same(a: &str, b: Option<&str>) -> bool {
    b.is_none_or(|b| a.eq_ignore_ascii_case(b.trim()))
}

/// The entry of `service` on `contract` in force at `at` (RFC 3339, UTC): the latest one
/// effective at or before it.
pub fn current_entry<'a>(
    db: &'a Db,
    contract: i64,
    service: i64,
    at: &str,
) -> Option<&'a ContractServiceEntry> {
    db.contract_services
        .iter()
        .filter(|e| e.contract_id == contract && e.service_id == service)
        .filter(|e| e.effective_date.as_str() <= at)
        .max_by(|a, b| {
            a.effective_date
                .cmp(&b.effective_date)
                .then(a.id.cmp(&b.id))
        })
}

/// What a contract bills a period: units times price of each service's current entry.
fn billing_price(db: &Db, c: &ContractRec, at: &str) -> f64 {
    let mut services: Vec<i64> = db
        .contract_services
        .iter()
        .filter(|e| e.contract_id == c.id)
        .map(|e| e.service_id)
        .collect();
    services.sort_unstable();
    services.dedup();
    services
        .iter()
        .filter_map(|s| current_entry(db, c.id, *s, at))
        .map(|e| e.units as f64 * e.unit_price)
        .sum()
}

/// `GET /v2/finance/contracts/summary` (`GetContractsSummary`): paged; `Filter.ContractType`,
/// `Filter.Status` and `Filter.BillingCycle` match whole values, `Filter.ContractName` and
/// `Filter.AccountName` are contains-matches, all case-insensitive.
pub fn contracts_summary(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let today = today();
    let now = now_text();
    let matching: Vec<Value> = db
        .contracts
        .iter()
        .filter(|c| {
            let account = db.account(c.account_id).map_or("", |a| a.name.as_str());
            same(&c.contract_type, p.get("Filter.ContractType"))
                && same(c.status(&today), p.get("Filter.Status"))
                && same(&c.billing_cycle, p.get("Filter.BillingCycle"))
                && contains(&c.name, p.get("Filter.ContractName"))
                && contains(account, p.get("Filter.AccountName"))
        })
        .map(|c| {
            json!({"id": c.id, "contractName": c.name,
                   "accountName": db.account(c.account_id).map(|a| a.name.clone()),
                   "contractType": c.contract_type,
                   "contractBillingPrice": billing_price(db, c, &now),
                   "status": c.status(&today), "contractNumber": c.number,
                   "billingCycle": c.billing_cycle, "startDate": c.start_date,
                   "endDate": c.end_date})
        })
        .collect();
    let total = matching.len();
    Ok(paged(page(&matching, size, number), total))
}

fn service_json(s: &CatalogueService) -> Value {
    json!({"id": s.id, "name": s.name, "description": s.description, "unitCost": s.unit_cost,
           "unitPrice": s.unit_price, "categoryId": null, "category": null,
           "subCategoryId": null, "subCategory": null, "unitOfMeasureId": null,
           "unitOfMeasure": null, "incomeAccountId": null, "incomeAccountCode": null,
           "incomeAccountName": null, "expenseAccountId": null, "expenseAccountCode": null,
           "expenseAccountName": null, "isActive": s.is_active, "isTaxable": s.is_taxable,
           "createdOn": s.created_on, "createdBy": 1, "modifiedOn": s.modified_on,
           "modifiedBy": 1, "margin": null, "marginType": null})
}

/// `GET /v2/admin/finance/services/lookup` (`GetServicesLookup`): the active services, paged;
/// `Filter.Id`, `Filter.Name` (contains).
pub fn services_lookup(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let id = p.int("Filter.Id")?;
    let matching: Vec<Value> = db
        .services
        .iter()
        .filter(|s| s.is_active)
        .filter(|s| id.is_none_or(|i| s.id == i) && contains(&s.name, p.get("Filter.Name")))
        .map(|s| json!({"id": s.id, "name": s.name, "description": s.description}))
        .collect();
    let total = matching.len();
    Ok(paged(page(&matching, size, number), total))
}

fn service(db: &Db, id: i64) -> Result<&CatalogueService, Fail> {
    db.services
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Fail::not_found(format!("Service with id {id} was not found.")))
}

/// `GET /v2/admin/finance/services/{serviceId}` (`GetService`).
pub fn get_service(db: &Db, id: i64) -> Result<Response, Fail> {
    Ok(ok(service_json(service(db, id)?)))
}

/// A money field that must not be negative.
fn money(b: &Body, name: &str, e: &mut Vec<String>) -> Option<f64> {
    let v = b.number(name, e)?;
    if v < 0.0 {
        e.push(format!("The field {name} must not be negative."));
    }
    Some(v)
}

/// `POST /v2/admin/finance/services/services` (`PostService`, a `ServiceInputDto`): a name
/// (unique in the catalogue, case-insensitive), cost and price not negative.
pub fn create_service(db: &mut Db, config: &Config, body: &[u8]) -> Result<Response, Fail> {
    let b = Body::parse(body)?;
    let mut e = Vec::new();
    let name = b
        .string("Name", &mut e)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let description = b.string("Description", &mut e);
    let unit_cost = money(&b, "UnitCost", &mut e);
    let unit_price = money(&b, "UnitPrice", &mut e);
    let is_active = b.bool("IsActive", &mut e).unwrap_or(false);
    let is_taxable = b.bool("IsTaxable", &mut e).unwrap_or(false);
    match &name {
        None if !e.iter().any(|m| m.ends_with("$.Name")) => {
            e.push("The Name field is required.".into())
        }
        Some(n) if db.services.iter().any(|s| s.name.eq_ignore_ascii_case(n)) => {
            e.push(format!("A service with the name '{n}' already exists."))
        }
        _ => {}
    }
    if !e.is_empty() {
        return Err(Fail::validation(config.validation_status, e));
    }
    let now = now_text();
    let s = CatalogueService {
        id: db.next_service_id,
        name: name.unwrap_or_default(),
        description,
        unit_cost: unit_cost.unwrap_or(0.0),
        unit_price: unit_price.unwrap_or(0.0),
        is_active,
        is_taxable,
        created_on: now.clone(),
        modified_on: now,
    };
    db.next_service_id += 1;
    let out = service_json(&s);
    db.services.push(s);
    Ok(ok(out))
}

fn entry_json(db: &Db, e: &ContractServiceEntry) -> Value {
    let contract = db.contracts.iter().find(|c| c.id == e.contract_id);
    let catalogue = db.services.iter().find(|s| s.id == e.service_id);
    json!({"id": e.id, "createdBy": 1, "createdOn": e.created_on, "modifiedBy": null,
           "modifiedOn": e.modified_on, "serviceId": e.service_id,
           "serviceName": e.service_name, "description": e.description,
           "contractId": e.contract_id, "contractName": contract.map(|c| c.name.clone()),
           "totalCost": e.units as f64 * e.unit_cost,
           "totalPrice": e.units as f64 * e.unit_price, "units": e.units as f64,
           "unitCost": e.unit_cost, "unitPrice": e.unit_price,
           "margin": e.unit_price - e.unit_cost,
           "originalUnitPrice": catalogue.map_or(e.unit_price, |s| s.unit_price),
           "originalUnitCost": catalogue.map_or(e.unit_cost, |s| s.unit_cost),
           "effectiveDate": e.effective_date, "sortOrder": e.sort_order})
}

/// `POST /v2/finance/contracts/recurringservices/{contractId}/services`
/// (`PostRecurringServices`): an array of `RecurringServicePostInputDto`, each a service of the
/// catalogue with its units (zero or more), cost and price, effective from `EffectiveDate`.
/// All are checked before any is added; the answer is the first entry added.
pub fn add_recurring_services(
    db: &mut Db,
    config: &Config,
    contract_id: i64,
    body: &[u8],
) -> Result<Response, Fail> {
    let contract = db
        .contracts
        .iter()
        .find(|c| c.id == contract_id)
        .cloned()
        .ok_or_else(|| Fail::not_found(format!("Contract with id {contract_id} was not found.")))?;
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(Fail::validation(
                400,
                vec!["The JSON value could not be converted to System.Collections.Generic.List`1[RecurringServicePostInputDto]. Path: $".into()],
            ));
        }
        Err(e) => {
            return Err(Fail::validation(
                400,
                vec![format!("The request body is not valid JSON: {e}")],
            ));
        }
    };
    let mut e = Vec::new();
    if contract.contract_type != RECURRING_SERVICES {
        e.push(format!(
            "Contract '{}' is a {} contract: services can only be added to Recurring Services contracts.",
            contract.name, contract.contract_type
        ));
    } else if contract.status(&today()) != "Active" {
        e.push(format!("Contract '{}' is not active.", contract.name));
    }
    if items.is_empty() {
        e.push("At least one service is required.".into());
    }
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let b = Body::from_value(item, &format!("$[{i}]"))?;
        let mut errors = Vec::new();
        let service_id = b.int("ServiceId", &mut errors);
        let units = b.int("Units", &mut errors).unwrap_or(0);
        let unit_cost = money(&b, "UnitCost", &mut errors).unwrap_or(0.0);
        let unit_price = money(&b, "UnitPrice", &mut errors).unwrap_or(0.0);
        let effective = b.date("EffectiveDate", &mut errors);
        let name = b.string("ServiceName", &mut errors);
        let description = b.string("ServiceDescription", &mut errors);
        let sort_order = b.int("SortOrder", &mut errors).unwrap_or(0);
        if units < 0 {
            errors.push("The field Units must be between 0 and 2147483647.".into());
        }
        let catalogue = service_id.and_then(|s| db.services.iter().find(|x| x.id == s));
        match (service_id, catalogue) {
            (None, _) if !errors.iter().any(|m| m.ends_with("$.ServiceId")) => {
                errors.push("The ServiceId field is required.".into())
            }
            (Some(s), None) => errors.push(format!("Service with id {s} does not exist.")),
            (Some(_), Some(c)) if !c.is_active => {
                errors.push(format!("Service '{}' is inactive.", c.name))
            }
            _ => {}
        }
        if effective.is_none() && !errors.iter().any(|m| m.ends_with("$.EffectiveDate")) {
            errors.push("The EffectiveDate field is required.".into());
        }
        if let (Some(date), Some(end)) = (&effective, &contract.end_date)
            && date.get(..10) > end.get(..10)
        {
            errors.push(format!(
                "The EffectiveDate {date} is after the contract's end date {end}."
            ));
        }
        e.extend(errors.into_iter().map(|m| format!("[{i}] {m}")));
        if let (Some(c), Some(date)) = (catalogue, effective) {
            entries.push(ContractServiceEntry {
                id: 0,
                contract_id,
                service_id: c.id,
                service_name: name.unwrap_or_else(|| c.name.clone()),
                description: description.or_else(|| c.description.clone()),
                units,
                unit_cost,
                unit_price,
                effective_date: date,
                sort_order,
                created_on: now_text(),
                modified_on: None,
            });
        }
    }
    if !e.is_empty() {
        return Err(Fail::validation(config.validation_status, e));
    }
    let mut first = None;
    for mut entry in entries {
        entry.id = db.next_contract_service_id;
        db.next_contract_service_id += 1;
        first.get_or_insert_with(|| entry_json(db, &entry));
        db.contract_services.push(entry);
    }
    Ok(ok(first.unwrap_or(Value::Null)))
}

fn date_filter(p: &Params, name: &str) -> Result<Option<String>, Fail> {
    let Some(v) = p.get(name) else {
        return Ok(None);
    };
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|d| {
            Some(
                d.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        })
        .map_err(|_| {
            Fail::validation(
                400,
                vec![format!("The value '{v}' is not valid for {name}.")],
            )
        })
}

/// `POST /v2/admin/finance/services/{serviceId}/relatedservices/search`
/// (`GetRelatedServicesList`): the service's entries on contracts, one row per entry, paged;
/// the body is a `RelatedServicesListInputDto`. `units` is this simulator's addition (see the
/// module's comment).
pub fn related_services(db: &Db, service_id: i64, body: &[u8]) -> Result<Response, Fail> {
    service(db, service_id)?;
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            Fail::validation(
                400,
                vec![format!("The request body is not valid JSON: {e}")],
            )
        })?
    };
    let p = Params::from_search_body(&v);
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let (from, to) = (
        date_filter(&p, "Filter.EffectiveDateFrom")?,
        date_filter(&p, "Filter.EffectiveDateTo")?,
    );
    let mut rows = Vec::new();
    for e in db
        .contract_services
        .iter()
        .filter(|e| e.service_id == service_id)
    {
        let Some(c) = db.contracts.iter().find(|c| c.id == e.contract_id) else {
            continue;
        };
        let account = db.account(c.account_id).map_or("", |a| a.name.as_str());
        if !(contains(&e.service_name, p.get("Filter.ServiceName"))
            && contains(&c.name, p.get("Filter.ContractName"))
            && contains(account, p.get("Filter.AccountName"))
            && from
                .as_deref()
                .is_none_or(|f| e.effective_date.as_str() >= f)
            && to.as_deref().is_none_or(|t| e.effective_date.as_str() <= t))
        {
            continue;
        }
        rows.push(
            json!({"id": e.id, "serviceId": e.service_id, "contractId": c.id,
            "accountId": c.account_id, "serviceName": e.service_name,
            "serviceDescription": e.description, "contractName": c.name,
            "accountName": account, "effectiveDate": e.effective_date,
            "contractStartDate": c.start_date, "contractEndDate": c.end_date,
            "unitCost": e.unit_cost, "unitPrice": e.unit_price, "marginType": 1,
            "margin": e.unit_price - e.unit_cost, "excludeFromContractBulkUpdates": false,
            "units": e.units}),
        );
    }
    let total = rows.len();
    Ok(paged(page(&rows, size, number), total))
}

/// `POST /v2/admin/finance/services/{serviceId}/relatedservices/bulkupdate`
/// (`UpdateRelatedServicesList`): the `Values` given (name, description, cost, price,
/// effective date) written to each selected entry, which must be an entry of this service on
/// the named contract. Answers a `StringResponse`.
pub fn bulk_update(
    db: &mut Db,
    config: &Config,
    service_id: i64,
    body: &[u8],
) -> Result<Response, Fail> {
    service(db, service_id)?;
    let b = Body::parse(body)?;
    let mut e = Vec::new();
    let selected: Vec<(Option<i64>, Option<i64>)> = match b.get("SelectedClientContractServices") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let s = Body::from_value(item, &format!("$.SelectedClientContractServices[{i}]"))?;
                Ok((
                    s.int("ClientContractId", &mut e),
                    s.int("ClientContractServiceId", &mut e),
                ))
            })
            .collect::<Result<_, Fail>>()?,
        _ => Vec::new(),
    };
    let values = match b.get("Values") {
        Some(v) => Body::from_value(v, "$.Values")?,
        None => Body::default(),
    };
    let name = values.string("ServiceName", &mut e);
    let description = values.string("ServiceDescription", &mut e);
    let unit_cost = money(&values, "UnitCost", &mut e);
    let unit_price = money(&values, "UnitPrice", &mut e);
    let effective = values.date("EffectiveDate", &mut e);
    if selected.is_empty() {
        e.push("Select at least one contract service to update.".into());
    }
    let mut targets = Vec::new();
    for (contract, entry) in &selected {
        match db.contract_services.iter().position(|x| {
            Some(x.id) == *entry && Some(x.contract_id) == *contract && x.service_id == service_id
        }) {
            Some(i) => targets.push(i),
            None => e.push(format!(
                "Contract service {} of contract {} is not an entry of service {service_id}.",
                entry.map_or("?".into(), |x| x.to_string()),
                contract.map_or("?".into(), |x| x.to_string())
            )),
        }
    }
    if !e.is_empty() {
        return Err(Fail::validation(config.validation_status, e));
    }
    let now = now_text();
    for i in &targets {
        let x = &mut db.contract_services[*i];
        if let Some(n) = &name {
            x.service_name = n.clone();
        }
        if description.is_some() {
            x.description = description.clone();
        }
        if let Some(c) = unit_cost {
            x.unit_cost = c;
        }
        if let Some(p) = unit_price {
            x.unit_price = p;
        }
        if let Some(d) = &effective {
            x.effective_date = d.clone();
        }
        x.modified_on = Some(now.clone());
    }
    Ok(ok(json!(format!(
        "{} contract service(s) updated.",
        targets.len()
    ))))
}

/// `GET /_sim/billing`: the entry in force now of each service on each contract, in PSA
/// Bridge's terms.
pub fn billing_view(db: &Db) -> Value {
    let now = now_text();
    let mut pairs: Vec<(i64, i64)> = db
        .contract_services
        .iter()
        .map(|e| (e.contract_id, e.service_id))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    Value::Array(
        pairs
            .into_iter()
            .filter_map(|(contract, service)| current_entry(db, contract, service, &now))
            .map(|e| {
                json!({"contract_id": e.contract_id.to_string(),
                       "service_id": e.service_id.to_string(),
                       "service_name": e.service_name, "units": e.units,
                       "unit_cost": e.unit_cost, "unit_price": e.unit_price})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kaseya_bms::seed::seeded;
    use axum::http::StatusCode;

    fn add(db: &mut Db, contract: i64, item: Value) -> Result<Response, Fail> {
        let body = serde_json::to_vec(&json!([item])).unwrap();
        add_recurring_services(db, &Config::default(), contract, &body)
    }

    #[test]
    fn units_must_not_be_negative_and_only_active_recurring_contracts_take_services() {
        let mut db = seeded(&Config::default());
        let seat = db.services[0].id;
        let at = "2026-01-01T00:00:00Z";
        let refused = add(
            &mut db,
            44,
            json!({"ServiceId": seat, "Units": -1, "UnitCost": 1, "UnitPrice": 2, "EffectiveDate": at}),
        )
        .unwrap_err();
        assert!(
            refused.sub_errors.iter().any(|m| m.contains("Units")),
            "{refused:?}"
        );
        let refused = add(
            &mut db,
            45,
            json!({"ServiceId": seat, "Units": 1, "EffectiveDate": at}),
        )
        .unwrap_err();
        assert!(
            refused.sub_errors[0].contains("Recurring Services"),
            "{refused:?}"
        );
        let missing = add(&mut db, 4999, json!({"ServiceId": seat})).unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let no_date = add(&mut db, 44, json!({"ServiceId": seat, "Units": 1})).unwrap_err();
        assert!(
            no_date.sub_errors[0].contains("EffectiveDate"),
            "{no_date:?}"
        );
    }

    #[test]
    fn the_latest_entry_effective_at_or_before_an_instant_is_in_force() {
        let mut db = seeded(&Config::default());
        let monitoring = db.services[1].id;
        let add_units = |db: &mut Db, units: i64, at: &str| {
            let answer = add(
                db,
                46,
                json!({"ServiceId": monitoring, "Units": units, "UnitCost": 1.5, "UnitPrice": 3, "EffectiveDate": at}),
            )
            .unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        };
        add_units(&mut db, 5, "2026-02-01T00:00:00Z");
        add_units(&mut db, 9, "2026-03-01T00:00:00Z");
        // The control surface shows the entry in force now.
        let monitoring_id = monitoring.to_string();
        let view = billing_view(&db);
        let line = view
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["contract_id"] == "46" && l["service_id"] == monitoring_id.as_str())
            .cloned()
            .unwrap();
        assert_eq!(line["units"], 9, "{view}");
        // A later entry supersedes from its own date; the same date, from its own id on.
        add_units(&mut db, 7, "2030-06-01T00:00:00Z");
        add_units(&mut db, 8, "2030-06-01T00:00:00Z");
        let units = |at: &str| current_entry(&db, 46, monitoring, at).map(|e| e.units);
        assert_eq!(units("2026-01-15T00:00:00Z"), None);
        assert_eq!(units("2026-02-20T00:00:00Z"), Some(5));
        assert_eq!(units("2026-03-01T00:00:00Z"), Some(9));
        assert_eq!(units("2030-05-31T23:59:59Z"), Some(9));
        assert_eq!(units("2030-06-01T00:00:00Z"), Some(8));
    }

    #[test]
    fn service_names_are_unique_and_costs_not_negative() {
        let mut db = seeded(&Config::default());
        let taken = db.services[0].name.to_uppercase();
        let body = serde_json::to_vec(&json!({"Name": taken, "IsActive": true})).unwrap();
        let e = create_service(&mut db, &Config::default(), &body).unwrap_err();
        assert!(e.sub_errors[0].contains("already exists"), "{e:?}");
        let body = serde_json::to_vec(&json!({"Name": "New", "UnitCost": -2})).unwrap();
        let e = create_service(&mut db, &Config::default(), &body).unwrap_err();
        assert!(e.sub_errors[0].contains("UnitCost"), "{e:?}");
    }
}
