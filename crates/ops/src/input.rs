//! Reading a typed request from JSON, naming the field of each problem by its path, and the
//! checks every operation shares (ids, names, fields a merge patch may not remove).

use psabridge_core::event::FieldError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::OpsError;

/// Now, in milliseconds since the epoch (UTC), as the store keeps times.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A typed request from its JSON, the first problem named by its path (`refire.mode`), or
/// `(body)` when the whole body is of the wrong shape.
pub fn from_json<T: DeserializeOwned>(mut value: Value) -> Result<T, OpsError> {
    whole_numbers_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "(body)".to_string(),
            p => p,
        };
        OpsError::field(path, e.inner().to_string())
    })
}

/// JSON has one kind of number: `3.0` is the integer 3 (JSON Schema's `integer` admits it,
/// and generators and some languages write whole numbers so), so a whole number written with
/// a fraction is read as that integer. Fractions and numbers past 64 bits stay as they are
/// and are refused where an integer is expected.
fn whole_numbers_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(members) => members.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// A merge patch (RFC 7396) removes a field it sets to `null`; these fields cannot be removed,
/// so `null` for any of them is refused naming each (leaving a field out keeps it).
pub fn refuse_removal(patch: &Value, fields: &[&str]) -> Result<(), OpsError> {
    let Value::Object(m) = patch else {
        return Ok(());
    };
    OpsError::check(
        fields
            .iter()
            .filter(|f| m.get(**f).is_some_and(Value::is_null))
            .map(|f| FieldError::new(*f, "cannot be removed (null); leave it out to keep it"))
            .collect(),
    )
}

/// An id we let callers choose (partners, clients, contracts): 1 to 100 letters, digits,
/// `.`, `_`, `:` or `-`, so it is safe in a path and a log line.
pub fn valid_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

/// A trimmed name of 1 to `max` characters, or an error naming `path`.
pub fn name(raw: &str, max: usize, path: &str, errors: &mut Vec<FieldError>) -> String {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > max {
        errors.push(FieldError::new(
            path,
            format!("must be 1 to {max} characters"),
        ));
    }
    name.to_string()
}

/// Tell an absent field (outer `None`) from `null` (`Some(None)`), for merge patches.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        mode: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        refire: Option<Inner>,
    }

    #[test]
    fn a_whole_number_with_a_fraction_is_an_integer() {
        #[derive(Debug, Deserialize)]
        struct Ids {
            ids: Vec<i64>,
            day: u8,
        }
        let v = from_json::<Ids>(json!({"ids": [3.0, 7], "day": 24.0})).unwrap();
        assert_eq!((v.ids, v.day), (vec![3, 7], 24));
        assert!(from_json::<Ids>(json!({"ids": [2.5], "day": 1})).is_err());
        assert!(from_json::<Ids>(json!({"ids": [1e30], "day": 1})).is_err());
    }

    #[test]
    fn a_bad_field_is_named_by_its_path() {
        let e = from_json::<Outer>(json!({"name": "x", "refire": {"mode": 3}})).unwrap_err();
        assert_eq!(e.field_errors()[0].path, "refire.mode");
        let e = from_json::<Outer>(json!({"name": "x", "colour": 1})).unwrap_err();
        assert!(e.field_errors()[0].problem.contains("colour"));
        let e = from_json::<Outer>(json!("just text")).unwrap_err();
        assert_eq!(e.field_errors()[0].path, "(body)");
    }

    #[test]
    fn null_for_a_kept_field_is_refused_by_name() {
        let e =
            refuse_removal(&json!({"name": null, "x": null}), &["name", "enabled"]).unwrap_err();
        assert_eq!(e.field_errors().len(), 1);
        assert_eq!(e.field_errors()[0].path, "name");
        assert!(refuse_removal(&json!({"name": "n"}), &["name"]).is_ok());
    }

    #[test]
    fn ids_are_short_and_plain() {
        assert!(valid_id("acme-01:eu.x_y"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(101)));
    }
}
