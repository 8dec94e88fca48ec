//! Answers of the four PSAs as a connector reads them (error bodies, `Retry-After` and `Link`
//! headers, records as contracts, contacts, list items and statuses): whatever a PSA sends,
//! a connector makes a typed error or nothing of it, never a panic.
//!
//! Input: byte 0 picks the PSA, byte 1 the status; then lines: a `Retry-After` value, a `Link`
//! value, and the body (the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use psabridge_core::settings::PsaKind;
use psabridge_psa::answers::{Answer, read};

const STATUSES: [u16; 12] = [200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 502, 503];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let kind = PsaKind::ALL[usize::from(data[0]) % PsaKind::ALL.len()];
    let status = STATUSES[usize::from(data[1]) % STATUSES.len()];
    let text = String::from_utf8_lossy(&data[2..]);
    let mut parts = text.splitn(3, '\n');
    let retry_after = parts.next().unwrap_or_default();
    let link = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let answer = Answer {
        status,
        headers: vec![("retry-after", retry_after), ("link", link)],
        body,
    };
    let words = read(kind, &answer);
    assert!(!words.is_empty());
});
