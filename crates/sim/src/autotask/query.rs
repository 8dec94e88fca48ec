//! Autotask's query language: `{"filter": [...], "MaxRecords": n, "IncludeFields": [...]}`.
//!
//! Key and field names are case-insensitive, string comparisons too (SQL Server collation),
//! values are coerced like Json.NET ("5" is 5, "true" is true). A filter is mandatory; an
//! empty one matches nothing. Results are ordered by id and paged by id.

use serde_json::{Map, Value};

use super::data::EntityInfo;

/// Most records a page holds, and most OR conditions a query may have.
pub const MAX_RECORDS: usize = 500;

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    pub filter: Vec<Value>,
    pub max_records: usize,
    pub include: Option<Vec<String>>,
    /// The original JSON, for building page links.
    pub raw: Value,
}

fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A field of a record, whatever the casing asked for.
pub fn field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.as_object().and_then(|m| get_ci(m, name))
}

/// Parse a query body. Errors are the messages Autotask answers with HTTP 500.
pub fn parse(v: &Value, entity: &EntityInfo) -> Result<Query, String> {
    let Value::Object(m) = v else {
        return Err("The query must be a JSON object.".into());
    };
    let filter = match get_ci(m, "filter") {
        None | Some(Value::Null) => return Err("A filter is required for a query.".into()),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("filter must be an array of conditions.".into()),
    };
    let max_records = match get_ci(m, "maxRecords") {
        None | Some(Value::Null) => MAX_RECORDS,
        Some(v) => {
            let n = coerce_i64(v).ok_or("MaxRecords must be a number.")?;
            if !(1..=MAX_RECORDS as i64).contains(&n) {
                return Err(format!("MaxRecords must be between 1 and {MAX_RECORDS}."));
            }
            n as usize
        }
    };
    let include = match get_ci(m, "includeFields") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut names = Vec::new();
            for f in a {
                let name = f.as_str().ok_or("IncludeFields must be field names.")?;
                let known = entity.field(name).ok_or_else(|| {
                    format!("Unable to find {name} in the {} Entity.", entity.name)
                })?;
                names.push(known.name.to_string());
            }
            if names.is_empty() { None } else { Some(names) }
        }
        Some(_) => return Err("IncludeFields must be an array.".into()),
    };
    let mut ors = 0;
    for c in &filter {
        check(c, entity, &mut ors)?;
    }
    if ors > MAX_RECORDS {
        return Err("Queries are limited to 500 or fewer 'OR' conditions.".into());
    }
    Ok(Query {
        filter,
        max_records,
        include,
        raw: v.clone(),
    })
}

fn check(c: &Value, entity: &EntityInfo, ors: &mut usize) -> Result<(), String> {
    let Value::Object(m) = c else {
        return Err("A filter condition must be an object.".into());
    };
    let op = get_ci(m, "op")
        .and_then(Value::as_str)
        .ok_or("A filter condition needs an op.")?;
    let op = op.to_ascii_lowercase();
    match op.as_str() {
        "and" | "or" => {
            let items = get_ci(m, "items")
                .and_then(Value::as_array)
                .ok_or("and/or conditions need items.")?;
            if op == "or" {
                *ors += items.len();
            }
            items.iter().try_for_each(|i| check(i, entity, ors))
        }
        "eq" | "noteq" | "gt" | "gte" | "lt" | "lte" | "beginswith" | "endswith" | "contains"
        | "exist" | "notexist" | "in" | "notin" => {
            let udf = get_ci(m, "udf").is_some_and(|u| coerce_bool(u) == Some(true));
            let name = get_ci(m, "field")
                .and_then(Value::as_str)
                .ok_or("A filter condition needs a field.")?;
            if !udf {
                let f = entity.field(name).ok_or_else(|| {
                    format!("Unable to find {name} in the {} Entity.", entity.name)
                })?;
                if !f.queryable {
                    return Err(format!(
                        "The {} field of the {} entity is not queryable.",
                        f.name, entity.name
                    ));
                }
            }
            if matches!(op.as_str(), "in" | "notin")
                && !get_ci(m, "value").is_some_and(Value::is_array)
            {
                return Err(format!("The {op} operator needs an array value."));
            }
            Ok(())
        }
        other => Err(format!("'{other}' is not a valid filter operator.")),
    }
}

pub fn coerce_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compare a record's value with a filter value: numbers as numbers, booleans as booleans,
/// everything else as case-insensitive text.
fn compare(have: &Value, want: &Value) -> Option<std::cmp::Ordering> {
    match have {
        Value::Null => None,
        Value::Bool(b) => coerce_bool(want).map(|w| b.cmp(&w)),
        Value::Number(_) => Some(as_f64(have)?.partial_cmp(&as_f64(want)?)?),
        _ => Some(as_text(have)?.cmp(&as_text(want)?)),
    }
}

/// Does `item` satisfy condition `c`? (The query was checked by [`parse`].)
pub fn matches(item: &Value, c: &Value) -> bool {
    let Value::Object(m) = c else { return false };
    let op = get_ci(m, "op")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let items = || {
        get_ci(m, "items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if op == "and" {
        return items().iter().all(|i| matches(item, i));
    }
    if op == "or" {
        return items().iter().any(|i| matches(item, i));
    }
    let name = get_ci(m, "field").and_then(Value::as_str).unwrap_or("");
    let udf = get_ci(m, "udf").is_some_and(|u| coerce_bool(u) == Some(true));
    let have = if udf {
        field(item, "userDefinedFields")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter().find(|u| {
                    field(u, "name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .and_then(|u| field(u, "value"))
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        field(item, name).cloned().unwrap_or(Value::Null)
    };
    let want = get_ci(m, "value").cloned().unwrap_or(Value::Null);
    use std::cmp::Ordering::*;
    match op.as_str() {
        "exist" => !have.is_null() && have != Value::String(String::new()),
        "notexist" => have.is_null() || have == Value::String(String::new()),
        "eq" => compare(&have, &want) == Some(Equal),
        "noteq" => compare(&have, &want) != Some(Equal),
        "gt" => compare(&have, &want) == Some(Greater),
        "gte" => matches!(compare(&have, &want), Some(Greater | Equal)),
        "lt" => compare(&have, &want) == Some(Less),
        "lte" => matches!(compare(&have, &want), Some(Less | Equal)),
        "beginswith" | "endswith" | "contains" => {
            let (Some(h), Some(w)) = (as_text(&have), as_text(&want)) else {
                return false;
            };
            match op.as_str() {
                "beginswith" => h.starts_with(&w),
                "endswith" => h.ends_with(&w),
                _ => h.contains(&w),
            }
        }
        "in" | "notin" => {
            let found = want
                .as_array()
                .is_some_and(|vals| vals.iter().any(|v| compare(&have, v) == Some(Equal)));
            (op == "in") == found
        }
        _ => false,
    }
}

/// Keep only `id`, the included fields and `userDefinedFields`.
pub fn project(item: &Value, include: &Option<Vec<String>>) -> Value {
    let Some(fields) = include else {
        return item.clone();
    };
    let mut out = Map::new();
    if let Some(id) = field(item, "id") {
        out.insert("id".into(), id.clone());
    }
    for f in fields {
        if let Some((k, v)) = item
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(f)))
        {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert(
        "userDefinedFields".into(),
        field(item, "userDefinedFields")
            .cloned()
            .unwrap_or(Value::Array(vec![])),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t() -> Value {
        json!({"id": 7, "status": 5, "title": "Too Many Downloads", "isActive": true, "externalID": null})
    }

    #[test]
    fn operators() {
        let yes = |c: Value| assert!(matches(&t(), &c), "{c}");
        let no = |c: Value| assert!(!matches(&t(), &c), "{c}");
        yes(json!({"op": "eq", "field": "STATUS", "value": "5"}));
        no(json!({"op": "noteq", "field": "status", "value": 5}));
        yes(json!({"op": "gt", "field": "id", "value": 6}));
        no(json!({"op": "lt", "field": "id", "value": 7}));
        yes(json!({"op": "lte", "field": "id", "value": 7}));
        yes(json!({"op": "beginsWith", "field": "title", "value": "too many"}));
        yes(json!({"op": "endsWith", "field": "title", "value": "DOWNLOADS"}));
        yes(json!({"op": "contains", "field": "title", "value": "many"}));
        yes(json!({"op": "notExist", "field": "externalID"}));
        no(json!({"op": "exist", "field": "externalID"}));
        yes(json!({"op": "in", "field": "id", "value": [1, "7"]}));
        no(json!({"op": "notIn", "field": "id", "value": [7]}));
        yes(json!({"op": "eq", "field": "isActive", "value": "true"}));
        yes(
            json!({"op": "or", "items": [{"op": "eq", "field": "id", "value": 1}, {"op": "eq", "field": "id", "value": 7}]}),
        );
        no(
            json!({"op": "and", "items": [{"op": "eq", "field": "id", "value": 1}, {"op": "eq", "field": "id", "value": 7}]}),
        );
    }
}
