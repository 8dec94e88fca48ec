//! `/api/Webhook`: outgoing webhooks, and the callouts they make when a ticket's status
//! changes.
//!
//! A webhook (`id` a uuid, `name`, `url`, `authentication_type` 0 none / 1 basic,
//! `basic_username`, `basic_password`, `active`, `events`) is written like other Halo records:
//! `POST /api/Webhook` with a JSON array creates, or updates the one whose `id` is given, and
//! answers the record (an object for one element); `GET /api/Webhook` lists them (a bare
//! array), `GET`/`DELETE /api/Webhook/{id}`. The password is write-only: never answered.
//! When a ticket's status changes (an API write or a technician), each active webhook is sent
//! a JSON POST with the ticket as the API shows it (`{"event", "webhook_id", "ticket"}`),
//! with Basic authentication when the webhook has it. Failed callouts are tried twice more.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Shared;
use super::errors;

/// The event we call out for.
pub const STATUS_EVENT: &str = "Ticket Status Changed";

/// The webhooks, in creation order.
#[derive(Default)]
pub struct Webhooks {
    hooks: Mutex<Vec<Value>>,
    log: Mutex<VecDeque<Value>>,
    counter: Mutex<u64>,
}

impl Webhooks {
    fn hooks(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn clear(&self) {
        self.hooks().clear();
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The last callouts, for `/_sim/webhook-deliveries`.
    pub fn deliveries(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn logged(&self, v: Value) {
        let mut l = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() >= 200 {
            l.pop_front();
        }
        l.push_back(v);
    }

    fn new_id(&self) -> String {
        let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        *c += 1;
        format!("5e1f0000-0000-4000-8000-{:012x}", *c)
    }
}

/// A webhook as the API answers it (no password).
fn out(h: &Value) -> Value {
    let mut h = h.clone();
    if let Some(m) = h.as_object_mut() {
        m.remove("basic_password");
    }
    h
}

/// `/api/Webhook[/{id}]` (`rest` after `Webhook`).
pub fn dispatch(s: &Shared, method: &str, rest: &[String], body: &[u8]) -> Response {
    match (method, rest) {
        ("GET", []) => {
            let list: Vec<Value> = s.webhooks.hooks().iter().map(out).collect();
            axum::Json(Value::Array(list)).into_response()
        }
        ("GET", [id]) => match s
            .webhooks
            .hooks()
            .iter()
            .find(|h| h["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        {
            Some(h) => axum::Json(out(h)).into_response(),
            None => errors::not_found("Webhook", id),
        },
        ("DELETE", [id]) => {
            let mut hooks = s.webhooks.hooks();
            let before = hooks.len();
            hooks.retain(|h| !h["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)));
            if hooks.len() == before {
                errors::not_found("Webhook", id)
            } else {
                StatusCode::OK.into_response()
            }
        }
        ("POST", []) => write(s, body),
        _ => errors::message(
            StatusCode::METHOD_NOT_ALLOWED,
            "The requested resource does not support this HTTP method.",
        ),
    }
}

fn write(s: &Shared, body: &[u8]) -> Response {
    let Ok(Value::Array(elements)) = serde_json::from_slice::<Value>(body) else {
        return errors::invalid("The request body must be a JSON array of records.");
    };
    if elements.is_empty() {
        return errors::invalid("The request body contains no records.");
    }
    let mut hooks = s.webhooks.hooks();
    let mut saved = Vec::new();
    for e in elements {
        let Value::Object(m) = e else {
            return errors::invalid("Each element of the request body must be a JSON object.");
        };
        let id = m.get("id").and_then(Value::as_str).map(str::to_string);
        let existing = id.as_ref().and_then(|id| {
            hooks
                .iter()
                .position(|h| h["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        });
        let mut record: Map<String, Value> = match existing {
            Some(i) => hooks[i].as_object().cloned().unwrap_or_default(),
            None => {
                if id.is_some() {
                    return errors::not_found("Webhook", id.as_deref().unwrap_or(""));
                }
                let mut r = Map::new();
                r.insert("id".into(), json!(s.webhooks.new_id()));
                r.insert("active".into(), json!(true));
                r.insert("authentication_type".into(), json!(0));
                r.insert("method".into(), json!(0));
                r.insert("content_type".into(), json!("application/json"));
                r
            }
        };
        for (k, v) in m {
            if k != "id" {
                record.insert(k, v);
            }
        }
        let url = record.get("url").and_then(Value::as_str).unwrap_or("");
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return errors::invalid("A webhook needs a url (http or https).");
        }
        if record
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return errors::invalid("A webhook needs a name.");
        }
        if record["authentication_type"].as_i64() == Some(1)
            && record
                .get("basic_password")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return errors::invalid("Basic authentication needs a username and a password.");
        }
        let record = Value::Object(record);
        match existing {
            Some(i) => hooks[i] = record.clone(),
            None => hooks.push(record.clone()),
        }
        saved.push(out(&record));
    }
    if saved.len() == 1 {
        axum::Json(saved.remove(0)).into_response()
    } else {
        axum::Json(Value::Array(saved)).into_response()
    }
}

struct Callout {
    url: String,
    basic: Option<(String, String)>,
    body: String,
}

/// Call every active webhook about ticket `ticket` (as the API shows it). With `wait`, the
/// callouts are delivered (or given up) before this returns.
pub async fn status_changed(s: &Arc<Shared>, ticket: Value, wait: bool) {
    let callouts: Vec<Callout> = s
        .webhooks
        .hooks()
        .iter()
        .filter(|h| h["active"].as_bool().unwrap_or(true))
        .map(|h| Callout {
            url: h["url"].as_str().unwrap_or_default().to_string(),
            basic: (h["authentication_type"].as_i64() == Some(1)).then(|| {
                (
                    h["basic_username"].as_str().unwrap_or_default().to_string(),
                    h["basic_password"].as_str().unwrap_or_default().to_string(),
                )
            }),
            body: json!({
                "event": STATUS_EVENT,
                "webhook_id": h["id"],
                "ticket": ticket,
            })
            .to_string(),
        })
        .collect();
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

async fn deliver(s: &Shared, c: Callout) {
    let client = reqwest::Client::new();
    let mut outcome = String::new();
    let mut attempts = 0;
    for attempt in 0..3u32 {
        attempts = attempt + 1;
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        let mut req = client
            .post(&c.url)
            .header("content-type", "application/json")
            .body(c.body.clone())
            .timeout(Duration::from_secs(10));
        if let Some((u, p)) = &c.basic {
            req = req.basic_auth(u, Some(p));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                outcome = r.status().as_u16().to_string();
                break;
            }
            Ok(r) => outcome = r.status().as_u16().to_string(),
            Err(e) => outcome = format!("error: {e}"),
        }
    }
    s.webhooks
        .logged(json!({"url": c.url, "attempts": attempts, "outcome": outcome}));
}
