//! The query engine: `{"filter": [...], "MaxRecords": n, "IncludeFields": [...]}`.
//!
//! A query is parsed once into a condition tree whose field names are resolved against the
//! entity and whose values are coerced to the field's type (as Json.NET and SQL Server would:
//! `"5"` is 5, `"true"` is true, text compares case-insensitively), so that matching a record
//! is cheap. Parse errors are Autotask's messages (HTTP 500). Key and field names are
//! case-insensitive. A filter is mandatory; an empty one matches nothing. A null value never
//! satisfies a comparison (SQL semantics): use `exist`/`notExist` for nulls.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::errors::{ApiError, fail};
use super::model::{DataType, EntityInfo};

/// Most records a page holds, and most OR conditions a query may have.
pub const MAX_RECORDS: usize = 500;

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    pub filter: Vec<Cond>,
    pub max_records: usize,
    /// Canonical names of the fields to return (`None`: all).
    pub include: Option<Vec<&'static str>>,
    /// The query as sent, for page links.
    pub raw: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
    BeginsWith,
    EndsWith,
    Contains,
    Exist,
    NotExist,
    In,
    NotIn,
}

/// What a condition reads: a field, or a user-defined field by name.
#[derive(Debug, Clone)]
pub enum Target {
    Field(&'static str),
    Udf(String),
}

/// A comparable form of a value, by field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Num(f64),
    Bool(bool),
    Text(String),
    /// Milliseconds since the epoch.
    Time(i64),
}

impl Key {
    fn cmp(&self, other: &Key) -> Option<Ordering> {
        match (self, other) {
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b),
            (Key::Bool(a), Key::Bool(b)) => Some(a.cmp(b)),
            (Key::Text(a), Key::Text(b)) => Some(a.cmp(b)),
            (Key::Time(a), Key::Time(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Leaf {
        op: Op,
        target: Target,
        data_type: DataType,
        /// The wanted values (several for `in`/`notIn`).
        want: Vec<Key>,
    },
}

pub fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A field of a record, whatever the casing asked for.
pub fn field<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    item.as_object().and_then(|m| get_ci(m, name))
}

/// An integer as Json.NET reads one: a number, or a string holding one.
pub fn coerce_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean as Json.NET reads one: `true`, `"true"`, `"True"`, 1, `"1"`.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") || s.trim() == "1" => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") || s.trim() == "0" => {
            Some(false)
        }
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// A date and time as Autotask accepts one: ISO 8601, UTC unless an offset is given.
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(d.and_utc());
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(d.and_utc());
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// The comparable key of a value for a field type; `None` for null or unconvertible values.
pub fn key(v: &Value, t: DataType) -> Option<Key> {
    if v.is_null() {
        return None;
    }
    match t {
        DataType::Integer
        | DataType::Long
        | DataType::Short
        | DataType::Double
        | DataType::Decimal => match v {
            Value::Number(n) => n.as_f64().map(Key::Num),
            Value::String(s) => s.trim().parse().ok().map(Key::Num),
            Value::Bool(b) => Some(Key::Num(if *b { 1.0 } else { 0.0 })),
            _ => None,
        },
        DataType::Boolean => coerce_bool(v).map(Key::Bool),
        DataType::DateTime => v
            .as_str()
            .and_then(parse_time)
            .map(|d| Key::Time(d.timestamp_millis())),
        DataType::String => match v {
            Value::String(s) => Some(Key::Text(s.to_lowercase())),
            Value::Number(n) => Some(Key::Text(n.to_string())),
            Value::Bool(b) => Some(Key::Text(if *b { "true".into() } else { "false".into() })),
            _ => None,
        },
    }
}

fn text_of(k: &Key) -> String {
    match k {
        Key::Num(n) => n.to_string(),
        Key::Bool(b) => b.to_string(),
        Key::Text(t) => t.clone(),
        Key::Time(t) => t.to_string(),
    }
}

/// Parse a query body. Errors are the messages Autotask answers with HTTP 500.
pub fn parse(v: &Value, entity: &EntityInfo) -> Result<Query, ApiError> {
    let Value::Object(m) = v else {
        return fail("The query must be a JSON object.");
    };
    let filter = match get_ci(m, "filter") {
        None | Some(Value::Null) => {
            return fail(
                "A filter is required for a query. (Object reference not set to an instance of an object.)",
            );
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return fail(
                "Cannot deserialize the current JSON object into type 'List`1[Filter]'. Path 'filter'.",
            );
        }
    };
    let max_records = match get_ci(m, "maxRecords") {
        None | Some(Value::Null) => MAX_RECORDS,
        Some(v) => {
            let Some(n) = coerce_i64(v) else {
                return fail("Could not convert MaxRecords to an integer. Path 'MaxRecords'.");
            };
            if !(1..=MAX_RECORDS as i64).contains(&n) {
                return fail(format!(
                    "MaxRecords must be between 1 and {MAX_RECORDS}; {n} is not allowed."
                ));
            }
            n as usize
        }
    };
    let include = match get_ci(m, "includeFields") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) => {
            let mut names = Vec::new();
            for f in a {
                let Some(name) = f.as_str() else {
                    return fail("IncludeFields must be an array of field names.");
                };
                let Some(known) = entity.field(name) else {
                    return fail(unknown_field(name, entity));
                };
                names.push(known.name);
            }
            Some(names)
        }
        Some(_) => return fail("IncludeFields must be an array of field names."),
    };
    let mut counts = Counts::default();
    let filter = filter
        .iter()
        .map(|c| compile(c, entity, &mut counts))
        .collect::<Result<Vec<_>, _>>()?;
    if counts.ors > MAX_RECORDS {
        return fail("Queries are limited to 500 or fewer 'OR' conditions.");
    }
    if counts.udfs > 1 {
        return fail("Only one user-defined field may be used in a query.");
    }
    Ok(Query {
        filter,
        max_records,
        include,
        raw: v.clone(),
    })
}

/// Autotask's message for a field the entity does not have.
pub fn unknown_field(name: &str, entity: &EntityInfo) -> String {
    format!("Unable to find {name} in the {} Entity.", entity.singular)
}

#[derive(Default)]
struct Counts {
    ors: usize,
    udfs: usize,
}

fn compile(c: &Value, entity: &EntityInfo, counts: &mut Counts) -> Result<Cond, ApiError> {
    let Value::Object(m) = c else {
        return fail("A filter condition must be a JSON object.");
    };
    let Some(op_text) = get_ci(m, "op").and_then(Value::as_str) else {
        return fail("A filter condition requires an 'op'.");
    };
    let op = match op_text.to_ascii_lowercase().as_str() {
        "and" | "or" => {
            let Some(items) = get_ci(m, "items").and_then(Value::as_array) else {
                return fail(format!("The '{op_text}' condition requires 'items'."));
            };
            if op_text.eq_ignore_ascii_case("or") {
                counts.ors += items.len();
            }
            let inner = items
                .iter()
                .map(|i| compile(i, entity, counts))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if op_text.eq_ignore_ascii_case("or") {
                Cond::Or(inner)
            } else {
                Cond::And(inner)
            });
        }
        "eq" => Op::Eq,
        "noteq" => Op::NotEq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "beginswith" => Op::BeginsWith,
        "endswith" => Op::EndsWith,
        "contains" => Op::Contains,
        "exist" => Op::Exist,
        "notexist" => Op::NotExist,
        "in" => Op::In,
        "notin" => Op::NotIn,
        _ => {
            return fail(format!(
                "The operator '{op_text}' is not a valid filter operator."
            ));
        }
    };
    let Some(name) = get_ci(m, "field").and_then(Value::as_str) else {
        return fail("A filter condition requires a 'field'.");
    };
    let udf = get_ci(m, "udf").is_some_and(|u| coerce_bool(u) == Some(true));
    let (target, data_type) = if udf {
        counts.udfs += 1;
        let Some(u) = entity
            .udfs
            .iter()
            .flatten()
            .find(|u| u.name.eq_ignore_ascii_case(name))
        else {
            return fail(unknown_field(name, entity));
        };
        (Target::Udf(u.name.to_string()), u.data_type)
    } else {
        let Some(f) = entity.field(name) else {
            return fail(unknown_field(name, entity));
        };
        if !f.queryable {
            return fail(format!(
                "The {} field of the {} entity is not queryable.",
                f.name, entity.singular
            ));
        }
        (Target::Field(f.name), f.data_type)
    };
    let raw = get_ci(m, "value").cloned().unwrap_or(Value::Null);
    let values: Vec<Value> = match (op, raw) {
        (Op::Exist | Op::NotExist, _) => Vec::new(),
        (Op::In | Op::NotIn, Value::Array(a)) => a,
        (Op::In | Op::NotIn, _) => {
            return fail(format!(
                "The '{op_text}' operator requires an array value for {name}."
            ));
        }
        (_, Value::Null) => {
            return fail(format!(
                "The '{op_text}' condition on {name} requires a value."
            ));
        }
        (_, v) => vec![v],
    };
    let text_op = matches!(op, Op::BeginsWith | Op::EndsWith | Op::Contains);
    let want = values
        .iter()
        .map(|v| {
            let k = if text_op {
                key(v, DataType::String)
            } else {
                key(v, data_type)
            };
            k.ok_or_else(|| {
                ApiError::Server(format!(
                    "Error converting value {v} to type '{}'. Path 'filter.value' ({name}).",
                    data_type.name()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cond::Leaf {
        op,
        target,
        data_type,
        want,
    })
}

fn udf_value<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    field(item, "userDefinedFields")?
        .as_array()?
        .iter()
        .find(|u| {
            field(u, "name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|u| field(u, "value"))
}

impl Cond {
    /// Does `item` satisfy this condition?
    pub fn matches(&self, item: &Value) -> bool {
        match self {
            Cond::And(c) => c.iter().all(|c| c.matches(item)),
            Cond::Or(c) => c.iter().any(|c| c.matches(item)),
            Cond::Leaf {
                op,
                target,
                data_type,
                want,
            } => {
                let have = match target {
                    Target::Field(n) => item.get(*n).or_else(|| field(item, n)),
                    Target::Udf(n) => udf_value(item, n),
                }
                .filter(|v| !v.is_null() && v.as_str() != Some(""));
                match op {
                    Op::Exist => return have.is_some(),
                    Op::NotExist => return have.is_none(),
                    _ => {}
                }
                let Some(have) = have else { return false };
                if matches!(op, Op::BeginsWith | Op::EndsWith | Op::Contains) {
                    let Some(h) = key(have, DataType::String).map(|k| text_of(&k)) else {
                        return false;
                    };
                    let w = want.first().map(text_of).unwrap_or_default();
                    return match op {
                        Op::BeginsWith => h.starts_with(&w),
                        Op::EndsWith => h.ends_with(&w),
                        _ => h.contains(&w),
                    };
                }
                let Some(h) = key(have, *data_type) else {
                    return false;
                };
                let ord = || want.first().and_then(|w| h.cmp(w));
                use Ordering::*;
                match op {
                    Op::Eq => ord() == Some(Equal),
                    Op::NotEq => ord().is_some_and(|o| o != Equal),
                    Op::Gt => ord() == Some(Greater),
                    Op::Gte => matches!(ord(), Some(Greater | Equal)),
                    Op::Lt => ord() == Some(Less),
                    Op::Lte => matches!(ord(), Some(Less | Equal)),
                    Op::In => want.iter().any(|w| h.cmp(w) == Some(Equal)),
                    Op::NotIn => !want.iter().any(|w| h.cmp(w) == Some(Equal)),
                    _ => false,
                }
            }
        }
    }
}

impl Query {
    /// Does `item` satisfy every top-level condition? (An empty filter matches nothing.)
    pub fn matches(&self, item: &Value) -> bool {
        !self.filter.is_empty() && self.filter.iter().all(|c| c.matches(item))
    }

    /// Keep only `id`, the included fields and (for entities with UDFs) `userDefinedFields`.
    pub fn project(&self, item: &Value, entity: &EntityInfo) -> Value {
        let Some(fields) = &self.include else {
            return item.clone();
        };
        let mut out = Map::new();
        out.insert("id".into(), item.get("id").cloned().unwrap_or(Value::Null));
        for f in fields {
            out.insert(
                (*f).to_string(),
                item.get(*f).cloned().unwrap_or(Value::Null),
            );
        }
        if entity.has_udfs() {
            out.insert(
                "userDefinedFields".into(),
                item.get("userDefinedFields")
                    .cloned()
                    .unwrap_or(Value::Array(vec![])),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::autotask::model::entities;

    fn tickets() -> EntityInfo {
        entities()
            .into_iter()
            .find(|e| e.name == "Tickets")
            .expect("Tickets")
    }

    fn t() -> Value {
        json!({"id": 7, "status": 5, "title": "Too Many Downloads", "externalID": null,
               "createDate": "2026-03-01T10:00:00Z", "estimatedHours": 1.5,
               "userDefinedFields": [{"name": "Alert Source", "value": "EDR"}]})
    }

    fn check(c: Value) -> bool {
        let q = parse(&json!({ "filter": [c] }), &tickets()).expect("valid query");
        q.matches(&t())
    }

    #[test]
    fn operators() {
        let yes = |c: Value| assert!(check(c.clone()), "{c}");
        let no = |c: Value| assert!(!check(c.clone()), "{c}");
        yes(json!({"op": "eq", "field": "STATUS", "value": "5"}));
        no(json!({"op": "noteq", "field": "status", "value": 5}));
        yes(json!({"op": "noteq", "field": "status", "value": 1}));
        no(json!({"op": "noteq", "field": "externalID", "value": "x"}));
        yes(json!({"op": "gt", "field": "id", "value": 6}));
        no(json!({"op": "lt", "field": "id", "value": 7}));
        yes(json!({"op": "lte", "field": "id", "value": 7}));
        yes(json!({"op": "gte", "field": "estimatedHours", "value": "1.5"}));
        yes(json!({"op": "beginsWith", "field": "title", "value": "too many"}));
        yes(json!({"op": "endsWith", "field": "title", "value": "DOWNLOADS"}));
        yes(json!({"op": "contains", "field": "title", "value": "many"}));
        yes(json!({"op": "notExist", "field": "externalID"}));
        no(json!({"op": "exist", "field": "externalID"}));
        yes(json!({"op": "in", "field": "id", "value": [1, "7"]}));
        no(json!({"op": "notIn", "field": "id", "value": [7]}));
        yes(json!({"op": "gt", "field": "createDate", "value": "2026-02-28T23:00:00.000000Z"}));
        no(json!({"op": "gt", "field": "createDate", "value": "2026-03-01T11:00:00+01:00"}));
        yes(json!({"op": "eq", "field": "alert source", "udf": true, "value": "edr"}));
        yes(
            json!({"op": "or", "items": [{"op": "eq", "field": "id", "value": 1}, {"op": "eq", "field": "id", "value": 7}]}),
        );
        no(
            json!({"op": "and", "items": [{"op": "eq", "field": "id", "value": 1}, {"op": "eq", "field": "id", "value": 7}]}),
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(
            &json!({"filter": [{"op": "eq", "field": "shoeSize", "value": 1}]}),
            &tickets(),
        );
        assert!(
            matches!(e, Err(ApiError::Server(m)) if m == "Unable to find shoeSize in the Ticket Entity.")
        );
        assert!(parse(&json!({"MaxRecords": 5}), &tickets()).is_err());
        assert!(parse(&json!({"filter": [], "MaxRecords": 501}), &tickets()).is_err());
        assert!(
            parse(
                &json!({"filter": [{"op": "eq", "field": "id", "value": "abc"}]}),
                &tickets()
            )
            .is_err()
        );
        let many: Vec<Value> = (0..501)
            .map(|i| json!({"op": "eq", "field": "id", "value": i}))
            .collect();
        assert!(
            parse(
                &json!({"filter": [{"op": "or", "items": many}]}),
                &tickets()
            )
            .is_err()
        );
    }
}
