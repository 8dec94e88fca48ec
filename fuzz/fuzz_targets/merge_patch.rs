//! JSON merge patch (RFC 7396), as every `PATCH` of the API applies it: never a panic, and
//! applying the same patch twice changes nothing more (it is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use psabridge_core::merge_patch::merge_patch;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let [target, patch] = pair.as_slice() else {
        return;
    };
    let mut once = target.clone();
    merge_patch(&mut once, patch);
    let mut twice = once.clone();
    merge_patch(&mut twice, patch);
    assert_eq!(once, twice, "a merge patch is idempotent");
});
