//! Writing records: Json.NET-style typing of request bodies, then Autotask's business rules.
//!
//! Autotask deserializes bodies with Json.NET into typed models, so a string holding a number
//! is fine for an integer field but a boolean is not ("Unexpected character encountered while
//! parsing value: t…"), unknown properties are ignored, and read-only properties are ignored
//! on write. Business rules then run on the finished record and fail with HTTP 500 and the
//! messages Autotask uses.

use serde_json::{Map, Value, json};

use super::errors::{ApiError, fail};
use super::model::{Access, DataType, EntityInfo, Field, ids, table_of};
use super::query::{coerce_bool, coerce_i64, get_ci, parse_time};
use super::store::Db;

/// How a record is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Create,
    /// PATCH: only the properties sent change.
    Patch,
    /// PUT: writable properties not sent become null.
    Put,
}

/// Format a time as Autotask returns it (UTC, `Z`).
pub fn time_text(d: chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn unexpected(f: &Field, v: &Value) -> ApiError {
    let text = v.to_string();
    let first = text.chars().next().unwrap_or(' ');
    ApiError::Server(format!(
        "Unexpected character encountered while parsing value: {first}. Path '{}', line 1, position {}.",
        f.name,
        text.len().min(2)
    ))
}

/// Coerce a body value into a field's type, as Json.NET would.
pub fn coerce(f: &Field, v: &Value) -> Result<Value, ApiError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match f.data_type {
        t if t.is_integral() => match v {
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => Err(unexpected(f, v)),
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            _ => coerce_i64(v).map(Value::from).ok_or_else(|| {
                ApiError::Server(format!(
                    "Could not convert string to integer: {}. Path '{}'.",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                    f.name
                ))
            }),
        },
        DataType::Double | DataType::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(t) if t.trim().is_empty() => Ok(Value::Null),
            Value::String(t) => t.trim().parse::<f64>().map(Value::from).map_err(|_| {
                ApiError::Server(format!(
                    "Could not convert string to double: {t}. Path '{}'.",
                    f.name
                ))
            }),
            _ => Err(unexpected(f, v)),
        },
        DataType::Boolean => match v {
            Value::Array(_) | Value::Object(_) => Err(unexpected(f, v)),
            _ => coerce_bool(v).map(Value::Bool).ok_or_else(|| {
                ApiError::Server(format!(
                    "Could not convert string to boolean: {}. Path '{}'.",
                    v.as_str().unwrap_or_default(),
                    f.name
                ))
            }),
        },
        DataType::DateTime => match v {
            Value::String(t) if t.trim().is_empty() => Ok(Value::Null),
            Value::String(t) => parse_time(t).map(|d| json!(time_text(d))).ok_or_else(|| {
                ApiError::Server(format!(
                    "Could not convert string to DateTime: {t}. Path '{}'.",
                    f.name
                ))
            }),
            _ => Err(unexpected(f, v)),
        },
        _ => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(json!(n.to_string())),
            Value::Bool(b) => Ok(json!(if *b { "True" } else { "False" })),
            _ => Err(unexpected(f, v)),
        },
    }
}

/// Apply the writable properties of `body` to `record`.
pub fn apply(
    entity: &EntityInfo,
    body: &Map<String, Value>,
    record: &mut Map<String, Value>,
    mode: Write,
) -> Result<(), ApiError> {
    for f in &entity.fields {
        let writable = match f.access {
            Access::ReadWrite => true,
            Access::CreateOnly => mode == Write::Create,
            Access::ReadOnly => false,
        };
        if !writable || f.name == "id" {
            continue;
        }
        match get_ci(body, f.name) {
            Some(v) => {
                let v = coerce(f, v)?;
                if let (Value::String(t), true) = (&v, f.length > 0)
                    && t.chars().count() > f.length
                {
                    return fail(format!(
                        "{}: The value exceeds the maximum length of {} characters for {}.",
                        f.name, f.length, f.name
                    ));
                }
                record.insert(f.name.to_string(), v);
            }
            None if mode == Write::Put => {
                record.insert(f.name.to_string(), Value::Null);
            }
            None => {}
        }
    }
    if let (Some(defs), Some(sent)) = (&entity.udfs, get_ci(body, "userDefinedFields")) {
        let Some(sent) = sent.as_array() else {
            return fail("userDefinedFields must be an array of {name, value}.");
        };
        let list = record
            .entry("userDefinedFields")
            .or_insert_with(|| Value::Array(vec![]));
        for u in sent {
            let Some(name) = u.get("name").and_then(Value::as_str) else {
                return fail("A user-defined field needs a name.");
            };
            // Autotask ignores UDFs the entity does not define, like other unknown properties.
            let Some(def) = defs.iter().find(|d| d.name.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let value = match u.get("value") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(other) => Value::String(other.to_string()),
            };
            if let (Some(p), Value::String(s)) = (&def.picklist, &value)
                && !p.iter().any(|x| x.value == *s)
            {
                return fail(format!(
                    "Value does not reference an existing entity for {}.",
                    def.name
                ));
            }
            if let Value::Array(items) = list {
                match items.iter_mut().find(|x| {
                    x.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(def.name))
                }) {
                    Some(x) => x["value"] = value,
                    None => items.push(json!({"name": def.name, "value": value})),
                }
            }
        }
    }
    Ok(())
}

/// What the business rules need from the configuration.
pub struct Rules {
    pub category_supplies_due_date: bool,
    pub category_due_hours: i64,
}

/// Check a finished record (after create or update) against Autotask's rules, and fill in
/// the defaults Autotask would (category due date, ticket defaults). `is_create` for creates.
pub fn validate(
    db: &Db,
    rules: &Rules,
    entity: &EntityInfo,
    r: &mut Map<String, Value>,
    is_create: bool,
) -> Result<(), ApiError> {
    if entity.name == "Tickets" && is_create {
        // What the API user's default ticket category supplies.
        let now = chrono::Utc::now();
        if r.get("ticketCategory").is_none_or(Value::is_null) {
            r.insert("ticketCategory".into(), json!(ids::DEFAULT_CATEGORY));
        }
        if r.get("dueDateTime").is_none_or(Value::is_null) && rules.category_supplies_due_date {
            let due = now + chrono::Duration::hours(rules.category_due_hours);
            r.insert("dueDateTime".into(), json!(time_text(due)));
        }
        if r.get("source").is_none_or(Value::is_null) {
            r.insert("source".into(), json!(13)); // "Other", the API's default
        }
        if r.get("ticketType").is_none_or(Value::is_null) {
            r.insert("ticketType".into(), json!(1)); // Service Request
        }
    }
    let get = |r: &Map<String, Value>, k: &str| r.get(k).filter(|v| !v.is_null()).cloned();
    for f in entity.fields.iter().filter(|f| f.required) {
        if get(r, f.name).is_none() {
            return fail(format!("{} is required.; on record number [0].", f.name));
        }
    }
    if entity.name == "Tickets" && get(r, "dueDateTime").is_none() {
        return fail("dueDateTime is required.; on record number [0].");
    }
    for f in &entity.fields {
        let Some(v) = get(r, f.name) else { continue };
        if f.access == Access::ReadOnly {
            continue;
        }
        if f.picklist.is_some() {
            let text = v
                .as_i64()
                .map(|i| i.to_string())
                .or_else(|| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let Some(p) = f.picklist_value(&text) else {
                return fail(format!(
                    "Value does not reference an existing entity for {}.",
                    f.name
                ));
            };
            if !p.active {
                return fail(format!(
                    "The value {text} of {} is inactive and cannot be used.",
                    f.name
                ));
            }
            if let (Some(parent), Some(parent_field)) = (&p.parent, f.picklist_parent) {
                let have = get(r, parent_field)
                    .as_ref()
                    .and_then(coerce_i64)
                    .map(|i| i.to_string());
                if have.as_deref() != Some(parent.as_str()) {
                    return fail(format!(
                        "The {} {text} does not belong to the {parent_field} {}.",
                        f.name,
                        have.unwrap_or_else(|| "(none)".into())
                    ));
                }
            }
        }
        if let Some(table) = f.reference.and_then(table_of)
            && !coerce_i64(&v).is_some_and(|id| db.exists(table, id))
        {
            return fail(format!(
                "Value does not reference an existing entity for {}.",
                f.name
            ));
        }
    }
    match entity.name {
        "Tickets" => {
            let company = get(r, "companyID").as_ref().and_then(coerce_i64);
            if let Some(contact) = get(r, "contactID").as_ref().and_then(coerce_i64) {
                let owner = db
                    .get("Contacts", contact)
                    .and_then(|c| c.get("companyID"))
                    .and_then(coerce_i64);
                let parent = company
                    .and_then(|c| db.get("Companies", c))
                    .and_then(|c| c.get("parentCompanyID"))
                    .and_then(coerce_i64);
                if owner != company && (owner.is_none() || owner != parent) {
                    return fail(
                        "The contactID must belong to the ticket's companyID or its parent company.",
                    );
                }
            }
            if let Some(contract) = get(r, "contractID").as_ref().and_then(coerce_i64) {
                let owner = db
                    .get("Contracts", contract)
                    .and_then(|c| c.get("companyID"))
                    .and_then(coerce_i64);
                if owner != company {
                    return fail("The contractID must belong to the ticket's companyID.");
                }
            }
            if get(r, "assignedResourceID").is_some() != get(r, "assignedResourceRoleID").is_some()
            {
                return fail(
                    "When assigning a Resource, you must assign both a assignedResourceID and assignedResourceRoleID.",
                );
            }
            if let Some(res) = get(r, "assignedResourceID").as_ref().and_then(coerce_i64)
                && db
                    .get("Resources", res)
                    .and_then(|x| x.get("isActive"))
                    .and_then(Value::as_bool)
                    != Some(true)
            {
                return fail("The assignedResourceID must be an active resource.");
            }
        }
        "Contacts" => {
            if let Some(a) = get(r, "isActive").as_ref().and_then(coerce_i64)
                && !(a == 0 || a == 1)
            {
                return fail("isActive must be 0 or 1.");
            }
        }
        "ContractServices" if is_create => super::billing::check_contract_service(db, r)?,
        "ContractServiceAdjustments" => super::billing::check_adjustment(db, r)?,
        "Contracts" => {
            let start = get(r, "startDate");
            let end = get(r, "endDate");
            if let (Some(Value::String(s)), Some(Value::String(e))) = (start, end)
                && parse_time(&s) >= parse_time(&e)
            {
                return fail("The contract's startDate must be before its endDate.");
            }
        }
        _ => {}
    }
    Ok(())
}
