//! Ticket webhooks: signed callouts when a ticket is created or changes.
//!
//! A callout is a JSON POST to the webhook's `webhookUrl`, signed with HMAC-SHA1 of the exact
//! body bytes under the webhook's `secretKey`, base64-encoded, in
//! `X-Hook-Signature: sha1=<signature>`. A create calls out to webhooks subscribed to creates;
//! an update only when a subscribed field changed, to webhooks subscribed to updates. The
//! payload's `Fields` carry the (changed) subscribed fields and the display-always fields,
//! named with Autotask's casing (`Status`, `QueueID`). Failed deliveries are retried a couple
//! of times, then logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha1::Sha1;

use super::Shared;
use super::model::webhook_field_names;
use super::query::{coerce_bool, coerce_i64};

/// Sign a body as Autotask does: `sha1=<base64 HMAC-SHA1(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would only ever
    // produce a signature no receiver accepts.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return "sha1=".into();
    };
    mac.update(body);
    format!(
        "sha1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The last deliveries, for `/_sim/webhook-deliveries`.
#[derive(Default)]
pub struct DeliveryLog {
    entries: Mutex<VecDeque<Value>>,
}

const LOG_SIZE: usize = 200;

impl DeliveryLog {
    fn push(&self, v: Value) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() >= LOG_SIZE {
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
}

struct Callout {
    hook_id: i64,
    url: String,
    secret: String,
    body: String,
    sequence: u64,
}

/// A change of a ticket, for webhooks.
pub struct TicketChange<'a> {
    /// `Create` or `Update`.
    pub action: &'static str,
    pub before: Option<&'a Value>,
    pub after: &'a Value,
    /// The resource that made the change (`PersonID`).
    pub person: i64,
}

/// Call out to every webhook interested in this change. With `wait`, the callouts are
/// delivered (or given up) before this returns.
pub async fn ticket_changed(s: &Arc<Shared>, change: TicketChange<'_>, wait: bool) {
    let callouts = plan(s, &change);
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

fn plan(s: &Shared, change: &TicketChange<'_>) -> Vec<Callout> {
    let names = webhook_field_names(s.config.status_webhook_field_id);
    let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
    let hooks: Vec<Value> = db
        .table("TicketWebhooks")
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for hook in hooks {
        let flag = |k: &str| hook.get(k).and_then(coerce_bool).unwrap_or(false);
        let subscribed = match change.action {
            "Create" => flag("isSubscribedToCreateEvents"),
            "Delete" => flag("isSubscribedToDeleteEvents"),
            _ => flag("isSubscribedToUpdateEvents"),
        };
        if !flag("isActive") || !subscribed {
            continue;
        }
        let Some(hook_id) = hook.get("id").and_then(coerce_i64) else {
            continue;
        };
        let fields = db.children_of("TicketWebhookFields", hook_id);
        let pick = |k: &str| -> Vec<(&'static str, &'static str)> {
            fields
                .iter()
                .filter(|f| f.get(k).and_then(coerce_bool).unwrap_or(false))
                .filter_map(|f| {
                    f.get("fieldID")
                        .and_then(coerce_i64)
                        .and_then(|id| names.get(&id).copied())
                })
                .collect()
        };
        let subscribed_fields = pick("isSubscribedField");
        let always = pick("isDisplayAlwaysField");
        let changed: Vec<(&str, &str)> = match change.action {
            "Update" => subscribed_fields
                .iter()
                .copied()
                .filter(|(_, key)| {
                    change.before.and_then(|b| b.get(*key)) != change.after.get(*key)
                })
                .collect(),
            _ => subscribed_fields.clone(),
        };
        if change.action == "Update" && changed.is_empty() {
            continue;
        }
        let mut payload_fields = Map::new();
        for (name, key) in changed.iter().chain(always.iter()) {
            payload_fields.insert(
                (*name).to_string(),
                change.after.get(*key).cloned().unwrap_or(Value::Null),
            );
        }
        db.webhook_seq += 1;
        let sequence = db.webhook_seq;
        let body = json!({
            "Action": change.action,
            "Guid": hook.get("webhookGUID").cloned().unwrap_or(Value::Null),
            "EntityType": "Ticket",
            "Id": change.after.get("id").cloned().unwrap_or(Value::Null),
            "Fields": payload_fields,
            "EventTime": super::now_text(),
            "SequenceNumber": sequence,
            "PersonID": change.person,
        })
        .to_string();
        out.push(Callout {
            hook_id,
            url: hook
                .get("webhookUrl")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            secret: hook
                .get("secretKey")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            body,
            sequence,
        });
    }
    if !out.is_empty() {
        s.mark_dirty();
    }
    out
}

async fn deliver(s: &Shared, c: Callout) {
    let sig = signature(&c.secret, c.body.as_bytes());
    let attempts = 1 + s.config.webhook_retries;
    let mut last = json!(null);
    for attempt in 1..=attempts {
        let r = s
            .http
            .post(&c.url)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Hook-Signature", &sig)
            .body(c.body.clone())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                s.deliveries.push(
                    json!({"webhookID": c.hook_id, "url": c.url, "sequenceNumber": c.sequence,
                    "attempts": attempt, "delivered": true, "status": resp.status().as_u16()}),
                );
                return;
            }
            Ok(resp) => last = json!(resp.status().as_u16()),
            Err(e) => last = json!(e.to_string()),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        }
    }
    tracing::warn!(url = %c.url, "a webhook callout was not accepted");
    s.deliveries.push(
        json!({"webhookID": c.hook_id, "url": c.url, "sequenceNumber": c.sequence,
        "attempts": attempts, "delivered": false, "last": last}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha1() {
        // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog") is well known.
        let s = signature("key", b"The quick brown fox jumps over the lazy dog");
        let hex: String = base64::engine::general_purpose::STANDARD
            .decode(&s[5..])
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
        assert!(s.starts_with("sha1="));
    }
}
