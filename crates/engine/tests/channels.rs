//! Channel messages over real HTTP: the HTTP sender posts to receivers on 127.0.0.1 (axum
//! servers in the test) that check the bodies as Microsoft and Slack document them, and a
//! Standard Webhooks verifier written here from the specification checks the signature.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use psabridge_core::channels::{
    AnswerClass, ChannelKind, ChannelMessage, format_webhook_secret, parse_webhook_secret,
};
use psabridge_core::outbound::OutboundPolicy;
use psabridge_core::secret::Secret;
use psabridge_engine::channels::{ChannelTarget, HttpChannelSender, post_message};
use psabridge_psa::outbound::Outbound;
use serde_json::Value;
use sha2::Sha256;

/// One scripted answer: status, Retry-After, reply text.
type Answer = (u16, Option<&'static str>, &'static str);

#[derive(Clone, Default)]
struct Received {
    requests: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Answers to give, in order; when empty, 200 "ok".
    script: Arc<Mutex<Vec<Answer>>>,
}

async fn receive(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
    r.requests.lock().unwrap().push((headers, body));
    let next = {
        let mut s = r.script.lock().unwrap();
        if s.is_empty() {
            None
        } else {
            Some(s.remove(0))
        }
    };
    match next {
        None => (StatusCode::OK, "ok").into_response(),
        Some((status, retry_after, reply)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), reply).into_response();
            if let Some(v) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", v.parse().unwrap());
            }
            response
        }
    }
}

async fn receiver() -> (String, Received) {
    let r = Received::default();
    let app = Router::new()
        .route("/hook/{*rest}", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook/T000/B000/XXXXSECRETPATH"), r)
}

/// The sender as the demo and tests build it: enforced rules, http and 127.0.0.1 allowed.
fn sender() -> HttpChannelSender {
    let policy = OutboundPolicy {
        enforced: true,
        allow_http: true,
        allow: vec!["127.0.0.1".parse().unwrap()],
        own_ports: vec![],
        local_only: false,
    };
    HttpChannelSender::new(Outbound::new(policy), Duration::from_secs(5)).unwrap()
}

fn message(link: Option<&str>) -> ChannelMessage {
    ChannelMessage {
        event_id: "evt-42".into(),
        partner: "acme".into(),
        client: "Contoso".into(),
        event_type: "malware.detected".into(),
        severity: "high".into(),
        title: "Malware found on LAPTOP-7".into(),
        ticket_link: link.map(str::to_string),
        ticket_number: link.map(|_| "T20260101.0042".to_string()),
    }
}

fn target(kind: ChannelKind, url: &str, secret: Option<&str>) -> ChannelTarget {
    ChannelTarget {
        kind,
        url: Secret::new(url),
        signing_key: secret.map(|s| parse_webhook_secret(s).unwrap()),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Standard Webhooks verification, written from the specification: the signed content is
/// `{id}.{timestamp}.{body}`, the key is the base64 after `whsec_`, the header holds
/// space-separated `v1,<base64>` signatures, and timestamps more than 5 minutes away are
/// refused.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), &'static str> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .ok_or("missing header")
    };
    let id = h("webhook-id")?;
    let ts: i64 = h("webhook-timestamp")?
        .parse()
        .map_err(|_| "bad timestamp")?;
    if (now - ts).abs() > 300 {
        return Err("timestamp outside the tolerance");
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("bad secret")?)
        .map_err(|_| "bad secret")?;
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(&signed);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let ok = h("webhook-signature")?
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|given| given == expected);
    if ok {
        Ok(())
    } else {
        Err("no signature matches")
    }
}

#[tokio::test]
async fn teams_receives_a_message_with_an_adaptive_card() {
    let (url, r) = receiver().await;
    let out = post_message(
        &sender(),
        &target(ChannelKind::Teams, &url, None),
        &message(Some("https://psa.example.com/t/42")),
        "msg_x_1",
        now(),
    )
    .await;
    assert_eq!(out.status, Some(200));
    assert_eq!(out.class, AnswerClass::Delivered);
    let requests = r.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["type"], "message");
    let attachments = v["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    let version = card["version"].as_str().unwrap();
    let (major, minor) = version.split_once('.').unwrap();
    assert_eq!(major, "1");
    assert!(
        minor.parse::<u32>().unwrap() <= 5,
        "Teams renders Adaptive Cards up to 1.5"
    );
    for element in card["body"].as_array().unwrap() {
        match element["type"].as_str().unwrap() {
            "TextBlock" => assert!(element["text"].is_string()),
            "FactSet" => {
                for fact in element["facts"].as_array().unwrap() {
                    assert!(fact["title"].is_string() && fact["value"].is_string());
                }
            }
            other => panic!("unexpected element {other}"),
        }
    }
    let action = &card["actions"][0];
    assert_eq!(action["type"], "Action.OpenUrl");
    assert_eq!(action["url"], "https://psa.example.com/t/42");
    assert!(action["title"].is_string());
}

#[tokio::test]
async fn slack_receives_text_and_blocks_within_limits() {
    let (url, r) = receiver().await;
    let mut m = message(Some("https://psa.example.com/t/42"));
    m.title = "T".repeat(400);
    let out = post_message(
        &sender(),
        &target(ChannelKind::Slack, &url, None),
        &m,
        "id",
        now(),
    )
    .await;
    assert_eq!(out.class, AnswerClass::Delivered);
    let requests = r.requests.lock().unwrap();
    let v: Value = serde_json::from_slice(&requests[0].1).unwrap();
    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()));
    let blocks = v["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let mut seen = Vec::new();
    for block in blocks {
        let kind = block["type"].as_str().unwrap();
        seen.push(kind.to_string());
        match kind {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                let fields = block["fields"].as_array().unwrap();
                assert!(!fields.is_empty() && fields.len() <= 10);
                for f in fields {
                    assert_eq!(f["type"], "mrkdwn");
                    assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                }
            }
            "actions" => {
                let button = &block["elements"][0];
                assert_eq!(button["type"], "button");
                assert_eq!(button["text"]["type"], "plain_text");
                assert!(button["text"]["text"].as_str().unwrap().chars().count() <= 75);
                assert_eq!(button["url"], "https://psa.example.com/t/42");
            }
            "context" => {
                let elements = block["elements"].as_array().unwrap();
                assert!(!elements.is_empty() && elements.len() <= 10);
            }
            other => panic!("unexpected block {other}"),
        }
    }
    assert_eq!(seen, ["header", "section", "actions", "context"]);
}

#[tokio::test]
async fn generic_webhook_is_signed_the_standard_webhooks_way() {
    let (url, r) = receiver().await;
    let secret = format_webhook_secret(&[0x5a; 32]);
    let t = target(ChannelKind::Webhook, &url, Some(&secret));
    let at = now();
    let out = post_message(&sender(), &t, &message(None), "msg_inst_7", at).await;
    assert_eq!(out.class, AnswerClass::Delivered);
    // A retry of the same delivery keeps its webhook-id.
    post_message(&sender(), &t, &message(None), "msg_inst_7", at + 30).await;
    let requests = r.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["webhook-id"], "msg_inst_7");
    assert_eq!(requests[1].0["webhook-id"], "msg_inst_7");
    assert_eq!(verify(&secret, headers, body, now()), Ok(()));
    assert_eq!(
        verify(&secret, &requests[1].0, &requests[1].1, now()),
        Ok(())
    );
    let v: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["event"], "evt-42");
    assert_eq!(v["partner"], "acme");
    assert_eq!(v["client"], "Contoso");
    assert_eq!(v["severity"], "high");
    assert!(v["ticket"]["url"].is_null());
    // A tampered body, another secret and an old timestamp are refused by the verifier.
    let mut tampered = body.to_vec();
    tampered[2] ^= 1;
    assert_eq!(
        verify(&secret, headers, &tampered, now()),
        Err("no signature matches")
    );
    let other = format_webhook_secret(&[0x11; 32]);
    assert_eq!(
        verify(&other, headers, body, now()),
        Err("no signature matches")
    );
    assert_eq!(
        verify(&secret, headers, body, at + 301),
        Err("timestamp outside the tolerance")
    );
}

#[tokio::test]
async fn answers_429_5xx_and_400_are_classified_without_echoing_the_url() {
    let (url, r) = receiver().await;
    r.script.lock().unwrap().extend([
        (429, Some("7"), "rate_limited"),
        (503, None, "busy"),
        (
            400,
            None,
            "invalid_payload for /hook/T000/B000/XXXXSECRETPATH",
        ),
    ]);
    let t = target(ChannelKind::Slack, &url, None);
    let m = message(None);
    let first = post_message(&sender(), &t, &m, "id", now()).await;
    assert_eq!(
        first.class,
        AnswerClass::Retry {
            at_least: Some(Duration::from_secs(7)),
            reason: "HTTP 429: rate_limited".into()
        }
    );
    let second = post_message(&sender(), &t, &m, "id", now()).await;
    assert!(matches!(
        second.class,
        AnswerClass::Retry { at_least: None, .. }
    ));
    let third = post_message(&sender(), &t, &m, "id", now()).await;
    let AnswerClass::Dead { reason } = third.class else {
        panic!("400 is dead")
    };
    assert!(reason.starts_with("HTTP 400: invalid_payload"));
    assert!(!reason.contains("XXXXSECRETPATH"), "{reason}");
    let fourth = post_message(&sender(), &t, &m, "id", now()).await;
    assert_eq!(fourth.class, AnswerClass::Delivered);
}

#[tokio::test]
async fn outbound_rules_refuse_what_is_not_allowed_and_no_answer_is_retried() {
    let strict = HttpChannelSender::new(
        Outbound::new(OutboundPolicy::strict()),
        Duration::from_secs(2),
    )
    .unwrap();
    let (url, r) = receiver().await;
    let out = post_message(
        &strict,
        &target(ChannelKind::Teams, &url, None),
        &message(None),
        "id",
        now(),
    )
    .await;
    assert!(matches!(out.class, AnswerClass::Dead { .. }), "{out:?}");
    assert!(r.requests.lock().unwrap().is_empty());
    // Nothing listens on the port of a dropped listener: no answer, retried.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = format!("http://127.0.0.1:{port}/hook/x");
    let out = post_message(
        &sender(),
        &target(ChannelKind::Slack, &gone, None),
        &message(None),
        "id",
        now(),
    )
    .await;
    let AnswerClass::Retry { reason, .. } = out.class else {
        panic!("unreachable is retried")
    };
    assert!(!reason.contains(&port.to_string()), "{reason}");
}
