//! The records: big entities by id, setup lists as arrays.

use std::collections::BTreeMap;

use serde_json::Value;

/// The big entities (wrapped lists, create-or-update by `id`), with their wrapper keys.
pub const ENTITIES: [(&str, &str); 9] = [
    ("Client", "clients"),
    // The wrapper key of ClientContract is not documented (HaloAPI passes none): `contracts`.
    ("ClientContract", "contracts"),
    ("Site", "sites"),
    ("Users", "users"),
    ("Tickets", "tickets"),
    ("Actions", "actions"),
    // The catalogue's items (the wrapper key HaloAPI's `Get-HaloItem` reads) and the recurring
    // invoices that carry a contract's billing lines (`invoices`, reference notes §1.3).
    ("Item", "items"),
    ("RecurringInvoice", "invoices"),
    // Configuration items (`Device` in the schema); HaloAPI's `Get-HaloAsset` reads `assets`.
    ("Asset", "assets"),
];

/// The setup lists (answered as bare arrays).
pub const SETUP: [&str; 9] = [
    "Status",
    "TicketType",
    "Priority",
    "SLA",
    "Team",
    "Agent",
    "Category",
    "Lookup",
    "AssetType",
];

#[derive(Default, Clone)]
pub struct Db {
    pub records: BTreeMap<&'static str, BTreeMap<i64, Value>>,
    pub setup: BTreeMap<&'static str, Vec<Value>>,
    pub next: BTreeMap<&'static str, i64>,
}

static EMPTY: BTreeMap<i64, Value> = BTreeMap::new();

impl Db {
    pub fn table(&self, name: &str) -> &BTreeMap<i64, Value> {
        self.records
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
            .unwrap_or(&EMPTY)
    }

    pub fn get(&self, table: &str, id: i64) -> Option<&Value> {
        self.table(table).get(&id)
    }

    pub fn list(&self, name: &str) -> &[Value] {
        self.setup
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    /// Store a record (the table name must be one of [`ENTITIES`]).
    pub fn put(&mut self, table: &str, id: i64, v: Value) {
        let Some((name, _)) = ENTITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(table)) else {
            return;
        };
        self.records.entry(name).or_default().insert(id, v);
        let next = self.next.entry(name).or_insert(1);
        if *next <= id {
            *next = id + 1;
        }
    }

    /// The next id of a table.
    pub fn next_id(&mut self, table: &str) -> i64 {
        let Some((name, _)) = ENTITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(table)) else {
            return 0;
        };
        let n = self.next.entry(name).or_insert(1);
        let id = *n;
        *n += 1;
        id
    }
}
