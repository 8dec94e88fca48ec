//! Ticket fields as requests name them, checked against the PSA: each name against the PSA's
//! fields, each id against the lists loaded on "Connect", each dependent value against its
//! parent once defaults, templates and overrides are combined, and the fields the PSA needs.
//! Pure: the lists are passed in.

use psabridge_core::event::FieldError;
use psabridge_core::merge_patch::merge_patch;
use psabridge_core::settings::{PsaKind, TicketDefaults};
use psabridge_store::config::defaults_to_json;
use serde_json::{Map, Value};

use crate::error::OpsError;

/// Read ticket fields from JSON, checking each name against the PSA's fields and each id
/// against the PSA's lists. Errors name `{path}{field}`.
pub fn ticket_fields(
    kind: PsaKind,
    raw: &Map<String, Value>,
    lists: Option<&Value>,
    path: &str,
) -> Result<TicketDefaults, OpsError> {
    let mut errors = Vec::new();
    let mut out = TicketDefaults::default();
    for (k, v) in raw {
        let Some(field) = kind.ticket_field(k) else {
            let known: Vec<&str> = kind.ticket_fields().iter().map(|f| f.name).collect();
            errors.push(FieldError::new(
                format!("{path}{k}"),
                format!(
                    "is not a {} ticket field (known: {})",
                    kind.display_name(),
                    known.join(", ")
                ),
            ));
            continue;
        };
        let id = match v {
            Value::Null => continue,
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                errors.push(FieldError::new(
                    format!("{path}{k}"),
                    "must be an id (string or number) or null",
                ));
                continue;
            }
        };
        let Some(items) = lists
            .and_then(|l| l.get(field.list))
            .and_then(Value::as_array)
        else {
            errors.push(FieldError::new(
                format!("{path}{k}"),
                "the PSA's lists are not loaded; connect the connection first (POST …/connect)",
            ));
            continue;
        };
        let found: Vec<&Value> = items
            .iter()
            .filter(|i| i.get("id").and_then(Value::as_str) == Some(&id))
            .collect();
        if found.is_empty() {
            let mut known: Vec<String> = items
                .iter()
                .filter(|i| i.get("active").and_then(Value::as_bool) != Some(false))
                .map(|i| {
                    format!(
                        "{} \"{}\"",
                        i["id"].as_str().unwrap_or(""),
                        i["label"].as_str().unwrap_or("")
                    )
                })
                .collect();
            known.dedup();
            known.truncate(12);
            errors.push(FieldError::new(
                format!("{path}{k}"),
                format!(
                    "\"{id}\" is not a {} of this PSA (known: {})",
                    field.label,
                    known.join(", ")
                ),
            ));
        } else if found
            .iter()
            .all(|i| i.get("active").and_then(Value::as_bool) == Some(false))
        {
            errors.push(FieldError::new(
                format!("{path}{k}"),
                format!("\"{id}\" is an inactive {} in the PSA", field.label),
            ));
        } else {
            out.set(k, id);
        }
    }
    OpsError::check(errors).map(|()| out)
}

/// Stored defaults with a JSON merge patch applied: named fields change, `null` removes one,
/// the rest is kept; a field whose parent the patch changes goes unless the patch names it.
pub fn patched_defaults(
    kind: PsaKind,
    stored: &TicketDefaults,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = defaults_to_json(stored);
    merge_patch(&mut merged, &Value::Object(patch.clone()));
    let Value::Object(mut merged) = merged else {
        return Map::new();
    };
    for changed in patch.keys() {
        merged.retain(|name, _| patch.contains_key(name) || !kind.depends_on(name, changed));
    }
    merged
}

/// Every field the PSA needs on a ticket is set, or the error names each missing one.
pub fn check_required(kind: PsaKind, fields: &TicketDefaults, path: &str) -> Result<(), OpsError> {
    OpsError::check(
        kind.required_ticket_fields()
            .iter()
            .filter(|f| fields.get(f).is_none())
            .map(|f| {
                FieldError::new(
                    format!("{path}{f}"),
                    format!(
                        "is required: {} refuses a ticket without it",
                        kind.display_name()
                    ),
                )
            })
            .collect(),
    )
}

/// A dependent value must belong to the chosen parent (a sub-issue type to its issue type, a
/// ConnectWise status to its board, a HaloPSA agent to its team), after defaults and overrides
/// are combined. A list item names its parent; an item belonging to several parents is listed
/// once per parent.
pub fn check_parents(
    kind: PsaKind,
    fields: &TicketDefaults,
    lists: Option<&Value>,
    path: &str,
) -> Result<(), OpsError> {
    let mut errors = Vec::new();
    for field in kind.ticket_fields() {
        let (Some(parent), Some(value)) = (field.parent, fields.get(field.name)) else {
            continue;
        };
        let parents: Vec<&str> = lists
            .and_then(|l| l.get(field.list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| i.get("id").and_then(Value::as_str) == Some(value))
            .filter_map(|i| i.get("parent").and_then(Value::as_str))
            .collect();
        if parents.is_empty() {
            continue;
        }
        let parent_label = kind.ticket_field(parent).map_or(parent, |f| f.label);
        match fields.get(parent) {
            None => errors.push(FieldError::new(
                format!("{path}{}", field.name),
                format!("needs a {parent_label} ({parent})"),
            )),
            Some(chosen) if !parents.contains(&chosen) => errors.push(FieldError::new(
                format!("{path}{}", field.name),
                format!(
                    "\"{value}\" belongs to {parent_label} {}, not \"{chosen}\"",
                    parents
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )),
            Some(_) => {}
        }
    }
    OpsError::check(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists() -> Value {
        json!({
            "queue": [{"id": "5", "label": "Client Portal"}, {"id": "6", "label": "Old", "active": false}],
            "issue_type": [{"id": "1", "label": "Security"}, {"id": "2", "label": "Network"}],
            "sub_issue_type": [{"id": "10", "label": "Phishing", "parent": "1"}],
        })
    }

    fn field_of(kind: PsaKind, list: &str) -> Option<&'static str> {
        kind.ticket_fields()
            .iter()
            .find(|f| f.list == list)
            .map(|f| f.name)
    }

    #[test]
    fn unknown_names_unknown_ids_and_inactive_ids_are_named() {
        let kind = PsaKind::Autotask;
        let queue = field_of(kind, "queue").expect("Autotask has a queue field");
        let raw = json!({queue: "99", "colour": "red"});
        let e =
            ticket_fields(kind, raw.as_object().unwrap(), Some(&lists()), "defaults.").unwrap_err();
        let paths: Vec<&str> = e.field_errors().iter().map(|f| f.path.as_str()).collect();
        assert!(paths.contains(&"defaults.colour"), "{paths:?}");
        let q = e
            .field_errors()
            .iter()
            .find(|f| f.path == format!("defaults.{queue}"))
            .unwrap();
        assert!(q.problem.contains("\"99\" is not a") && q.problem.contains("5 \"Client Portal\""));
        let raw = json!({queue: "6"});
        let e = ticket_fields(kind, raw.as_object().unwrap(), Some(&lists()), "").unwrap_err();
        assert!(e.field_errors()[0].problem.contains("inactive"));
        let raw = json!({queue: 5});
        let ok = ticket_fields(kind, raw.as_object().unwrap(), Some(&lists()), "").unwrap();
        assert_eq!(ok.get(queue), Some("5"));
        let e = ticket_fields(kind, raw.as_object().unwrap(), None, "").unwrap_err();
        assert!(e.field_errors()[0].problem.contains("not loaded"));
    }

    #[test]
    fn a_child_must_belong_to_the_chosen_parent() {
        let kind = PsaKind::Autotask;
        let (issue, sub) = ("issue_type", "sub_issue_type");
        let wrong = TicketDefaults::from_pairs([(issue, "2"), (sub, "10")]);
        let e = check_parents(kind, &wrong, Some(&lists()), "fields.").unwrap_err();
        assert_eq!(e.field_errors()[0].path, format!("fields.{sub}"));
        assert!(e.field_errors()[0].problem.contains("belongs to"));
        let orphan = TicketDefaults::from_pairs([(sub, "10")]);
        let e = check_parents(kind, &orphan, Some(&lists()), "").unwrap_err();
        assert!(e.field_errors()[0].problem.contains("needs a"));
        let right = TicketDefaults::from_pairs([(issue, "1"), (sub, "10")]);
        assert!(check_parents(kind, &right, Some(&lists()), "").is_ok());
    }

    #[test]
    fn a_changed_parent_drops_its_children_unless_named() {
        let kind = PsaKind::Autotask;
        let (issue, sub) = ("issue_type", "sub_issue_type");
        let stored = TicketDefaults::from_pairs([(issue, "1"), (sub, "10")]);
        let patch = json!({issue: "2"});
        let merged = patched_defaults(kind, &stored, patch.as_object().unwrap());
        assert_eq!(merged.get(issue), Some(&json!("2")));
        assert!(!merged.contains_key(sub));
    }

    #[test]
    fn every_required_field_missing_is_named() {
        for kind in PsaKind::ALL {
            let e = check_required(kind, &TicketDefaults::default(), "defaults.");
            assert_eq!(
                e.err().map_or(0, |e| e.field_errors().len()),
                kind.required_ticket_fields().len()
            );
        }
    }
}
