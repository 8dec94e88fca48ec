//! Agreement additions (`finance/agreements/{id}/additions`): catalogue products billed on an
//! agreement every billing cycle, with a quantity, a unit price and a unit cost.
//!
//! ConnectWise keeps one current `quantity` per addition (no per-period history in the API):
//! a change is a JSON Patch `replace` of the absolute value, so repeating it changes nothing.
//! An addition stops billing once its `cancelledDate` has passed. The rules checked on a create
//! and on every patch: `product` (required) is an active catalogue item, `billCustomer`
//! (required) is `Billable|DoNotBill|NoCharge`, `quantity`, `unitPrice` and `unitCost` are
//! numbers of at least 0 (the simulator's choice where ConnectWise publishes no range), dates
//! are dates and a cancellation is not before the effective date. `unitPrice`, `unitCost` and
//! `description` default to the product's `price`, `cost` and `description`; `effectiveDate`
//! to today. Answers carry the computed `extPrice`, `extCost`, `margin` and the agreement's
//! `agreementStatus`. ConnectWise allows the same product twice on one agreement, and so does
//! the simulator.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::catalog::item_ref;
use super::conditions::parse_date;
use super::errors::{ApiError, FieldError};
use super::store::*;
use super::tickets::{apply_json_patch, describe, find_ref};

const BILL_CUSTOMER: &[&str] = &["Billable", "DoNotBill", "NoCharge"];
/// Fields the API computes or owns; a patch may not set them.
const READ_ONLY: &[&str] = &[
    "id",
    "_info",
    "agreementId",
    "extPrice",
    "extCost",
    "margin",
    "agreementStatus",
    "billedQuantity",
];
/// The `Addition` properties a client may write (the document's model less what it computes);
/// anything else in a create is ignored, and a patch of it is refused.
const WRITABLE: &[&str] = &[
    "product",
    "quantity",
    "lessIncluded",
    "unitPrice",
    "unitCost",
    "billCustomer",
    "effectiveDate",
    "cancelledDate",
    "taxableFlag",
    "serialNumber",
    "invoiceDescription",
    "purchaseItemFlag",
    "specialOrderFlag",
    "description",
    "uom",
    "sequenceNumber",
    "prorateCurrentPeriodFlag",
    "opportunity",
    "invoiceGrouping",
    "customFields",
];
/// Ids of created additions start here (seeded ones are below).
const FIRST_ID: i64 = 100;

fn date_text(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn number(v: &Value, field: &str) -> f64 {
    v.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

/// An addition as the API answers it.
pub fn out(db: &Db, a: &Value) -> Value {
    let mut v = clean(a);
    let quantity = number(a, "quantity");
    let ext_price = quantity * number(a, "unitPrice");
    let ext_cost = quantity * number(a, "unitCost");
    v["extPrice"] = json!(ext_price);
    v["extCost"] = json!(ext_cost);
    v["margin"] = json!(ext_price - ext_cost);
    let status = a
        .get("agreementId")
        .and_then(Value::as_i64)
        .and_then(|id| db.get(AGREEMENTS, id))
        .map(|ag| ag["agreementStatus"].clone())
        .unwrap_or(Value::Null);
    v["agreementStatus"] = status;
    v
}

/// The additions of an agreement as the API answers them, in id order.
pub fn of_agreement(db: &Db, agreement: i64) -> Vec<Value> {
    db.table(ADDITIONS)
        .values()
        .filter(|a| a.get("agreementId").and_then(Value::as_i64) == Some(agreement))
        .map(|a| out(db, a))
        .collect()
}

/// Whether the addition bills at `now`: not cancelled, or cancelled from a later date.
pub fn in_force(a: &Value, now: DateTime<Utc>) -> bool {
    a.get("cancelledDate")
        .and_then(Value::as_str)
        .and_then(parse_date)
        .is_none_or(|c| c > now)
}

/// Check a draft addition and complete it with its defaults.
fn settle(db: &Db, draft: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let mut product = None;
    match draft.get("product").filter(|v| !v.is_null()) {
        None => errors.push(FieldError::new(
            "NullValue",
            "product",
            "The product field is required.",
        )),
        Some(given) => match find_ref(db, CATALOG, given, None) {
            Some(p) if !flag(p, "inactiveFlag") => product = Some(p.clone()),
            Some(_) => errors.push(FieldError::new(
                "InvalidObject",
                "product",
                format!("product {} is inactive.", describe(given)),
            )),
            None => errors.push(FieldError::new(
                "InvalidObject",
                "product",
                format!("product {} was not found.", describe(given)),
            )),
        },
    }
    match draft.get("billCustomer").and_then(Value::as_str) {
        Some(b) if BILL_CUSTOMER.contains(&b) => {}
        Some(_) => errors.push(FieldError::new(
            "InvalidField",
            "billCustomer",
            format!("billCustomer must be one of {}.", BILL_CUSTOMER.join(", ")),
        )),
        None => errors.push(FieldError::new(
            "NullValue",
            "billCustomer",
            "The billCustomer field is required.",
        )),
    }
    for (field, default) in [
        ("quantity", Some(0.0)),
        ("unitPrice", product.as_ref().map(|p| number(p, "price"))),
        ("unitCost", product.as_ref().map(|p| number(p, "cost"))),
    ] {
        match draft.get(field) {
            None | Some(Value::Null) => {
                if let Some(d) = default {
                    draft.insert(field.into(), json!(d));
                }
            }
            Some(v) if v.as_f64().is_some_and(|n| n >= 0.0) => {
                // ConnectWise answers decimals (`25.0`) whatever was sent.
                let n = v.as_f64().unwrap_or_default();
                draft.insert(field.into(), json!(n));
            }
            Some(_) => errors.push(FieldError::new(
                "OutOfRange",
                field,
                format!("The field {field} must be a number of at least 0."),
            )),
        }
    }
    let effective = match draft.get("effectiveDate").filter(|v| !v.is_null()) {
        None => {
            // Today, as the screen fills it in.
            Utc::now()
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc())
        }
        Some(v) => {
            let parsed = v.as_str().and_then(parse_date);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    "InvalidField",
                    "effectiveDate",
                    "The effectiveDate field is not a date.",
                ));
            }
            parsed
        }
    };
    if let Some(e) = effective {
        draft.insert("effectiveDate".into(), json!(date_text(e)));
    }
    match draft.get("cancelledDate").filter(|v| !v.is_null()) {
        None => {
            draft.remove("cancelledDate");
        }
        Some(v) => match v.as_str().and_then(parse_date) {
            Some(c) if effective.is_some_and(|e| c < e) => errors.push(FieldError::new(
                "InvalidField",
                "cancelledDate",
                "The cancelledDate cannot be before the effectiveDate.",
            )),
            Some(c) => {
                draft.insert("cancelledDate".into(), json!(date_text(c)));
            }
            None => errors.push(FieldError::new(
                "InvalidField",
                "cancelledDate",
                "The cancelledDate field is not a date.",
            )),
        },
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("addition", errors));
    }
    if let Some(p) = product {
        draft.insert("product".into(), item_ref(db, &p));
        if draft
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            draft.insert("description".into(), p["description"].clone());
        }
    }
    Ok(())
}

/// `POST /finance/agreements/{agreement}/additions` (the agreement exists): the new addition.
pub fn create(db: &mut Db, agreement: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(given) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "The request body must be an addition object.".into(),
        ));
    };
    let mut draft: Map<String, Value> = given
        .iter()
        .filter_map(|(k, v)| {
            let known = WRITABLE.iter().find(|w| w.eq_ignore_ascii_case(k))?;
            Some((known.to_string(), v.clone()))
        })
        .collect();
    settle(db, &mut draft)?;
    let id = db.next_id(ADDITIONS, FIRST_ID);
    let defaults = json!({"lessIncluded": 0.0, "taxableFlag": false, "purchaseItemFlag": false,
        "specialOrderFlag": false, "billedQuantity": 0.0, "uom": "Each",
        "prorateCurrentPeriodFlag": false, "sequenceNumber": id as f64});
    if let Value::Object(d) = defaults {
        for (k, v) in d {
            draft.entry(k).or_insert(v);
        }
    }
    draft.insert("id".into(), json!(id));
    draft.insert("agreementId".into(), json!(agreement));
    draft.insert("_info".into(), Value::Object(db.info(member, None)));
    let addition = Value::Object(draft);
    db.put(ADDITIONS, addition.clone());
    Ok(out(db, &addition))
}

/// `PATCH /finance/agreements/{agreement}/additions/{id}` with a JSON Patch array.
pub fn patch(
    db: &mut Db,
    agreement: i64,
    id: i64,
    body: &Value,
    member: &str,
) -> Result<Value, ApiError> {
    let Some(prev) = db
        .get(ADDITIONS, id)
        .filter(|a| a.get("agreementId").and_then(Value::as_i64) == Some(agreement))
        .cloned()
    else {
        return Err(ApiError::NotFound(format!(
            "Addition with id {id} was not found."
        )));
    };
    let Value::Array(ops) = body else {
        return Err(ApiError::BadRequest(
            "The request body must be a JSON Patch array.".into(),
        ));
    };
    let mut draft = prev.as_object().cloned().unwrap_or_default();
    apply_json_patch(&mut draft, ops, |_, first| {
        if let Some(key) = READ_ONLY.iter().find(|r| r.eq_ignore_ascii_case(first)) {
            return Err(ApiError::one(
                "addition",
                FieldError::new("ReadOnly", key, format!("{key} cannot be updated.")),
            ));
        }
        WRITABLE
            .iter()
            .find(|w| w.eq_ignore_ascii_case(first))
            .map(|w| w.to_string())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("'{first}' is not a field of an addition."))
            })
    })?;
    settle(db, &mut draft)?;
    draft.insert(
        "_info".into(),
        Value::Object(db.info(member, prev.get("_info"))),
    );
    let addition = Value::Object(draft);
    db.put(ADDITIONS, addition.clone());
    Ok(out(db, &addition))
}

/// `GET /_sim/billing`: every addition in force, in PSA Bridge's terms.
pub fn billing_lines(db: &Db) -> Vec<Value> {
    let now = Utc::now();
    db.table(ADDITIONS)
        .values()
        .filter(|a| in_force(a, now))
        .map(|a| {
            let product = ref_id(a, "product");
            let name = product
                .and_then(|p| db.get(CATALOG, p))
                .map(|p| text(p, "identifier"))
                .unwrap_or_default();
            json!({
                "contract_id": a.get("agreementId").and_then(Value::as_i64).map(|i| i.to_string()),
                "service_id": product.map(|p| p.to_string()),
                "service_name": name,
                "units": number(a, "quantity").round() as i64,
                "unit_cost": number(a, "unitCost"),
                "unit_price": number(a, "unitPrice"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with_product() -> Db {
        let mut db = Db::empty("http://sim/apis/3.0");
        db.put(
            CATALOG,
            json!({"id": 31, "identifier": "SAAS-SEC", "description": "Security seat",
                   "price": 3.5, "cost": 1.2, "inactiveFlag": false}),
        );
        db.put(AGREEMENTS, json!({"id": 44, "agreementStatus": "Active"}));
        db
    }

    fn codes(e: ApiError) -> Vec<(&'static str, String)> {
        match e {
            ApiError::Invalid { errors, .. } => {
                errors.into_iter().map(|e| (e.code, e.field)).collect()
            }
            other => panic!("expected InvalidObject, got {other:?}"),
        }
    }

    #[test]
    fn a_new_addition_takes_the_products_price_and_cost() {
        let mut db = db_with_product();
        let a = create(
            &mut db,
            44,
            &json!({"product": {"id": 31}, "quantity": 4, "billCustomer": "Billable",
                    "extPrice": 1000, "colour": "red"}),
            "api",
        )
        .unwrap();
        assert_eq!(a.get("colour"), None, "unknown properties are ignored");
        assert_eq!(a["unitPrice"], json!(3.5));
        assert_eq!(a["unitCost"], json!(1.2));
        assert_eq!(a["extPrice"], json!(14.0));
        assert_eq!(a["product"]["identifier"], json!("SAAS-SEC"));
        assert_eq!(a["agreementStatus"], json!("Active"));
        assert_eq!(a["description"], json!("Security seat"));
    }

    #[test]
    fn quantities_below_zero_and_missing_fields_are_refused() {
        let mut db = db_with_product();
        let refused = create(&mut db, 44, &json!({"quantity": -1}), "api").unwrap_err();
        assert_eq!(
            codes(refused),
            vec![
                ("NullValue", "product".to_string()),
                ("NullValue", "billCustomer".to_string()),
                ("OutOfRange", "quantity".to_string()),
            ]
        );
        let a = create(
            &mut db,
            44,
            &json!({"product": {"identifier": "saas-sec"}, "billCustomer": "Billable"}),
            "api",
        )
        .unwrap();
        let id = id_of(&a).unwrap();
        let refused = patch(
            &mut db,
            44,
            id,
            &json!([{"op": "replace", "path": "/quantity", "value": -3}]),
            "api",
        )
        .unwrap_err();
        assert_eq!(codes(refused), vec![("OutOfRange", "quantity".to_string())]);
        let refused = patch(
            &mut db,
            44,
            id,
            &json!([{"op": "replace", "path": "extPrice", "value": 1}]),
            "api",
        )
        .unwrap_err();
        assert_eq!(codes(refused), vec![("ReadOnly", "extPrice".to_string())]);
        assert!(matches!(
            patch(
                &mut db,
                44,
                id,
                &json!([{"op": "replace", "path": "colour", "value": "red"}]),
                "api",
            ),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            patch(&mut db, 45, id, &json!([]), "api"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn cancelled_additions_stop_billing() {
        let mut db = db_with_product();
        let a = create(
            &mut db,
            44,
            &json!({"product": {"id": 31}, "quantity": 2, "billCustomer": "Billable",
                    "effectiveDate": "2026-01-01T00:00:00Z"}),
            "api",
        )
        .unwrap();
        assert_eq!(billing_lines(&db).len(), 1);
        patch(
            &mut db,
            44,
            id_of(&a).unwrap(),
            &json!([{"op": "replace", "path": "cancelledDate", "value": "2026-02-01T00:00:00Z"}]),
            "api",
        )
        .unwrap();
        assert!(billing_lines(&db).is_empty());
    }
}
