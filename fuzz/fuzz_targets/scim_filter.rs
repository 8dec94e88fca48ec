//! SCIM filters as identity providers send them (`userName eq "a@b.c"`): parsed or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psabridge_identity::scim::{lookup_of, parse_filter};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(filter) = parse_filter(text)
    {
        let _ = lookup_of(&filter);
    }
});
