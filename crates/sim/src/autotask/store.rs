//! The in-memory database, its indexes and its state file.
//!
//! Records are JSON objects keyed by id in ordered maps, so get-by-id, create and keyset
//! paging (ascending id) are logarithmic; child lists (a ticket's notes, a company's contacts,
//! a webhook's fields) come from an index rather than a scan. Every record carries every field
//! of its entity (null when unset), as Autotask answers. The state file is the serialized
//! database, written atomically (temporary file, then rename).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::EntityInfo;
use super::seed;

/// The simulated database (what the state file holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Db {
    pub records: BTreeMap<String, BTreeMap<i64, Value>>,
    /// The last id handed out (ids are unique across entities, as in Autotask).
    pub next_id: i64,
    /// Tickets numbered today, and the day (`YYYYMMDD`) they count for.
    pub ticket_seq: u64,
    #[serde(default)]
    pub ticket_day: String,
    /// The last webhook callout's sequence number.
    pub webhook_seq: u64,
    /// (child entity, parent id) → child ids. Rebuilt on load.
    #[serde(skip)]
    children: HashMap<(String, i64), BTreeSet<i64>>,
}

impl Db {
    /// A fresh database holding the seed data.
    pub fn seeded(entities: &[EntityInfo]) -> Db {
        let mut db = Db {
            records: seed::seed()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            next_id: seed::FIRST_FREE_ID,
            ticket_seq: 0,
            ticket_day: String::new(),
            webhook_seq: 0,
            children: HashMap::new(),
        };
        db.prepare(entities);
        db
    }

    /// Load a state file written by [`Db::save`].
    pub fn load(path: &Path, entities: &[EntityInfo]) -> Result<Db, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut db: Db = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        db.prepare(entities);
        Ok(db)
    }

    /// Write the state file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// Give every table, record and field its place; build the child index.
    fn prepare(&mut self, entities: &[EntityInfo]) {
        self.children.clear();
        for e in entities {
            let table = self.records.entry(e.name.to_string()).or_default();
            for r in table.values_mut() {
                fill(e, r);
            }
            if let Some((_, parent_field)) = e.parent {
                let pairs: Vec<(i64, i64)> = table
                    .iter()
                    .filter_map(|(id, r)| Some((r.get(parent_field)?.as_i64()?, *id)))
                    .collect();
                for (pid, id) in pairs {
                    self.children
                        .entry((e.name.to_string(), pid))
                        .or_default()
                        .insert(id);
                }
            }
        }
    }

    pub fn table(&self, entity: &str) -> Option<&BTreeMap<i64, Value>> {
        self.records.get(entity)
    }

    pub fn get(&self, entity: &str, id: i64) -> Option<&Value> {
        self.records.get(entity)?.get(&id)
    }

    pub fn get_mut(&mut self, entity: &str, id: i64) -> Option<&mut Value> {
        self.records.get_mut(entity)?.get_mut(&id)
    }

    pub fn exists(&self, entity: &str, id: i64) -> bool {
        self.records
            .get(entity)
            .is_some_and(|t| t.contains_key(&id))
    }

    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Insert or replace a record (its parent link must not change: create-only fields).
    pub fn put(&mut self, entity: &EntityInfo, id: i64, record: Value) {
        if let Some((_, pf)) = entity.parent
            && let Some(pid) = record.get(pf).and_then(Value::as_i64)
        {
            self.children
                .entry((entity.name.to_string(), pid))
                .or_default()
                .insert(id);
        }
        self.records
            .entry(entity.name.to_string())
            .or_default()
            .insert(id, record);
    }

    pub fn remove(&mut self, entity: &EntityInfo, id: i64) -> Option<Value> {
        let r = self.records.get_mut(entity.name)?.remove(&id)?;
        if let Some((_, pf)) = entity.parent
            && let Some(pid) = r.get(pf).and_then(Value::as_i64)
            && let Some(set) = self.children.get_mut(&(entity.name.to_string(), pid))
        {
            set.remove(&id);
        }
        Some(r)
    }

    /// The children of `parent_id` of a child entity, in id order.
    pub fn children_of(&self, child: &str, parent_id: i64) -> Vec<Value> {
        let Some(table) = self.records.get(child) else {
            return Vec::new();
        };
        self.children
            .get(&(child.to_string(), parent_id))
            .map(|ids| ids.iter().filter_map(|id| table.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// The next ticket number, `T<yyyymmdd>.<nnnn>`, numbered per day.
    pub fn ticket_number(&mut self, today: &str) -> String {
        if self.ticket_day != today {
            self.ticket_day = today.to_string();
            self.ticket_seq = 0;
        }
        self.ticket_seq += 1;
        format!("T{today}.{:04}", self.ticket_seq)
    }
}

/// Give a record every field of its entity (null when unset) and its UDF array.
pub fn fill(entity: &EntityInfo, record: &mut Value) {
    let Value::Object(m) = record else { return };
    for f in &entity.fields {
        m.entry(f.name).or_insert(Value::Null);
    }
    if let Some(udfs) = &entity.udfs {
        let have = m
            .entry("userDefinedFields")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !have.is_array() {
            *have = Value::Array(Vec::new());
        }
        if let Value::Array(list) = have {
            for u in udfs {
                let present = list.iter().any(|x| {
                    x.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(u.name))
                });
                if !present {
                    let mut o = Map::new();
                    o.insert("name".into(), Value::String(u.name.to_string()));
                    o.insert("value".into(), Value::Null);
                    list.push(Value::Object(o));
                }
            }
        }
    }
}
