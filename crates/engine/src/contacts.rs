//! The contact-by-email cache.
//!
//! Finding the alert user's contact costs a PSA query; the answer rarely changes. Positive
//! answers are kept for hours, negative ones for minutes (a contact may be added), per
//! (connection, company, email).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FOUND_FOR: Duration = Duration::from_secs(6 * 3600);
const MISSING_FOR: Duration = Duration::from_secs(10 * 60);
/// Entries kept at most; beyond it the cache is cleared (cheap, rare, and only costs lookups).
const MAX_ENTRIES: usize = 100_000;

type Key = (i64, String, String);

#[derive(Debug, Default)]
pub(crate) struct ContactCache {
    entries: Mutex<HashMap<Key, (Vec<String>, Instant)>>,
}

impl ContactCache {
    pub(crate) fn get(&self, connection: i64, company: &str, email: &str) -> Option<Vec<String>> {
        let key = (connection, company.to_string(), email.to_string());
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key).and_then(|(ids, at)| {
            let ttl = if ids.is_empty() {
                MISSING_FOR
            } else {
                FOUND_FOR
            };
            (at.elapsed() < ttl).then(|| ids.clone())
        })
    }

    pub(crate) fn put(&self, connection: i64, company: &str, email: &str, ids: Vec<String>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            (connection, company.to_string(), email.to_string()),
            (ids, Instant::now()),
        );
    }

    /// Forget everything about a connection (its contacts may have changed wholesale).
    pub(crate) fn flush(&self, connection: i64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| k.0 != connection);
    }
}
