//! Events in our JSON shape and as CloudEvents: any bytes are refused with field errors or
//! parsed, never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use psabridge_core::catalog::Catalog;
use psabridge_core::event::{parse_cloudevent, parse_event};

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    Catalog::parse(include_str!("../../crates/psabridge/catalog/default.toml"))
        .expect("the built-in catalog parses")
});

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for path in ["", "events[0]"] {
        if let Err(errors) = parse_event(&value, path, &CATALOG) {
            assert!(!errors.is_empty(), "a refusal names at least one field");
        }
        if let Err(errors) = parse_cloudevent(&value, path, &CATALOG) {
            assert!(!errors.is_empty(), "a refusal names at least one field");
        }
    }
});
