//! The vendor's event, and the validation that turns untrusted JSON into it.
//!
//! Validation collects *every* problem of an event, each named by its JSON path
//! (`events[3].user.email`), so that a producer can fix a batch in one round trip. Nothing here
//! rejects a whole batch: the caller decides per event.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::catalog::Catalog;

/// Longest producer id we keep; longer ids are refused rather than truncated, since truncating
/// an idempotency key could make two events one.
pub const MAX_ID_LEN: usize = 200;
/// Bound on free text so that one event cannot blow up a ticket or a row.
pub const MAX_TEXT_LEN: usize = 32_000;

/// Whether an event raises an alert or says that an earlier one is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Trigger,
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "trigger" => Some(Action::Trigger),
            "resolve" => Some(Action::Resolve),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The person an alert is about. The email (lower-cased) finds the PSA contact and keys grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventUser {
    pub email: String,
    pub name: Option<String>,
}

/// One event as accepted from a producer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The producer's unique id: the idempotency key, unique per partner.
    pub id: String,
    /// The partner named in the event; `None` when the token implies it.
    pub partner: Option<String>,
    /// The client's id in the producer.
    pub client: String,
    /// A key of the event catalog.
    pub event_type: String,
    pub action: Action,
    pub occurred_at: Option<DateTime<Utc>>,
    pub severity: Severity,
    pub user: Option<EventUser>,
    pub title: Option<String>,
    pub details: Option<String>,
    pub data: Map<String, Value>,
}

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `events[2].user.email`.
    pub path: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Most bytes of one event's `data`, as JSON (256 KiB): an event is an alert, not a file.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// A value as an error quotes it: whole when short, else its first 64 characters and its
/// size, so that a 1 MB value never makes a 1 MB error.
pub fn quoted(value: &str) -> String {
    const KEEP: usize = 64;
    if value.chars().count() <= KEEP {
        format!("'{value}'")
    } else {
        let head: String = value.chars().take(KEEP).collect();
        format!("'{head}…({} bytes)'", value.len())
    }
}

/// A field name as an error path gives it (names can be as long as the body).
fn field_name(name: &str) -> String {
    if name.chars().count() <= 64 {
        name.to_string()
    } else {
        let head: String = name.chars().take(64).collect();
        format!("{head}…({} bytes)", name.len())
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Collects field errors while reading one JSON object.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, field: &str, problem: impl Into<String>) {
        self.errors
            .push(FieldError::new(join(self.prefix, field), problem));
    }

    /// A string field; `required` decides whether absence (or null) is an error.
    fn string(&mut self, field: &str, required: bool, max: usize) -> Option<String> {
        match self.obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    if required {
                        self.fail(field, "must not be empty");
                    }
                    None
                } else if s.chars().count() > max {
                    self.fail(field, format!("must be at most {max} characters"));
                    None
                } else {
                    Some(trimmed.to_string())
                }
            }
            Some(other) => {
                self.fail(field, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Is `id` usable as a producer id? Printable, no whitespace.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// A pragmatic email check: one `@`, a dot in the domain, no spaces; the PSA decides the rest.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Validate one event given as our own JSON shape. `path` is the event's JSON path in the body.
pub fn parse_event(
    value: &Value,
    path: &str,
    catalog: &Catalog,
) -> Result<NewEvent, Vec<FieldError>> {
    let Value::Object(obj) = value else {
        return Err(vec![FieldError::new(
            if path.is_empty() { "(body)" } else { path },
            format!("must be an event object, not {}", kind(value)),
        )]);
    };
    let mut r = Reader {
        obj,
        prefix: path,
        errors: Vec::new(),
    };

    let id = r.string("id", true, MAX_ID_LEN);
    if let Some(id) = &id
        && !valid_id(id)
    {
        r.fail("id", "must not contain spaces or control characters");
    }
    let partner = r.string("partner", false, MAX_ID_LEN);
    let client = r.string("client", true, MAX_ID_LEN);
    let event_type = r.string("type", true, MAX_ID_LEN);
    if let Some(t) = &event_type
        && catalog.get(t).is_none()
    {
        r.fail(
            "type",
            format!(
                "{} is not an event type of the catalog (GET /api/v1/event-types lists them)",
                quoted(t)
            ),
        );
    }

    let action = match r.string("action", false, 20) {
        None => Action::Trigger,
        Some(a) => Action::parse(&a).unwrap_or_else(|| {
            r.fail(
                "action",
                format!("must be 'trigger' or 'resolve', not {}", quoted(&a)),
            );
            Action::Trigger
        }),
    };

    let occurred_at =
        r.string("occurred_at", false, 64)
            .and_then(|s| match DateTime::parse_from_rfc3339(&s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    r.fail(
                        "occurred_at",
                        format!("must be an RFC 3339 date-time, not {}", quoted(&s)),
                    );
                    None
                }
            });

    let default_severity = event_type
        .as_deref()
        .and_then(|t| catalog.get(t))
        .map(|t| t.default_severity)
        .unwrap_or(Severity::Medium);
    let severity = match r.string("severity", false, 20) {
        None => default_severity,
        Some(s) => Severity::parse(&s).unwrap_or_else(|| {
            r.fail(
                "severity",
                format!(
                    "must be one of critical, high, medium, low, info; not {}",
                    quoted(&s)
                ),
            );
            default_severity
        }),
    };

    let user = match obj.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::Object(u)) => {
            let upath = join(path, "user");
            let mut ur = Reader {
                obj: u,
                prefix: &upath,
                errors: Vec::new(),
            };
            let email = ur.string("email", true, 254);
            let name = ur.string("name", false, 200);
            let user = match email {
                Some(e) if valid_email(&e) => Some(EventUser {
                    email: e.to_lowercase(),
                    name,
                }),
                Some(e) => {
                    ur.fail("email", format!("{} is not an email address", quoted(&e)));
                    None
                }
                None => None,
            };
            r.errors.append(&mut ur.errors);
            user
        }
        Some(other) => {
            r.fail(
                "user",
                format!("must be an object with email and name, not {}", kind(other)),
            );
            None
        }
    };

    let title = r.string("title", false, 1000);
    let details = r.string("details", false, MAX_TEXT_LEN);
    let data = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_DATA_BYTES {
                r.fail(
                    "data",
                    format!(
                        "is {size} bytes of JSON; at most {MAX_DATA_BYTES} (256 KiB) per event"
                    ),
                );
                Map::new()
            } else {
                m.clone()
            }
        }
        Some(other) => {
            r.fail("data", format!("must be an object, not {}", kind(other)));
            Map::new()
        }
    };

    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            r.fail(
                &field_name(key),
                "is not a field of an event (put free-form values under `data`)",
            );
        }
    }

    if r.errors.is_empty() {
        Ok(NewEvent {
            id: id.unwrap_or_default(),
            partner,
            client: client.unwrap_or_default(),
            event_type: event_type.unwrap_or_default(),
            action,
            occurred_at,
            severity,
            user,
            title,
            details,
            data,
        })
    } else {
        Err(r.errors)
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "id",
    "partner",
    "client",
    "type",
    "action",
    "occurred_at",
    "severity",
    "user",
    "title",
    "details",
    "data",
];

/// Validate a CloudEvents 1.0 structured-mode envelope and map it onto our event:
/// `id` → id, `type` → type, `time` → occurred_at, `subject` → client, and `data` carries the
/// other fields (`action`, `severity`, `user`, `title`, `details`, `partner`, `client`,
/// `data`). The `partner` extension attribute names the partner too.
pub fn parse_cloudevent(
    value: &Value,
    path: &str,
    catalog: &Catalog,
) -> Result<NewEvent, Vec<FieldError>> {
    let Value::Object(obj) = value else {
        return Err(vec![FieldError::new(
            if path.is_empty() { "(body)" } else { path },
            format!("must be a CloudEvents object, not {}", kind(value)),
        )]);
    };
    let mut errors = Vec::new();
    match obj.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => errors.push(FieldError::new(
            join(path, "specversion"),
            format!("must be \"1.0\", not {}", quoted(&other.to_string())),
        )),
        None => errors.push(FieldError::new(join(path, "specversion"), "is required")),
    }
    if !matches!(obj.get("source"), Some(Value::String(s)) if !s.is_empty()) {
        errors.push(FieldError::new(
            join(path, "source"),
            "is required (a non-empty string)",
        ));
    }
    if let Some(ct) = obj.get("datacontenttype")
        && !matches!(ct, Value::String(s) if s.starts_with("application/json"))
    {
        errors.push(FieldError::new(
            join(path, "datacontenttype"),
            "must be application/json when present",
        ));
    }

    // Build our own shape, then validate it with the one validator.
    let mut ours = Map::new();
    let data = match obj.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            errors.push(FieldError::new(
                join(path, "data"),
                format!("must be an object, not {}", kind(other)),
            ));
            Map::new()
        }
    };
    let mut rest = Map::new();
    for (k, v) in data {
        match k.as_str() {
            "action" | "severity" | "user" | "title" | "details" | "partner" | "client" => {
                ours.insert(k, v);
            }
            "data" => {
                if let Value::Object(inner) = v {
                    rest.extend(inner);
                } else {
                    rest.insert(k, v);
                }
            }
            _ => {
                rest.insert(k, v);
            }
        }
    }
    for (from, to) in [
        ("id", "id"),
        ("type", "type"),
        ("time", "occurred_at"),
        ("subject", "client"),
        ("partner", "partner"),
    ] {
        if let Some(v) = obj.get(from) {
            ours.insert(to.to_string(), v.clone());
        }
    }
    if !rest.is_empty() {
        ours.insert("data".into(), Value::Object(rest));
    }
    match parse_event(&Value::Object(ours), path, catalog) {
        Ok(e) if errors.is_empty() => Ok(e),
        Ok(_) => Err(errors),
        Err(mut more) => {
            // Name the CloudEvents attribute the producer actually wrote.
            for e in &mut more {
                e.path = rename_path(&e.path, path);
            }
            errors.extend(more);
            Err(errors)
        }
    }
}

fn rename_path(p: &str, prefix: &str) -> String {
    let field = p.strip_prefix(prefix).unwrap_or(p).trim_start_matches('.');
    let renamed = match field {
        "occurred_at" => "time".to_string(),
        "client" => "subject".to_string(),
        f if f.starts_with("user") || ["action", "severity", "title", "details"].contains(&f) => {
            format!("data.{f}")
        }
        f => f.to_string(),
    };
    join(prefix, &renamed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::parse(crate::catalog::tests::SAMPLE).unwrap()
    }

    #[test]
    fn quoted_values_stay_short() {
        assert_eq!(quoted("abc"), "'abc'");
        let q = quoted(&"x".repeat(1_000_000));
        assert!(q.len() < 100 && q.ends_with("…(1000000 bytes)'"), "{q}");
    }

    #[test]
    fn data_over_256_kib_is_refused_naming_it() {
        let catalog = catalog();
        let big = json!({"id": "e", "client": "c", "type": "saas.too_many_downloads",
                         "data": {"blob": "x".repeat(MAX_DATA_BYTES)}});
        let errors = parse_event(&big, "events[3]", &catalog).unwrap_err();
        let data = errors.iter().find(|e| e.path == "events[3].data");
        assert!(
            data.is_some_and(|e| e.problem.contains("at most 262144")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_minimal_event_is_accepted_with_defaults() {
        let e = parse_event(
            &json!({"id":"e1","client":"c1","type":"too_many_downloads"}),
            "",
            &catalog(),
        )
        .unwrap();
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.severity, Severity::High, "the catalog's default severity");
        assert!(e.user.is_none());
    }

    #[test]
    fn every_bad_field_is_named_by_path() {
        let errs = parse_event(
            &json!({"client": 5, "type":"nope", "action":"explode", "occurred_at":"yesterday",
                     "severity":"urgent", "user":{"email":"not-an-email"}, "data":[1], "extra":1}),
            "events[3]",
            &catalog(),
        )
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "events[3].id",
            "events[3].client",
            "events[3].type",
            "events[3].action",
            "events[3].occurred_at",
            "events[3].severity",
            "events[3].user.email",
            "events[3].data",
            "events[3].extra",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
    }

    #[test]
    fn emails_are_lower_cased_for_grouping() {
        let e = parse_event(
            &json!({"id":"e1","client":"c1","type":"too_many_downloads","user":{"email":"Ann@Example.COM"}}),
            "",
            &catalog(),
        )
        .unwrap();
        assert_eq!(e.user.unwrap().email, "ann@example.com");
    }

    #[test]
    fn cloudevents_map_onto_the_same_fields() {
        let e = parse_cloudevent(
            &json!({"specversion":"1.0","id":"ce-1","source":"/vendor","type":"too_many_downloads",
                     "time":"2026-11-22T10:00:00Z","subject":"client-9",
                     "data":{"severity":"critical","user":{"email":"a@b.co"},"files":12}}),
            "",
            &catalog(),
        )
        .unwrap();
        assert_eq!(e.id, "ce-1");
        assert_eq!(e.client, "client-9");
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.data.get("files"), Some(&json!(12)));
        assert!(e.occurred_at.is_some());
    }

    #[test]
    fn cloudevents_errors_name_the_envelope_attribute() {
        let errs = parse_cloudevent(
            &json!({"id":"x","type":"too_many_downloads","time":"bad"}),
            "",
            &catalog(),
        )
        .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"specversion"));
        assert!(paths.contains(&"source"));
        assert!(paths.contains(&"time"));
        assert!(paths.contains(&"subject"));
    }

    #[test]
    fn email_check() {
        assert!(valid_email("a@b.co"));
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b.co."] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
