//! SCIM PATCH bodies (`Operations` of op/path/value) applied to a user resource.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psabridge_identity::scim::apply_patch;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Value::Object(mut user) = json!({
        "userName": "dave@example.com",
        "active": true,
        "name": {"givenName": "Dave", "familyName": "Lee"},
        "emails": [{"value": "dave@example.com", "primary": true}]
    }) else {
        return;
    };
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for op in ops {
        let verb = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str);
        let _ = apply_patch(&mut user, verb, path, op.get("value").cloned());
    }
});
