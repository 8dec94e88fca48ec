//! Usage counts reported by the vendor ("client X had 42 users at 10:00"), and their validation.
//!
//! Like events, every problem of a record is collected and named by its JSON path, and a batch
//! is judged record by record. The id makes a report idempotent: the vendor may send the same
//! count again after a lost answer and nothing changes.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::event::FieldError;

/// Longest id, client id and metric name kept (the same bound as event ids).
pub const MAX_KEY_LEN: usize = 200;
/// Longest metric name.
pub const MAX_METRIC_LEN: usize = 64;
/// Largest count accepted; more is a producer's bug, not a customer.
pub const MAX_UNITS: u64 = 1_000_000_000;
/// How far in the future an observation may claim to be (clock skew between the vendor and us).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// One accepted usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUsage {
    pub id: String,
    /// Set when the vendor's token names the partner in the record.
    pub partner: Option<String>,
    pub client: String,
    pub metric: String,
    pub units: u64,
    pub observed_at: DateTime<Utc>,
}

/// Validate one usage record; `path` is its JSON path in the body (`""` for a single record,
/// `usage[3]` in a batch).
pub fn parse_usage(
    value: &Value,
    path: &str,
    now: DateTime<Utc>,
) -> Result<NewUsage, Vec<FieldError>> {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    let Some(obj) = value.as_object() else {
        let name = if path.is_empty() { "body" } else { path };
        return Err(vec![FieldError::new(name, "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut text = |field: &str, required: bool, max: usize| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) if required => {
                errors.push(FieldError::new(at(field), "is required"));
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                errors.push(FieldError::new(at(field), "must not be empty"));
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                errors.push(FieldError::new(
                    at(field),
                    format!("must be at most {max} characters"),
                ));
                None
            }
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                errors.push(FieldError::new(at(field), "must be a string"));
                None
            }
        }
    };
    let id = text("id", true, MAX_KEY_LEN);
    let partner = text("partner", false, MAX_KEY_LEN);
    let client = text("client", true, MAX_KEY_LEN);
    let metric = text("metric", true, MAX_METRIC_LEN);
    let observed_at = text("observed_at", true, 64);

    if let Some(id) = &id
        && id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(FieldError::new(at("id"), "must not contain spaces"));
    }
    if let Some(metric) = &metric
        && (!valid_metric(metric) || metric.len() > MAX_METRIC_LEN)
    {
        errors.push(FieldError::new(
            at("metric"),
            "must be lower-case letters, digits, '_', '.' or '-', starting with a letter \
             (e.g. users, devices)",
        ));
    }
    let units = match obj.get("units") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(at("units"), "is required"));
            None
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) if u <= MAX_UNITS => Some(u),
            Some(_) => {
                errors.push(FieldError::new(
                    at("units"),
                    format!("must be at most {MAX_UNITS}"),
                ));
                None
            }
            None => {
                errors.push(FieldError::new(
                    at("units"),
                    "must be a whole number of 0 or more",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                at("units"),
                "must be a number, not a string or other value",
            ));
            None
        }
    };
    let observed_at = observed_at.and_then(|s| {
        past_time(&s, &at("observed_at"), now)
            .map_err(|e| errors.push(e))
            .ok()
    });
    match (id, client, metric, units, observed_at) {
        (Some(id), Some(client), Some(metric), Some(units), Some(observed_at))
            if errors.is_empty() =>
        {
            Ok(NewUsage {
                id,
                partner,
                client,
                metric,
                units,
                observed_at,
            })
        }
        _ => Err(errors),
    }
}

/// An RFC 3339 time the vendor observed something at: at most [`MAX_FUTURE_SKEW`] ahead of
/// `now`. `field` is the path a refusal names.
pub fn past_time(text: &str, field: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) if t.with_timezone(&Utc) > now + MAX_FUTURE_SKEW => {
            Err(FieldError::new(field, "must not be in the future"))
        }
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) => Err(FieldError::new(
            field,
            "must be an RFC 3339 time such as 2026-12-01T10:00:00Z",
        )),
    }
}

/// A metric name: lower-case letters, digits, `_`, `.` or `-`, starting with a letter.
pub fn valid_metric(metric: &str) -> bool {
    let mut chars = metric.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_good_record() {
        let u = parse_usage(
            &json!({"id":"u-1","client":"client-001","metric":"users","units":42,
                    "observed_at":"2026-12-04T09:00:00+01:00"}),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(u.units, 42);
        assert_eq!(u.metric, "users");
        assert_eq!(u.observed_at.to_rfc3339(), "2026-12-04T08:00:00+00:00");
        assert_eq!(u.partner, None);
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let errors = parse_usage(
            &json!({"id":7,"client":"","metric":"Users!","units":-1,"observed_at":"yesterday"}),
            "usage[2]",
            now(),
        )
        .unwrap_err();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "usage[2].id",
                "usage[2].client",
                "usage[2].metric",
                "usage[2].units",
                "usage[2].observed_at"
            ]
        );
    }

    #[test]
    fn units_must_be_whole_and_bounded() {
        for (units, problem) in [
            (json!(1.5), "whole number"),
            (json!("12"), "must be a number"),
            (json!(MAX_UNITS + 1), "at most"),
        ] {
            let e = parse_usage(
                &json!({"id":"u","client":"c","metric":"devices","units":units,
                        "observed_at":"2026-12-04T09:00:00Z"}),
                "",
                now(),
            )
            .unwrap_err();
            assert_eq!(e[0].path, "units");
            assert!(e[0].problem.contains(problem), "{}", e[0].problem);
        }
    }

    #[test]
    fn the_future_is_refused_beyond_clock_skew() {
        let record =
            |t: &str| json!({"id":"u","client":"c","metric":"users","units":1,"observed_at":t});
        assert!(parse_usage(&record("2026-12-04T10:04:00Z"), "", now()).is_ok());
        let e = parse_usage(&record("2026-12-04T11:00:00Z"), "", now()).unwrap_err();
        assert_eq!(e[0].path, "observed_at");
    }

    proptest! {
        /// Arbitrary JSON never panics the parser, and every refusal names a field.
        #[test]
        fn never_panics(text in ".{0,200}", n in any::<i64>(), f in any::<f64>()) {
            for value in [
                json!(text.clone()),
                json!({"id": text.clone(), "client": n, "metric": f, "units": text.clone()}),
                json!({"id": "x", "client": "c", "metric": "users", "units": n, "observed_at": text.clone()}),
            ] {
                if let Err(errors) = parse_usage(&value, "", now()) {
                    prop_assert!(!errors.is_empty());
                }
            }
        }
    }
}
