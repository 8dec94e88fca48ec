//! Event types defined through the API: the checks of one definition and how the stored rows
//! become the [`Catalog`] the router and the ingest validation read.
//!
//! The catalog file still seeds the types; a type defined or changed through the API is a row
//! with the same shape plus two flags: `on_by_default` (whether a partner without an event set
//! of its own gets it) and `active` (a type still referenced by events or settings is
//! deactivated instead of deleted, and an inactive type is refused at ingest like an unknown one).

use serde_json::Value;

use crate::catalog::{Catalog, DEFAULT_DESCRIPTION, EventType};
use crate::event::{FieldError, Severity, quoted};
use crate::render::PLACEHOLDERS;

/// Longest template accepted, in characters: a template is a sentence or a paragraph.
pub const MAX_TEMPLATE_CHARS: usize = 8_000;
/// Longest key, name or category, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// One event type as the API and the database hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeDef {
    pub key: String,
    pub name: String,
    pub category: String,
    pub default_severity: Severity,
    pub title: String,
    pub description: String,
    pub on_by_default: bool,
    pub active: bool,
}

impl EventTypeDef {
    /// The row a catalog-file entry seeds: on by default and active.
    pub fn seeded(t: &EventType) -> EventTypeDef {
        EventTypeDef {
            key: t.key.clone(),
            name: t.name.clone(),
            category: t.category.clone(),
            default_severity: t.default_severity,
            title: t.title.clone(),
            description: t.description.clone(),
            on_by_default: true,
            active: true,
        }
    }

    fn to_event_type(&self) -> EventType {
        EventType {
            key: self.key.clone(),
            name: self.name.clone(),
            category: self.category.clone(),
            default_severity: self.default_severity,
            title: self.title.clone(),
            description: self.description.clone(),
        }
    }
}

/// The catalog the pipeline reads: the active types only, so that an inactive type is refused
/// at ingest with the same error as an unknown one.
pub fn active_catalog<'a>(defs: impl IntoIterator<Item = &'a EventTypeDef>) -> Catalog {
    Catalog::from_types(
        defs.into_iter()
            .filter(|d| d.active)
            .map(EventTypeDef::to_event_type),
    )
}

/// The catalog ticket text is rendered from: every type, inactive ones too, so that events
/// accepted before a type was deactivated still deliver with their own title and text.
pub fn rendering_catalog<'a>(defs: impl IntoIterator<Item = &'a EventTypeDef>) -> Catalog {
    Catalog::from_types(defs.into_iter().map(EventTypeDef::to_event_type))
}

/// The active types a partner gets only by saying so (an event set or an event rule naming
/// them); see `routing`.
pub fn off_by_default<'a>(
    defs: impl IntoIterator<Item = &'a EventTypeDef>,
) -> std::collections::BTreeSet<String> {
    defs.into_iter()
        .filter(|d| d.active && !d.on_by_default)
        .map(|d| d.key.clone())
        .collect()
}

/// The problems of a template: an unclosed `{` or a placeholder the renderer does not know.
/// The renderer itself is lenient (it leaves unknown names as written); a definition sent
/// through the API is checked so that a typo is refused when it is made, not seen in a ticket.
pub fn template_problem(template: &str) -> Option<String> {
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Some(format!("is longer than {MAX_TEMPLATE_CHARS} characters"));
    }
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Some("has a '{' that is not closed by '}'".into());
        };
        let name = &after[..end];
        if name.contains('{') {
            return Some("has a '{' that is not closed by '}'".into());
        }
        if !PLACEHOLDERS.contains(&name) {
            return Some(format!(
                "uses the unknown placeholder {}; known: {}",
                quoted(&format!("{{{name}}}")),
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[end + 1..];
    }
    None
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_LABEL_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// Check a `POST` body (`key` required) or a `PUT` body (`key` from the path, `key` in the body
/// must match if given). Every problem is reported, each naming its field.
pub fn parse_definition(
    body: &Value,
    path_key: Option<&str>,
) -> Result<EventTypeDef, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("", "must be a JSON object")]);
    };
    const KNOWN: &[&str] = &[
        "key",
        "name",
        "category",
        "default_severity",
        "title_template",
        "description_template",
        "on_by_default",
        "active",
    ];
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) {
            errors.push(FieldError::new(
                k.clone(),
                "is not a field of an event type",
            ));
        }
    }
    let text = |errors: &mut Vec<FieldError>, field: &str, required: bool| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                if required {
                    errors.push(FieldError::new(field, "is required"));
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(field, "must be a string"));
                None
            }
        }
    };
    let flag = |errors: &mut Vec<FieldError>, field: &str| -> bool {
        match obj.get(field) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(FieldError::new(field, "must be true or false"));
                true
            }
        }
    };

    let body_key = text(&mut errors, "key", path_key.is_none());
    let key = match (path_key, body_key) {
        (Some(p), Some(b)) if p != b => {
            errors.push(FieldError::new(
                "key",
                format!(
                    "{} differs from the key in the path {}",
                    quoted(&b),
                    quoted(p)
                ),
            ));
            p.to_string()
        }
        (Some(p), _) => p.to_string(),
        (None, Some(b)) => b,
        (None, None) => String::new(),
    };
    // An empty key (`"key": ""`) is refused like any other bad one; only a key that is
    // missing altogether has been named already ("is required").
    let key_missing = errors.iter().any(|e| e.path == "key");
    if !key_missing && !valid_key(&key) {
        errors.push(FieldError::new(
            "key",
            format!(
                "{} must be 1 to {MAX_LABEL_CHARS} lower-case letters, digits, '_' or '.'",
                quoted(&key)
            ),
        ));
    }
    let label = |errors: &mut Vec<FieldError>, field: &str| -> String {
        let v = text(errors, field, true).unwrap_or_default();
        if obj.get(field).is_some_and(Value::is_string) {
            if v.trim().is_empty() {
                errors.push(FieldError::new(field, "must not be empty"));
            } else if v.chars().count() > MAX_LABEL_CHARS {
                errors.push(FieldError::new(
                    field,
                    format!("is longer than {MAX_LABEL_CHARS} characters"),
                ));
            }
        }
        v
    };
    let name = label(&mut errors, "name");
    let category = label(&mut errors, "category");
    let default_severity = match text(&mut errors, "default_severity", false) {
        None => Severity::Medium,
        Some(s) => Severity::parse(&s).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "default_severity",
                format!(
                    "{} is not one of critical, high, medium, low, info",
                    quoted(&s)
                ),
            ));
            Severity::Medium
        }),
    };
    let template = |errors: &mut Vec<FieldError>, field: &str, default: String| -> String {
        match text(errors, field, false) {
            None => default,
            Some(t) => {
                if let Some(problem) = template_problem(&t) {
                    errors.push(FieldError::new(field, problem));
                }
                t
            }
        }
    };
    let title = template(
        &mut errors,
        "title_template",
        format!("{name}: {{client_name}}"),
    );
    let description = template(
        &mut errors,
        "description_template",
        DEFAULT_DESCRIPTION.to_string(),
    );
    let on_by_default = flag(&mut errors, "on_by_default");
    let active = flag(&mut errors, "active");
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(EventTypeDef {
        key,
        name,
        category,
        default_severity,
        title,
        description,
        on_by_default,
        active,
    })
}

/// The JSON shape the API answers with (the same names `parse_definition` reads).
pub fn to_json(d: &EventTypeDef) -> Value {
    serde_json::json!({
        "key": d.key,
        "name": d.name,
        "category": d.category,
        "default_severity": d.default_severity.as_str(),
        "title_template": d.title,
        "description_template": d.description,
        "on_by_default": d.on_by_default,
        "active": d.active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn an_empty_key_is_refused_by_name() {
        let errs =
            parse_definition(&json!({"key": "", "name": "A", "category": "C"}), None).unwrap_err();
        assert_eq!(fields(&errs), ["key"]);
        // Missing altogether: named once, as required.
        let errs = parse_definition(&json!({"name": "A", "category": "C"}), None).unwrap_err();
        assert_eq!(fields(&errs), ["key"]);
    }

    #[test]
    fn a_full_definition_parses_and_round_trips() {
        let body = json!({
            "key": "usb.mass_storage",
            "name": "USB mass storage",
            "category": "Devices",
            "default_severity": "high",
            "title_template": "USB storage on {client_name} by {user}",
            "description_template": "{details}\n{data}",
            "on_by_default": false
        });
        let d = parse_definition(&body, None).unwrap();
        assert_eq!(d.default_severity, Severity::High);
        assert!(!d.on_by_default);
        assert!(d.active);
        assert_eq!(parse_definition(&to_json(&d), None).unwrap(), d);
    }

    #[test]
    fn defaults_follow_the_catalog_file() {
        let d = parse_definition(&json!({"key":"a","name":"A","category":"C"}), None).unwrap();
        assert_eq!(d.default_severity, Severity::Medium);
        assert_eq!(d.title, "A: {client_name}");
        assert_eq!(d.description, DEFAULT_DESCRIPTION);
        assert!(d.on_by_default && d.active);
    }

    #[test]
    fn every_problem_names_its_field() {
        let body = json!({
            "key": "Bad Key",
            "name": "",
            "default_severity": "urgent",
            "title_template": "Hello {clinet}",
            "description_template": "open {details",
            "on_by_default": "yes",
            "colour": "red"
        });
        let errs = parse_definition(&body, None).unwrap_err();
        let f = fields(&errs);
        for expected in [
            "key",
            "name",
            "category",
            "default_severity",
            "title_template",
            "description_template",
            "on_by_default",
            "colour",
        ] {
            assert!(f.contains(&expected), "{expected} missing in {errs:?}");
        }
        let title = errs.iter().find(|e| e.path == "title_template").unwrap();
        assert!(title.problem.contains("{clinet}"), "{}", title.problem);
    }

    #[test]
    fn put_takes_the_key_from_the_path() {
        let d = parse_definition(&json!({"name":"A","category":"C"}), Some("a.b")).unwrap();
        assert_eq!(d.key, "a.b");
        let errs =
            parse_definition(&json!({"key":"x","name":"A","category":"C"}), Some("a")).unwrap_err();
        assert_eq!(fields(&errs), ["key"]);
    }

    #[test]
    fn every_known_placeholder_is_accepted() {
        let all: String = PLACEHOLDERS.iter().map(|p| format!("{{{p}}} ")).collect();
        assert_eq!(template_problem(&all), None);
        assert_eq!(template_problem("no placeholders"), None);
        assert!(template_problem("{a{b}").is_some());
    }

    #[test]
    fn the_active_catalog_leaves_out_inactive_types() {
        let mut a = parse_definition(&json!({"key":"a","name":"A","category":"C"}), None).unwrap();
        let b = parse_definition(&json!({"key":"b","name":"B","category":"C"}), None).unwrap();
        a.active = false;
        let c = active_catalog([&a, &b]);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("b").unwrap().name, "B");
    }

    #[test]
    fn inactive_types_still_render_and_off_by_default_lists_active_ones_only() {
        let def = |key: &str, on: bool, active: bool| {
            let mut d =
                parse_definition(&json!({"key": key, "name": "N", "category": "C"}), None).unwrap();
            d.on_by_default = on;
            d.active = active;
            d
        };
        let defs = [
            def("on", true, true),
            def("off", false, true),
            def("gone_off", false, false),
            def("gone", true, false),
        ];
        let r = rendering_catalog(&defs);
        assert_eq!(r.len(), 4, "every type renders");
        let off: Vec<String> = off_by_default(&defs).into_iter().collect();
        assert_eq!(off, ["off"]);
    }
}
