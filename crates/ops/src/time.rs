//! Times in answers: RFC 3339, UTC, milliseconds (`2026-01-31T09:15:00.000Z`).

use psabridge_store::{Millis, from_millis};
use serde::{Serialize, Serializer};

/// A stored time as answers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub Millis);

impl Timestamp {
    pub fn rfc3339(self) -> String {
        from_millis(self.0).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    pub fn opt(ms: Option<Millis>) -> Option<Timestamp> {
        ms.map(Timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}
