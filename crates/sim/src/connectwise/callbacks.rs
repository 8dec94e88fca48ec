//! `system/callbacks`: subscriptions to record changes, and the signed callouts they cause.
//!
//! A callback is a record like any other (`url`, `objectId`, `type`, `level`, `description`,
//! `inactiveFlag`), listed, counted, filtered and paged as the other collections are. When a
//! ticket is added or updated (through the API or by a technician), every active `Ticket`
//! callback is called: a JSON POST whose `Entity` is the ticket as the API shows it, itself
//! JSON in a string, and whose `Metadata.key_url` says where the callback's signing key is
//! (`GET …/system/callbacks/{id}/signingKey` → `{"signing_key": …}`, authenticated like any
//! call). The body is signed in `x-content-signature`: base64 of HMAC-SHA256 of the exact body
//! bytes under that key. Failed callouts are tried twice more, then logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde_json::{Value, json};

use super::Shared;
use super::errors::{ApiError, FieldError};
use super::store::*;

pub const CALLBACKS: &str = "callbacks";
/// The signing key of a callback (never shown by the API).
const KEY: &str = "__signingKey";

/// Sign a body as ConnectWise does: base64 of HMAC-SHA256(key, body).
pub fn signature(key: &str, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::one(
        "callback",
        FieldError::new("InvalidField", field, message.to_string()),
    )
}

fn required_text(body: &Value, field: &str) -> Result<String, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::one(
                "callback",
                FieldError::new("Required", field, format!("{field} is required.")),
            )
        })
}

/// Check and complete a callback record from a create or replace body.
fn record(db: &Db, id: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    let url = required_text(body, "url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid("url", "url must be an http or https URL."));
    }
    let kind = required_text(body, "type")?;
    let level = required_text(body, "level")?;
    let object_id = body
        .get("objectId")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("objectId", "objectId is required."))?;
    let mut info = db.info(member, None);
    info.insert(
        "callback_href".into(),
        json!(db.href(&format!("system/callbacks/{id}"))),
    );
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    Ok(json!({
        "id": id,
        "description": body.get("description").and_then(Value::as_str).unwrap_or(""),
        "url": url,
        "objectId": object_id,
        "type": kind,
        "level": level,
        "memberId": db.member_by_identifier(member).and_then(id_of),
        "payloadVersion": body.get("payloadVersion").cloned().unwrap_or(Value::Null),
        "inactiveFlag": body.get("inactiveFlag").and_then(Value::as_bool).unwrap_or(false),
        "isSoapCallbackFlag": false,
        "isSelfSuppressedFlag": false,
        "_info": info,
        KEY: key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    }))
}

/// `POST system/callbacks`.
pub fn create(db: &mut Db, body: &Value, member: &str) -> Result<Value, ApiError> {
    let id = db.next_id(CALLBACKS, 1);
    let r = record(db, id, body, member)?;
    db.put(CALLBACKS, r.clone());
    Ok(clean(&r))
}

/// `PUT system/callbacks/{id}` (the key stays).
pub fn replace(db: &mut Db, id: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(prev) = db.get(CALLBACKS, id).cloned() else {
        return Err(ApiError::NotFound(format!(
            "Callback with id {id} was not found."
        )));
    };
    let mut r = record(db, id, body, member)?;
    r[KEY] = prev[KEY].clone();
    db.put(CALLBACKS, r.clone());
    Ok(clean(&r))
}

/// `PATCH system/callbacks/{id}`: JSON Patch `replace` of top-level fields.
pub fn patch(db: &mut Db, id: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(prev) = db.get(CALLBACKS, id).cloned() else {
        return Err(ApiError::NotFound(format!(
            "Callback with id {id} was not found."
        )));
    };
    let mut draft = clean(&prev);
    let ops = match body {
        Value::Array(a) => a.clone(),
        _ => {
            return Err(ApiError::BadRequest(
                "The request body must be a JSON Patch array.".into(),
            ));
        }
    };
    for op in ops {
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('/');
        if path.is_empty() || path.contains('/') || path == "id" {
            return Err(ApiError::BadRequest(format!(
                "The path '{path}' cannot be patched."
            )));
        }
        draft[path] = op.get("value").cloned().unwrap_or(Value::Null);
    }
    replace(db, id, &draft, member)
}

/// `GET system/callbacks/{id}/signingKey`.
pub fn signing_key(db: &Db, id: i64) -> Option<Value> {
    db.get(CALLBACKS, id)
        .map(|c| json!({ "signing_key": c[KEY] }))
}

/// The last callouts, for `/_sim/callback-deliveries`.
#[derive(Default)]
pub struct DeliveryLog {
    entries: Mutex<VecDeque<Value>>,
}

impl DeliveryLog {
    fn push(&self, v: Value) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() >= 200 {
            e.pop_front();
        }
        e.push_back(v);
    }

    pub fn list(&self) -> Vec<Value> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

struct Callout {
    callback_id: i64,
    url: String,
    key: String,
    body: String,
}

/// Call every active ticket callback about ticket `id` (`action`: `added`, `updated`,
/// `deleted`). With `wait`, the callouts are delivered (or given up) before this returns.
pub async fn ticket_changed(s: &Arc<Shared>, id: i64, action: &str, member: &str, wait: bool) {
    let callouts = plan(s, id, action, member);
    for c in callouts {
        let s2 = s.clone();
        let send = async move { deliver(&s2, c).await };
        if wait {
            send.await;
        } else {
            tokio::spawn(send);
        }
    }
}

fn plan(s: &Shared, id: i64, action: &str, member: &str) -> Vec<Callout> {
    let db = s.db();
    let entity = db
        .get(TICKETS, id)
        .map(|t| db.ticket_out(t).to_string())
        .unwrap_or_default();
    db.table(CALLBACKS)
        .values()
        .filter(|c| !flag(c, "inactiveFlag"))
        .filter(|c| text(c, "type").eq_ignore_ascii_case("ticket"))
        .filter_map(|c| {
            let cid = id_of(c)?;
            let body = json!({
                "MessageId": format!("{cid}-{id}-{}", chrono::Utc::now().timestamp_micros()),
                "FromUrl": s.base_url,
                "CompanyId": s.config.company_id,
                "MemberId": member,
                "Action": action,
                "Type": "ticket",
                "ID": id,
                "ProductInstanceId": null,
                "PartnerId": null,
                "Entity": entity,
                "Metadata": {
                    "key_url": format!("{}/system/callbacks/{cid}/signingKey", s.api_base()),
                },
                "CallbackObjectRecId": cid,
            });
            Some(Callout {
                callback_id: cid,
                url: text(c, "url"),
                key: c.get(KEY).and_then(Value::as_str)?.to_string(),
                body: body.to_string(),
            })
        })
        .collect()
}

async fn deliver(s: &Shared, c: Callout) {
    let client = reqwest::Client::new();
    let sig = signature(&c.key, c.body.as_bytes());
    let mut outcome = String::new();
    let mut attempts = 0;
    for attempt in 0..3u32 {
        attempts = attempt + 1;
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        let r = client
            .post(&c.url)
            .header("content-type", "application/json")
            .header("x-content-signature", &sig)
            .body(c.body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                outcome = resp.status().as_u16().to_string();
                break;
            }
            Ok(resp) => outcome = resp.status().as_u16().to_string(),
            Err(e) => outcome = format!("error: {e}"),
        }
    }
    s.callouts.push(json!({
        "callback_id": c.callback_id,
        "url": c.url,
        "attempts": attempts,
        "outcome": outcome,
    }));
}
