//! Chat and webhook channels over real HTTP, on SQLite and PostgreSQL: set up through the API
//! (every bad field named, the URL and signing secret never shown back nor audited, one
//! partner's channels invisible to another), a test message, and events delivered through the
//! outbox to local receivers that check what Microsoft Teams (Workflows), Slack (incoming
//! webhooks) and a Standard Webhooks receiver accept — a 429 with Retry-After honoured, a
//! refusal dead in the delivery log and retried from there.
//!
//! The signature is checked by a verifier written here from the Standard Webhooks
//! specification, not by the product's own code.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

mod common;
use common::Server;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
}

/// Local stand-ins for Teams, Slack and a webhook receiver on one port, each under its own
/// path; each checks the shape its service documents and answers as that service does.
/// An answer to give before the normal one: (path, status, Retry-After, body).
type Scripted = (String, u16, Option<u64>, String);

#[derive(Clone, Default)]
struct Receivers {
    got: Arc<Mutex<Vec<Received>>>,
    /// Answers to give before the normal one, per path (status, Retry-After, body).
    scripted: Arc<Mutex<Vec<Scripted>>>,
    /// Shape errors found in what was posted.
    faults: Arc<Mutex<Vec<String>>>,
}

impl Receivers {
    fn of(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    fn script(&self, path: &str, status: u16, retry_after: Option<u64>, body: &str) {
        self.scripted
            .lock()
            .unwrap()
            .push((path.into(), status, retry_after, body.into()));
    }
}

async fn receive(
    State(r): State<Receivers>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let faults = match path.as_str() {
        p if p.starts_with("/teams/") => teams_shape(&body),
        p if p.starts_with("/slack/") => slack_shape(&body),
        _ => Vec::new(),
    };
    r.faults.lock().unwrap().extend(faults);
    r.got.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        raw,
    });
    let scripted = {
        let mut s = r.scripted.lock().unwrap();
        s.iter().position(|(p, ..)| *p == path).map(|i| s.remove(i))
    };
    if let Some((_, status, retry_after, body)) = scripted {
        let mut res = (AxumStatus::from_u16(status).unwrap(), body).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return res;
    }
    match path.as_str() {
        // Slack answers "ok" in text; Teams Workflows answers 202 Accepted.
        p if p.starts_with("/slack/") => (AxumStatus::OK, "ok").into_response(),
        p if p.starts_with("/teams/") => AxumStatus::ACCEPTED.into_response(),
        _ => AxumStatus::NO_CONTENT.into_response(),
    }
}

/// What a Teams Workflows "post to a channel when a webhook request is received" flow takes:
/// a `message` whose attachments are Adaptive Cards (content type, card type, a version the
/// client renders, a body of elements).
fn teams_shape(v: &Value) -> Vec<String> {
    let mut faults = Vec::new();
    if v["type"] != "message" {
        faults.push("teams: type is not \"message\"".into());
    }
    let Some(attachments) = v["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return vec!["teams: no attachments".into()];
    };
    for a in attachments {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            faults.push("teams: attachment is not an Adaptive Card".into());
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" {
            faults.push("teams: content.type is not AdaptiveCard".into());
        }
        match card["version"].as_str() {
            Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5") => {}
            other => faults.push(format!("teams: card version {other:?}")),
        }
        let Some(body) = card["body"].as_array() else {
            faults.push("teams: card without body".into());
            continue;
        };
        for el in body {
            if !matches!(el["type"].as_str(), Some("TextBlock" | "FactSet")) {
                faults.push(format!("teams: unexpected element {}", el["type"]));
            }
        }
        for action in card["actions"].as_array().into_iter().flatten() {
            if action["type"] != "Action.OpenUrl" || !action["url"].is_string() {
                faults.push("teams: an action is not an OpenUrl with a url".into());
            }
        }
    }
    faults
}

/// What a Slack incoming webhook takes: `text` (the notification fallback) and Block Kit
/// `blocks` within the documented limits of each block type.
fn slack_shape(v: &Value) -> Vec<String> {
    let mut faults = Vec::new();
    if !v["text"].is_string() {
        faults.push("slack: no fallback text".into());
    }
    let Some(blocks) = v["blocks"].as_array() else {
        return vec!["slack: no blocks".into()];
    };
    if blocks.len() > 50 {
        faults.push("slack: more than 50 blocks".into());
    }
    let len = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(usize::MAX);
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text" || len(&b["text"]["text"]) > 150 {
                    faults.push("slack: header text must be plain_text of ≤150".into());
                }
            }
            Some("section") => {
                let fields = b["fields"].as_array().cloned().unwrap_or_default();
                if fields.len() > 10 || fields.iter().any(|f| len(&f["text"]) > 2000) {
                    faults.push("slack: section fields beyond the limits".into());
                }
            }
            Some("actions") => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    if e["type"] != "button"
                        || len(&e["text"]["text"]) > 75
                        || len(&e["url"]) > 3000
                    {
                        faults.push("slack: a button beyond the limits".into());
                    }
                }
            }
            Some("context") => {}
            other => faults.push(format!("slack: unexpected block {other:?}")),
        }
    }
    faults
}

/// The Standard Webhooks check, from the specification: the secret is `whsec_` + base64 key;
/// the signed content is `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds
/// space-separated `v1,<base64 HMAC-SHA256>` entries; the timestamp must be within 5 minutes.
fn standard_webhooks_verify(secret: &str, r: &Received) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?)
        .map_err(|e| e.to_string())?;
    let header = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("no {n} header"))
    };
    let id = header("webhook-id")?;
    let ts = header("webhook-timestamp")?;
    let sigs = header("webhook-signature")?;
    let when: i64 = ts.parse().map_err(|_| "timestamp not a number")?;
    if (chrono::Utc::now().timestamp() - when).abs() > 300 {
        return Err("timestamp outside the tolerance".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.raw);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if sigs
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        Ok(())
    } else {
        Err("no signature matches".into())
    }
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) -> Result<()> {
    for _ in 0..150 {
        if f() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

async fn channels_over_http(s: &Server) -> Result<()> {
    let receivers = Receivers::default();
    let app = Router::new()
        .fallback(post(receive))
        .with_state(receivers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let token = |p: &str| {
        let t = psabridge_web::auth::new_token();
        (
            t.clone(),
            psabridge_web::auth::token_hash(&t),
            p.to_string(),
        )
    };
    let (a_token, a_hash, _) = token("msp-a");
    s.store.create_token(&a_hash, Some("msp-a"), "a", 0).await?;
    let (b_token, b_hash, _) = token("msp-b");
    s.store.create_token(&b_hash, Some("msp-b"), "b", 0).await?;
    let chans = "/api/v1/partners/msp-a/channels";

    // Every bad field is named at once; the URL is not repeated in any error.
    let secret_path = "/slack/T000/B000/s3cr3tXYZ";
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            chans,
            Some(
                json!({"kind": "fax", "name": "  ", "url": "ftp://x/s3cr3tXYZ",
                        "event_types": ["a", "nope"]}),
            ),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let paths: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["kind", "name", "event_types[1]", "url"], "{v}");
    assert!(!v.to_string().contains("s3cr3tXYZ"), "{v}");
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            chans,
            Some(
                json!({"kind": "slack", "name": "SOC", "url": format!("{base}/slack/x"),
                        "signing_secret": "whsec_AAAA"}),
            ),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "signing_secret", "{v}");

    // Three channels: Teams, Slack and a signed webhook (its secret made and shown once).
    let mut ids = Vec::new();
    let mut webhook_secret = String::new();
    for (kind, path) in [
        ("teams", "/teams/workflow/abc"),
        ("slack", secret_path),
        ("webhook", "/hook/in"),
    ] {
        let (st, v) = s
            .bearer(
                &a_token,
                Method::POST,
                chans,
                Some(json!({"kind": kind, "name": format!("{kind} room"),
                            "url": format!("{base}{path}"), "event_types": ["a"]})),
            )
            .await?;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["url_set"], true);
        assert!(v.get("url").is_none(), "{v}");
        assert_eq!(v["signing_secret"].is_string(), kind == "webhook", "{v}");
        if kind == "webhook" {
            webhook_secret = v["signing_secret"].as_str().unwrap().to_string();
            assert!(webhook_secret.starts_with("whsec_"));
            assert_eq!(v["signing_secret_set"], true);
        }
        ids.push(v["id"].as_i64().unwrap());
    }
    // A name is unique per partner.
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            chans,
            Some(json!({"kind": "slack", "name": "slack room", "url": format!("{base}/slack/2")})),
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["errors"][0]["path"], "name", "{v}");

    // Reading back shows neither the URL nor the secret; another partner sees nothing.
    let (st, v) = s.bearer(&a_token, Method::GET, chans, None).await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["channels"].as_array().unwrap().len(), 3);
    assert!(!v.to_string().contains("s3cr3tXYZ") && !v.to_string().contains("whsec_"));
    let (st, _) = s
        .bearer(&b_token, Method::GET, &format!("{chans}/{}", ids[1]), None)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .bearer(
            &b_token,
            Method::GET,
            &format!("/api/v1/partners/msp-b/channels/{}", ids[1]),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The audit log has the changes, never the URL or the secret.
    let (_, audit) = s
        .bearer(&a_token, Method::GET, "/api/v1/partners/msp-a/audit", None)
        .await?;
    let audit = audit.to_string();
    assert!(audit.contains("channel.create"), "{audit}");
    assert!(!audit.contains("s3cr3tXYZ") && !audit.contains(&webhook_secret));

    // A test message reaches the receiver; a refusal comes back exactly, URL blanked.
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            &format!("{chans}/{}/test", ids[0]),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sent"], true, "{v}");
    assert_eq!(v["status"], 202);
    assert_eq!(receivers.of("/teams/workflow/abc").len(), 1);
    receivers.script(secret_path, 404, None, "no_service (s3cr3tXYZ)");
    let (_, v) = s
        .bearer(
            &a_token,
            Method::POST,
            &format!("{chans}/{}/test", ids[1]),
            Some(json!({"event_type": "a"})),
        )
        .await?;
    assert_eq!(v["outcome"], "refused", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 404: no_service"),
        "{v}"
    );
    assert!(!v.to_string().contains("s3cr3tXYZ"), "{v}");

    // Events through the outbox: the engine runs now.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    s.state.engine.spawn(shutdown.clone(), &tracker);
    // The webhook is busy once (429, Retry-After 1), Slack refuses once (dead, retried by hand).
    receivers.script("/hook/in", 429, Some(1), "slow down");
    receivers.script(secret_path, 403, None, "invalid_token");
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            "/api/v1/events",
            Some(
                json!({"id": "ev-1", "client": "c1", "type": "a", "severity": "high",
                        "title": "Malware <found> & quarantined"}),
            ),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_for("the teams and webhook messages", || {
        receivers.of("/teams/workflow/abc").len() == 2 && receivers.of("/hook/in").len() == 2
    })
    .await?;
    let hook = receivers.of("/hook/in");
    // Same webhook-id on the retry (receivers de-duplicate on it), each signed afresh.
    assert_eq!(
        hook[0].headers.get("webhook-id"),
        hook[1].headers.get("webhook-id")
    );
    standard_webhooks_verify(&webhook_secret, &hook[1]).map_err(anyhow::Error::msg)?;
    assert_eq!(hook[1].body["event"], "ev-1");
    assert_eq!(hook[1].body["client"], "Client 1");
    // A wrong secret does not verify (the check can fail).
    assert!(standard_webhooks_verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &hook[1]).is_err());
    let slack = receivers.of(secret_path);
    assert!(!slack.is_empty());

    // The delivery log: Teams and the webhook posted, Slack dead with Slack's answer.
    let log = |channel: &str| {
        let path = format!("/api/v1/partners/msp-a/deliveries?channel={channel}");
        let token = a_token.clone();
        async move { s.bearer(&token, Method::GET, &path, None).await }
    };
    let dead_slack = {
        let mut found = None;
        for _ in 0..100 {
            let (_, v) = log("slack").await?;
            if v["deliveries"][0]["status"] == "dead" {
                found = Some(v["deliveries"][0].clone());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        found.ok_or_else(|| anyhow::anyhow!("the Slack delivery did not die"))?
    };
    let err = dead_slack["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("HTTP 403: invalid_token"), "{dead_slack}");
    assert!(!dead_slack.to_string().contains("s3cr3tXYZ"));
    for _ in 0..50 {
        let (_, v) = log("webhook").await?;
        if v["deliveries"][0]["status"] == "delivered" {
            assert_eq!(v["deliveries"][0]["psa_action"], "posted", "{v}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Retried from the log, the Slack message goes.
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            "/api/v1/partners/msp-a/deliveries/retry",
            Some(json!({"ids": [dead_slack["id"]]})),
        )
        .await?;
    assert!(st.is_success(), "{v}");
    wait_for("the retried Slack message", || {
        receivers.of(secret_path).len() == slack.len() + 1
    })
    .await?;
    let posted = receivers.of(secret_path).last().unwrap().body.clone();
    // Slack mrkdwn is escaped; the title reads like the ticket.
    assert!(posted.to_string().contains("Client 1"), "{posted}");

    // Switched off, a channel gets nothing more; deleted, it is gone.
    let (st, v) = s
        .bearer(
            &a_token,
            Method::PATCH,
            &format!("{chans}/{}", ids[0]),
            Some(json!({"enabled": false, "url": format!("{base}/teams/workflow/new")})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["enabled"], false);
    let (st, v) = s
        .bearer(
            &a_token,
            Method::PATCH,
            &format!("{chans}/{}", ids[0]),
            Some(json!({"name": null})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            &format!("{chans}/{}/signing-secret", ids[2]),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ne!(v["signing_secret"].as_str().unwrap(), webhook_secret);
    let (st, _) = s
        .bearer(
            &a_token,
            Method::POST,
            &format!("{chans}/{}/signing-secret", ids[1]),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s
        .bearer(
            &a_token,
            Method::DELETE,
            &format!("{chans}/{}", ids[1]),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s
        .bearer(
            &a_token,
            Method::POST,
            "/api/v1/events",
            Some(json!({"id": "ev-2", "client": "c1", "type": "a", "severity": "low"})),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_for("the second webhook message", || {
        receivers.of("/hook/in").len() == 3
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        receivers.of("/teams/workflow/new").len(),
        0,
        "a switched-off channel posted"
    );
    assert_eq!(
        receivers.of(secret_path).len(),
        slack.len() + 1,
        "a deleted channel posted"
    );

    let faults = receivers.faults.lock().unwrap().clone();
    assert!(
        faults.is_empty(),
        "payloads the services would refuse: {faults:?}"
    );
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_sqlite() -> Result<()> {
    let s = Server::start(false, "channels_on_sqlite").await?.unwrap();
    let r = channels_over_http(&s).await;
    s.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_postgres() -> Result<()> {
    let Some(s) = Server::start(true, "channels_on_postgres").await? else {
        return Ok(());
    };
    let r = channels_over_http(&s).await;
    s.stop().await;
    r
}
