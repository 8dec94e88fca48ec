//! Ticket webhooks: signed callouts when a ticket is created, updated or deleted.
//!
//! A callout is a JSON POST to the webhook's URL, signed with HMAC-SHA1 of the exact body
//! under the webhook's secret key, base64, in `X-Hook-Signature: sha1=<signature>`. An update
//! calls out only when a subscribed field changed; the payload carries the subscribed and
//! the display-always fields.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha1::Sha1;

use super::data::{ids, webhook_field_names};
use super::query::{coerce_bool, coerce_i64, field};
use super::{Shared, now_text};

struct Callout {
    url: String,
    secret: String,
    body: String,
}

/// Sign a body as Autotask does.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!(
        "sha1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Call out to every webhook interested in this change of a ticket. With `wait`, the callouts
/// are delivered (or given up) before this returns.
pub async fn ticket_changed(
    s: &Arc<Shared>,
    action: &str,
    before: Option<&Value>,
    after: &Value,
    wait: bool,
) {
    let names = webhook_field_names(s.config.status_webhook_field_id);
    let callouts: Vec<Callout> = {
        let mut db = s.db.lock().unwrap_or_else(|p| p.into_inner());
        let hooks: Vec<Value> = db
            .records
            .get("TicketWebhooks")
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let fields: Vec<Value> = db
            .records
            .get("TicketWebhookFields")
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for hook in hooks {
            let flag = |k: &str| field(&hook, k).and_then(coerce_bool).unwrap_or(false);
            let subscribed = match action {
                "Create" => flag("isSubscribedToCreateEvents"),
                "Delete" => flag("isSubscribedToDeleteEvents"),
                _ => flag("isSubscribedToUpdateEvents"),
            };
            if !flag("isActive") || !subscribed {
                continue;
            }
            let hook_id = field(&hook, "id").and_then(coerce_i64);
            let mine: Vec<&Value> = fields
                .iter()
                .filter(|f| field(f, "webhookID").and_then(coerce_i64) == hook_id)
                .collect();
            let pick = |k: &str| -> Vec<&'static str> {
                mine.iter()
                    .filter(|f| field(f, k).and_then(coerce_bool).unwrap_or(false))
                    .filter_map(|f| {
                        field(f, "fieldID")
                            .and_then(coerce_i64)
                            .and_then(|id| names.get(&id).copied())
                    })
                    .collect()
            };
            let subscribed_fields = pick("isSubscribedField");
            let always = pick("isDisplayAlwaysField");
            if action == "Update" {
                let changed = subscribed_fields
                    .iter()
                    .any(|name| before.and_then(|b| field(b, name)) != field(after, name));
                if !changed {
                    continue;
                }
            }
            let mut payload_fields = Map::new();
            for name in subscribed_fields.iter().chain(always.iter()) {
                payload_fields.insert(
                    (*name).to_string(),
                    field(after, name).cloned().unwrap_or(Value::Null),
                );
            }
            db.webhook_seq += 1;
            let body = json!({
                "Action": action,
                "Guid": field(&hook, "webhookGUID").cloned().unwrap_or(Value::Null),
                "EntityType": "Ticket",
                "Id": field(after, "id").cloned().unwrap_or(Value::Null),
                "Fields": payload_fields,
                "EventTime": now_text(),
                "SequenceNumber": db.webhook_seq,
                "PersonID": ids::API_RESOURCE,
            })
            .to_string();
            out.push(Callout {
                url: field(&hook, "webhookUrl")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                secret: field(&hook, "secretKey")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                body,
            });
        }
        out
    };
    for c in callouts {
        let http = s.http.clone();
        let send = async move {
            let sig = signature(&c.secret, c.body.as_bytes());
            for attempt in 0..3u32 {
                let r = http
                    .post(&c.url)
                    .header("Content-Type", "application/json")
                    .header("X-Hook-Signature", &sig)
                    .body(c.body.clone())
                    .send()
                    .await;
                if matches!(&r, Ok(resp) if resp.status().is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
            }
            tracing::warn!(url = %c.url, "a webhook callout was not accepted");
        };
        if wait {
            send.await;
        } else {
            tokio::spawn(send);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_format() {
        let s = signature("key", b"{}");
        assert!(s.starts_with("sha1="));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&s[5..])
                .unwrap()
                .len(),
            20
        );
    }
}
