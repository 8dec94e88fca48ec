//! The parsers of untrusted input (events, CloudEvents, catalogs) never panic, and every
//! refusal names a field.

use proptest::prelude::*;
use psabridge_core::catalog::Catalog;
use psabridge_core::event::{parse_cloudevent, parse_event};
use serde_json::{Map, Value, json};

const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"A\"\ncategory = \"C\"\n";

/// Arbitrary JSON, biased towards the field names the parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("a"),
            Just("trigger"),
            Just("resolve"),
            Just("high"),
            Just("x@y.io"),
            Just("1.0"),
            Just("2026-11-22T10:00:00Z")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    let key = prop_oneof![
        Just("id"),
        Just("client"),
        Just("type"),
        Just("action"),
        Just("severity"),
        Just("user"),
        Just("email"),
        Just("name"),
        Just("data"),
        Just("partner"),
        Just("occurred_at"),
        Just("title"),
        Just("details"),
        Just("specversion"),
        Just("source"),
        Just("subject"),
        Just("time"),
        Just("datacontenttype"),
        Just("other"),
    ]
    .prop_map(str::to_string);
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn events_and_cloudevents(v in json_value()) {
        let catalog = Catalog::parse(CATALOG).unwrap();
        for result in [parse_event(&v, "events[0]", &catalog), parse_cloudevent(&v, "", &catalog)] {
            match result {
                Ok(e) => {
                    prop_assert!(!e.id.is_empty() && !e.client.is_empty());
                    prop_assert!(catalog.get(&e.event_type).is_some());
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.path.is_empty() && !e.problem.is_empty()));
                }
            }
        }
    }

    #[test]
    fn catalogs(text in "(\\[\\[event_type\\]\\]\n|key = \"[a-z._]{0,6}\"\n|name = \"[A-Za-z ]{0,6}\"\n|category = \"[A-Z]{0,3}\"\n|severity = \"[a-z]{0,8}\"\n|[^\n]{0,12}\n){0,12}") {
        match Catalog::parse(&text) {
            Ok(c) => prop_assert!(!c.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
