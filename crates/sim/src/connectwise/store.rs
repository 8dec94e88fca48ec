//! The records: one table of JSON objects per collection, keyed by id, kept in the shape the
//! API answers (references as `{"id", "name", "_info": {…_href}}`). Keys starting with `__`
//! are the simulator's own bookkeeping and never leave it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub const COMPANIES: &str = "companies";
pub const CONTACTS: &str = "contacts";
pub const BOARDS: &str = "boards";
pub const STATUSES: &str = "statuses";
pub const TYPES: &str = "types";
pub const SUBTYPES: &str = "subtypes";
pub const ITEMS: &str = "items";
pub const TEAMS: &str = "teams";
pub const ASSOCIATIONS: &str = "typeSubTypeItemAssociations";
pub const PRIORITIES: &str = "priorities";
pub const SOURCES: &str = "sources";
pub const MEMBERS: &str = "members";
pub const TICKETS: &str = "tickets";
pub const NOTES: &str = "notes";
pub const AGREEMENTS: &str = "agreements";
pub const CATALOG: &str = "catalog";
pub const ADDITIONS: &str = "additions";
pub const CONFIGURATIONS: &str = "configurations";

/// Marks the note a ticket's `initialDescription` became.
pub const INITIAL_DESCRIPTION: &str = "__initialDescription";

static EMPTY: BTreeMap<i64, Value> = BTreeMap::new();

pub struct Db {
    tables: BTreeMap<&'static str, BTreeMap<i64, Value>>,
    /// `http://host/v4_6_release/apis/3.0`, for `_info` hrefs.
    pub api_base: String,
}

/// A record without the simulator's bookkeeping.
pub fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A note as the API answers it.
pub fn note_out(n: &Value) -> Value {
    clean(n)
}

/// The id of a record or reference.
pub fn id_of(v: &Value) -> Option<i64> {
    match v.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `record[field].id`
pub fn ref_id(v: &Value, field: &str) -> Option<i64> {
    v.get(field).and_then(id_of)
}

pub fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or(false)
}

impl Db {
    pub fn empty(api_base: &str) -> Db {
        Db {
            tables: BTreeMap::new(),
            api_base: api_base.to_string(),
        }
    }

    pub fn table(&self, name: &str) -> &BTreeMap<i64, Value> {
        self.tables.get(name).unwrap_or(&EMPTY)
    }

    pub fn tables_mut(&mut self, table: &'static str) -> &mut BTreeMap<i64, Value> {
        self.tables.entry(table).or_default()
    }

    pub fn get(&self, table: &str, id: i64) -> Option<&Value> {
        self.table(table).get(&id)
    }

    pub fn next_id(&self, table: &str, floor: i64) -> i64 {
        self.table(table)
            .keys()
            .next_back()
            .map_or(floor, |m| (m + 1).max(floor))
    }

    /// Store a record under its `id`.
    pub fn put(&mut self, table: &'static str, record: Value) {
        let id = id_of(&record).unwrap_or_default();
        self.tables.entry(table).or_default().insert(id, record);
    }

    /// An absolute href below the API base.
    pub fn href(&self, path: &str) -> String {
        format!("{}/{path}", self.api_base)
    }

    /// The notes of a ticket, in id order.
    pub fn notes_of(&self, ticket_id: i64) -> Vec<&Value> {
        self.table(NOTES)
            .values()
            .filter(|n| n.get("ticketId").and_then(Value::as_i64) == Some(ticket_id))
            .collect()
    }

    pub fn ticket_out(&self, t: &Value) -> Value {
        clean(t)
    }

    /// The board-scoped records of `table` on `board`.
    pub fn on_board(&self, table: &str, board: i64) -> Vec<&Value> {
        self.table(table)
            .values()
            .filter(|r| board_of(r) == Some(board))
            .collect()
    }

    // References, as ConnectWise embeds them.

    pub fn company_ref(&self, c: &Value) -> Value {
        let id = id_of(c).unwrap_or_default();
        json!({"id": id, "identifier": c["identifier"], "name": c["name"],
               "_info": {"company_href": self.href(&format!("company/companies/{id}"))}})
    }

    pub fn contact_ref(&self, c: &Value) -> Value {
        let id = id_of(c).unwrap_or_default();
        json!({"id": id, "name": contact_name(c),
               "_info": {"contact_href": self.href(&format!("company/contacts/{id}"))}})
    }

    /// An `AgreementReference`: `type` is the agreement type's name.
    pub fn agreement_ref(&self, a: &Value) -> Value {
        let id = id_of(a).unwrap_or_default();
        json!({"id": id, "name": a["name"], "type": a["type"]["name"],
               "_info": {"agreement_href": self.href(&format!("finance/agreements/{id}"))}})
    }

    pub fn board_ref(&self, b: &Value) -> Value {
        let id = id_of(b).unwrap_or_default();
        json!({"id": id, "name": b["name"],
               "_info": {"board_href": self.href(&format!("service/boards/{id}"))}})
    }

    /// A reference to a board-scoped record (`statuses`, `types`, …).
    pub fn child_ref(&self, table: &str, r: &Value) -> Value {
        let id = id_of(r).unwrap_or_default();
        let board = board_of(r).unwrap_or_default();
        let key = match table {
            STATUSES => "status_href",
            TYPES => "type_href",
            SUBTYPES => "subType_href",
            ITEMS => "item_href",
            _ => "team_href",
        };
        let mut out = json!({"id": id, "name": r["name"],
            "_info": {key: self.href(&format!("service/boards/{board}/{table}/{id}"))}});
        if table == STATUSES {
            out["sort"] = r["sortOrder"].clone();
        }
        out
    }

    pub fn priority_ref(&self, p: &Value) -> Value {
        let id = id_of(p).unwrap_or_default();
        json!({"id": id, "name": p["name"], "sort": p["sortOrder"], "level": p["level"],
               "_info": {"priority_href": self.href(&format!("service/priorities/{id}")),
                         "image_href": self.href(&format!("service/priorities/{id}/image?lm=2026-01-01T00:00:00Z"))}})
    }

    pub fn source_ref(&self, s: &Value) -> Value {
        let id = id_of(s).unwrap_or_default();
        json!({"id": id, "name": s["name"],
               "_info": {"source_href": self.href(&format!("service/sources/{id}"))}})
    }

    pub fn member_ref(&self, m: &Value) -> Value {
        let id = id_of(m).unwrap_or_default();
        json!({"id": id, "identifier": m["identifier"],
               "name": format!("{} {}", text(m, "firstName"), text(m, "lastName")).trim(),
               "_info": {"member_href": self.href(&format!("system/members/{id}"))}})
    }

    /// The member with this identifier (case-insensitive).
    pub fn member_by_identifier(&self, identifier: &str) -> Option<&Value> {
        self.table(MEMBERS).values().find(|m| {
            m.get("identifier")
                .and_then(Value::as_str)
                .is_some_and(|i| i.eq_ignore_ascii_case(identifier))
        })
    }

    /// `_info` of a record written now by `member`.
    pub fn info(&self, member: &str, entered: Option<&Value>) -> Map<String, Value> {
        let now = super::now_text();
        let mut m = Map::new();
        m.insert("lastUpdated".into(), json!(now));
        m.insert("updatedBy".into(), json!(member));
        match entered {
            Some(prev) => {
                for k in ["dateEntered", "enteredBy"] {
                    if let Some(v) = prev.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
            }
            None => {
                m.insert("dateEntered".into(), json!(now));
                m.insert("enteredBy".into(), json!(member));
            }
        }
        m
    }
}

/// The board a board-scoped record belongs to (`board.id`, or `boardId` on teams).
pub fn board_of(r: &Value) -> Option<i64> {
    ref_id(r, "board").or_else(|| r.get("boardId").and_then(Value::as_i64))
}

pub fn contact_name(c: &Value) -> String {
    format!("{} {}", text(c, "firstName"), text(c, "lastName"))
        .trim()
        .to_string()
}

/// A contact's default e-mail address (or its first one).
pub fn contact_email(c: &Value) -> Option<String> {
    let items = c.get("communicationItems")?.as_array()?;
    let emails: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("communicationType").and_then(Value::as_str) == Some("Email"))
        .collect();
    emails
        .iter()
        .find(|i| flag(i, "defaultFlag"))
        .or(emails.first())
        .and_then(|i| i.get("value").and_then(Value::as_str))
        .map(str::to_string)
}
