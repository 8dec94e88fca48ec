//! The ConnectWise `conditions` parser reads whatever a client sends: it must answer every
//! input with an expression or an error, never a panic, and evaluating what it parsed must not
//! panic on any record either.

use proptest::prelude::*;
use psabridge_sim::connectwise::conditions::parse;
use serde_json::json;

/// Pieces of the grammar, so that generated text is often nearly valid.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_string()),
        Just("company/id".to_string()),
        Just("communicationItems/value".to_string()),
        Just("name".to_string()),
        Just(" = ".to_string()),
        Just(" != ".to_string()),
        Just(" >= ".to_string()),
        Just(" contains ".to_string()),
        Just(" like ".to_string()),
        Just(" not like ".to_string()),
        Just(" in ".to_string()),
        Just(" not in ".to_string()),
        Just(" and ".to_string()),
        Just(" OR ".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("\"Acme%\"".to_string()),
        Just("\"unterminated".to_string()),
        Just("[2026-01-01T00:00:00Z]".to_string()),
        Just("[not a date".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("12".to_string()),
        Just("-3.5".to_string()),
        "[ -~]{0,6}",
    ]
}

proptest! {
    #[test]
    fn near_grammar_text_never_panics(pieces in proptest::collection::vec(piece(), 0..12)) {
        let text = pieces.concat();
        if let Ok(expr) = parse(&text) {
            let record = json!({"id": 12, "name": "Acme Ltd", "company": {"id": 12},
                                "communicationItems": [{"value": "bob@acme.test"}]});
            let _ = expr.matches(&record);
            let _ = expr.matches_child(&record);
        }
    }

    #[test]
    fn any_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse(&text);
    }
}

#[test]
fn a_real_query_parses_and_matches() {
    let e = parse(r#"company/id=12 and (name like "Acme%" or id in (1, 2)) and deletedFlag=false"#)
        .expect("valid");
    assert!(e.matches(
        &json!({"id": 7, "name": "Acme Ltd", "company": {"id": 12}, "deletedFlag": false})
    ));
    assert!(
        !e.matches(&json!({"id": 7, "name": "Other", "company": {"id": 12}, "deletedFlag": false}))
    );
}
