//! Which alerts a ticket still stands for, and when a resolve closes it.
//!
//! A grouped ticket stands for every alert it gathered (by default an alert is an event type;
//! an event naming `data.alert_id` is that alert). A trigger adds its alert, a resolve removes
//! it; when the last one resolves and the connection closes tickets on resolve (off by
//! default), the ticket is closed with the connection's close status and a note saying why.
//! A group whose alerts are unknown (made before this was tracked) is never closed this way.

use crate::event::{Action, NewEvent};

/// The alert an event speaks of.
pub fn alert_key(e: &NewEvent) -> String {
    match e.data.get("alert_id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => format!("{}#{s}", e.event_type),
        Some(serde_json::Value::Number(n)) => format!("{}#{n}", e.event_type),
        _ => e.event_type.clone(),
    }
}

/// The open alerts after a delivery, and whether the ticket is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterDelivery {
    /// `None` when unknown (kept unknown).
    pub open: Option<Vec<String>>,
    pub close: bool,
}

/// What a delivery of `action` for alert `key` does to a group whose open alerts are `open`
/// (`None`: unknown). `created` is true when this delivery made the group's ticket.
pub fn after_delivery(
    open: Option<&[String]>,
    created: bool,
    action: Action,
    key: &str,
    close_on_resolve: bool,
) -> AfterDelivery {
    let current: Option<Vec<String>> = if created {
        Some(Vec::new())
    } else {
        open.map(<[String]>::to_vec)
    };
    let Some(mut alerts) = current else {
        return AfterDelivery {
            open: None,
            close: false,
        };
    };
    match action {
        Action::Trigger => {
            if !alerts.iter().any(|a| a == key) {
                alerts.push(key.to_string());
                alerts.sort();
            }
            AfterDelivery {
                open: Some(alerts),
                close: false,
            }
        }
        Action::Resolve => {
            let had = alerts.iter().any(|a| a == key);
            alerts.retain(|a| a != key);
            AfterDelivery {
                close: close_on_resolve && had && alerts.is_empty(),
                open: Some(alerts),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::event::Severity;

    fn ev(ty: &str, alert_id: Option<serde_json::Value>) -> NewEvent {
        let mut data = Map::new();
        if let Some(a) = alert_id {
            data.insert("alert_id".into(), a);
        }
        NewEvent {
            id: "e".into(),
            partner: None,
            client: "c".into(),
            event_type: ty.into(),
            action: Action::Trigger,
            occurred_at: None,
            severity: Severity::High,
            user: None,
            title: None,
            details: None,
            data,
        }
    }

    #[test]
    fn alert_keys() {
        assert_eq!(alert_key(&ev("x", None)), "x");
        assert_eq!(alert_key(&ev("x", Some(json!("a1")))), "x#a1");
        assert_eq!(alert_key(&ev("x", Some(json!(7)))), "x#7");
        assert_eq!(alert_key(&ev("x", Some(json!("")))), "x");
    }

    #[test]
    fn the_last_resolve_closes_only_when_enabled() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = after_delivery(None, true, Action::Trigger, "x", true);
        assert_eq!(
            a,
            AfterDelivery {
                open: Some(s(&["x"])),
                close: false
            }
        );
        let b = after_delivery(Some(&s(&["x"])), false, Action::Trigger, "y", true);
        assert_eq!(b.open, Some(s(&["x", "y"])));
        let c = after_delivery(Some(&s(&["x", "y"])), false, Action::Resolve, "x", true);
        assert_eq!(
            c,
            AfterDelivery {
                open: Some(s(&["y"])),
                close: false
            }
        );
        let d = after_delivery(Some(&s(&["y"])), false, Action::Resolve, "y", true);
        assert_eq!(
            d,
            AfterDelivery {
                open: Some(vec![]),
                close: true
            }
        );
        // Off by default: the set empties, the ticket stays open.
        assert!(!after_delivery(Some(&s(&["y"])), false, Action::Resolve, "y", false).close);
        // A resolve of an alert the ticket never had closes nothing.
        assert!(!after_delivery(Some(&[]), false, Action::Resolve, "z", true).close);
        // Unknown alerts (a group older than the tracking) are never closed.
        assert_eq!(
            after_delivery(None, false, Action::Resolve, "x", true),
            AfterDelivery {
                open: None,
                close: false
            }
        );
    }

    proptest! {
        /// Whatever the order, a ticket closes exactly when its last open alert resolves.
        #[test]
        fn closes_exactly_when_nothing_is_left(ops in proptest::collection::vec((any::<bool>(), 0u8..4), 1..40)) {
            let mut open: Option<Vec<String>> = None;
            let mut created = true;
            let mut model: std::collections::BTreeSet<String> = Default::default();
            for (trigger, k) in ops {
                let key = format!("k{k}");
                let action = if trigger { Action::Trigger } else { Action::Resolve };
                let r = after_delivery(open.as_deref(), created, action, &key, true);
                created = false;
                let had = model.contains(&key);
                if trigger { model.insert(key.clone()); } else { model.remove(&key); }
                prop_assert_eq!(r.close, !trigger && had && model.is_empty());
                prop_assert_eq!(r.open.clone().map(|v| v.into_iter().collect::<std::collections::BTreeSet<_>>()), Some(model.clone()));
                if r.close { break; }
                open = r.open;
            }
        }
    }
}
