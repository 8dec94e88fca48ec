//! Usage reports (billing): parsed or refused with field errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psabridge_core::usage::parse_usage;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Err(errors) = parse_usage(&value, "", chrono::Utc::now()) {
        assert!(!errors.is_empty(), "a refusal names at least one field");
    }
});
