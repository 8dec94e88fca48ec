//! Assets (configuration items; `Device` in Halo's schema) as Halo keeps them.
//!
//! - `GET /api/Asset` filters by `client_id`, `site_id`, `assettype_id`, `inventory_number`
//!   and `search` (over the inventory number and key fields); inactive assets only with
//!   `includeinactive=true`; answers `{"record_count", "assets": [...]}`, paged like every
//!   wrapped list. Halo does not document whether `inventory_number` matches exactly or as a
//!   substring: the simulator matches it exactly, case-insensitively (the asset tag is unique
//!   in a tenant), and `search` by substring.
//! - `GET /api/Asset/{id}` answers the record (inactive ones too), 404 when there is none.
//! - `POST /api/Asset` takes an array of assets: an element without an `id` creates one, one
//!   with the `id` of an asset changes the fields it carries. An asset belongs to a site:
//!   without `site_id` Halo files it at the client's main site; a site of another client, an
//!   unknown or inactive asset type, or an unknown client is refused with 400 and Halo's
//!   bare-string message. Halo documents no answer for an `id` that names no asset: the
//!   simulator refuses it like the other records it writes ("Asset 5 does not exist.").
//! - `DELETE /api/Asset/{id}` removes the asset (a technician deleting it).
//!
//! `client_name`, `site_name` and `assettype_name` are filled by Halo from the ids.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{Params, id_of, wrap, write};
use super::store::Db;
use super::{Config, Shared, errors};

/// The simulator's answer to an asset route, or `None` when the request is not one.
pub fn dispatch(
    s: &Shared,
    method: &str,
    resource: &str,
    segs: &[String],
    params: &Params,
    body: &Bytes,
) -> Option<Response> {
    if resource != "Asset" {
        return None;
    }
    match (method, segs.len()) {
        ("GET", 1) => Some(list(s, params)),
        ("POST", 1) => Some(write(s, body, write_asset)),
        ("DELETE", 2) => Some(delete(s, &segs[1])),
        _ => None,
    }
}

/// The fields the simulator keeps of an asset; like Halo it drops the ones it does not know.
const ASSET_FIELDS: &[&str] = &[
    "id",
    "client_id",
    "client_name",
    "site_id",
    "site_name",
    "assettype_id",
    "assettype_name",
    "inventory_number",
    "key_field",
    "key_field2",
    "key_field3",
    "ethernetMacAddress",
    "notes",
    "inactive",
];

fn lower(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

fn list(s: &Shared, p: &Params) -> Response {
    let eq = |v: &Value, param: &str, field: &str| {
        p.int(param)
            .is_none_or(|want| id_of(&v[field]) == Some(want))
    };
    let with_inactive = p.flag("includeinactive") == Some(true);
    let tag = p.get("inventory_number").map(str::to_lowercase);
    let search = p.get("search").map(str::to_lowercase);
    let db = s.db();
    let assets: Vec<Value> = db
        .table("Asset")
        .values()
        .filter(|a| {
            eq(a, "client_id", "client_id")
                && eq(a, "site_id", "site_id")
                && eq(a, "assettype_id", "assettype_id")
                && (with_inactive || a["inactive"].as_bool() != Some(true))
                && tag
                    .as_ref()
                    .is_none_or(|t| lower(a, "inventory_number") == *t)
                && search.as_ref().is_none_or(|q| {
                    ["inventory_number", "key_field", "key_field2", "key_field3"]
                        .iter()
                        .any(|k| lower(a, k).contains(q))
                })
        })
        .cloned()
        .collect();
    axum::Json(wrap(assets, "assets", p, s.config.default_page_size)).into_response()
}

fn delete(s: &Shared, id: &str) -> Response {
    let Ok(id) = id.trim().parse::<i64>() else {
        return errors::invalid(format!("The value '{id}' is not valid for id."));
    };
    let mut db = s.db();
    match db.records.get_mut("Asset").and_then(|t| t.remove(&id)) {
        Some(_) => StatusCode::OK.into_response(),
        None => errors::not_found("Asset", &id.to_string()),
    }
}

fn write_asset(
    _config: &Config,
    db: &mut Db,
    m: Map<String, Value>,
    _now: &str,
) -> Result<Value, String> {
    let id = m.get("id").and_then(id_of).filter(|id| *id > 0);
    let mut record = match id {
        Some(id) => db
            .get("Asset", id)
            .and_then(Value::as_object)
            .cloned()
            .ok_or(format!("Asset {id} does not exist."))?,
        None => Map::new(),
    };
    for (k, v) in m {
        record.insert(k, v);
    }
    let client_id = record
        .get("client_id")
        .and_then(id_of)
        .ok_or("An asset needs a client_id.")?;
    let client = db
        .get("Client", client_id)
        .cloned()
        .ok_or(format!("Client {client_id} does not exist."))?;
    let site_id = match record.get("site_id").and_then(id_of).filter(|s| *s > 0) {
        Some(s) => s,
        None => client["main_site_id"]
            .as_i64()
            .ok_or(format!("Client {client_id} has no main site."))?,
    };
    let site = db
        .get("Site", site_id)
        .cloned()
        .ok_or(format!("Site {site_id} does not exist."))?;
    if id_of(&site["client_id"]) != Some(client_id) {
        return Err(format!(
            "Site {site_id} does not belong to client {client_id}."
        ));
    }
    let type_id = record
        .get("assettype_id")
        .and_then(id_of)
        .filter(|t| *t > 0)
        .ok_or("An asset needs an assettype_id.")?;
    let asset_type = db
        .list("AssetType")
        .iter()
        .find(|t| id_of(&t["id"]) == Some(type_id) && t["inactive"].as_bool() != Some(true))
        .cloned()
        .ok_or(format!(
            "The value {type_id} is not valid for assettype_id: there is no active asset type with that id."
        ))?;
    let id = id.unwrap_or_else(|| db.next_id("Asset"));
    record.insert("id".into(), json!(id));
    record.insert("client_id".into(), json!(client_id));
    record.insert("client_name".into(), client["name"].clone());
    record.insert("site_id".into(), json!(site_id));
    record.insert("site_name".into(), site["name"].clone());
    record.insert("assettype_id".into(), json!(type_id));
    record.insert("assettype_name".into(), asset_type["name"].clone());
    if record.get("inactive").is_none_or(Value::is_null) {
        record.insert("inactive".into(), json!(false));
    }
    record.retain(|k, _| ASSET_FIELDS.contains(&k.as_str()));
    let v = Value::Object(record);
    db.put("Asset", id, v.clone());
    Ok(v)
}
