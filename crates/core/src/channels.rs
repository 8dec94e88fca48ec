//! Chat and webhook channels' decisions: which channels an event goes to, the message each
//! receiver is sent (Microsoft Teams Adaptive Card, Slack Block Kit, a signed JSON webhook),
//! the Standard Webhooks signature, and what a receiver's answer means for the delivery.
//!
//! These are the pure parts of the channels beside PSA tickets and email. Nothing here sends
//! anything: a sender at the edge posts the body built here and hands the answer back to
//! [`classify_answer`].

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::render::truncate;

/// The connection id of every channel delivery, like email's: no PSA connection has it, so a
/// paused PSA never holds a chat message back.
pub const CHANNEL_CONNECTION_ID: i64 = 0;

/// Receivers refuse a Standard Webhooks message whose timestamp is further than this from their
/// clock (the spec's suggested tolerance; we document it to receivers as the replay window).
pub const WEBHOOK_TOLERANCE_SECS: i64 = 5 * 60;

/// Prefix of a Standard Webhooks signing secret; the rest is the key in base64.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// Slack's documented limits for the blocks we send.
pub mod slack_limits {
    /// `header` block: plain_text, at most 150 characters.
    pub const HEADER_TEXT: usize = 150;
    /// Each of a `section` block's `fields`: at most 2000 characters.
    pub const SECTION_FIELD: usize = 2000;
    /// A `section` block holds at most 10 fields.
    pub const SECTION_FIELDS: usize = 10;
    /// A `section` block's `text`: at most 3000 characters.
    pub const SECTION_TEXT: usize = 3000;
    /// A `button`'s text: at most 75 characters.
    pub const BUTTON_TEXT: usize = 75;
    /// A `button`'s url: at most 3000 characters.
    pub const BUTTON_URL: usize = 3000;
    /// The top-level fallback `text`: Slack truncates beyond 40,000; we stay well under.
    pub const FALLBACK_TEXT: usize = 3000;
}

/// The Adaptive Card schema version sent to Teams (1.4 renders in Teams Workflows posts).
pub const ADAPTIVE_CARD_VERSION: &str = "1.4";

/// The kinds of channel a partner can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    /// A Microsoft Teams Workflows (Power Automate) incoming webhook.
    Teams,
    /// A Slack incoming webhook.
    Slack,
    /// Any HTTPS receiver, signed the Standard Webhooks way.
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Teams, ChannelKind::Slack, ChannelKind::Webhook];

    /// The name used in the API and in `deliveries.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Teams => "teams",
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Only the generic webhook signs, so only it has a signing secret.
    pub fn signs(self) -> bool {
        self == ChannelKind::Webhook
    }
}

/// The group key of a channel delivery: unique per channel and event, so a message never waits
/// behind another delivery (nor behind a PSA group).
pub fn channel_group_key(partner: &str, channel_id: i64, event_id: &str) -> String {
    format!("channel:{partner}:{channel_id}:{event_id}")
}

/// One channel as routing sees it: its id, whether it is on, and the event types it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSubscription {
    pub channel_id: i64,
    pub kind: ChannelKind,
    pub enabled: bool,
    pub event_types: BTreeSet<String>,
}

/// Which channels get an event of `event_type`: the enabled ones that list the type, in id order
/// (the same shape as email: per event type, beside the ticket or alone).
pub fn channels_for(subscriptions: &[ChannelSubscription], event_type: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = subscriptions
        .iter()
        .filter(|s| s.enabled && s.event_types.contains(event_type))
        .map(|s| s.channel_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What a channel message says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMessage {
    pub event_id: String,
    pub partner: String,
    pub client: String,
    pub event_type: String,
    pub severity: String,
    pub title: String,
    /// A link to the PSA ticket, when the event's ticket exists and its URL is known.
    pub ticket_link: Option<String>,
    /// The ticket's number as the PSA shows it, when known.
    pub ticket_number: Option<String>,
}

/// The message of one event: the ticket's title (from the event type's template, so a message
/// reads like the ticket beside it), a resolution marked as such, and the ticket once known.
pub fn event_message(
    partner: &str,
    event: &crate::event::NewEvent,
    event_type: Option<&crate::catalog::EventType>,
    client_name: Option<&str>,
    ticket: Option<&LinkedTicket>,
) -> ChannelMessage {
    let ctx = crate::render::TemplateContext {
        event,
        event_type,
        client_name,
    };
    let title = match event.action {
        crate::event::Action::Trigger => ctx.ticket_title(),
        crate::event::Action::Resolve => format!("Resolved: {}", ctx.ticket_title()),
    };
    ChannelMessage {
        event_id: event.id.clone(),
        partner: partner.to_string(),
        client: client_name.unwrap_or(&event.client).to_string(),
        event_type: event.event_type.clone(),
        severity: event.severity.as_str().to_string(),
        title,
        ticket_link: ticket.and_then(|t| t.link.clone()),
        ticket_number: ticket.and_then(|t| t.number.clone()),
    }
}

/// The PSA ticket an event went to, as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedTicket {
    /// The number people know it by (the id when the PSA shows no other).
    pub number: Option<String>,
    /// Where it opens in the PSA's own screens, when the PSA has such an address.
    pub link: Option<String>,
}

/// One PSA delivery of the event a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaSide {
    /// It will not make or find a ticket by itself any more (delivered, dead, expired).
    pub settled: bool,
    /// The ticket it created or noted, once it did.
    pub ticket: Option<LinkedTicket>,
}

/// Whether to send a message now or wait for its event's ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDecision {
    /// Send, with the ticket when there is one.
    Send(Option<LinkedTicket>),
    /// The event's ticket is still being made: look again later.
    Wait,
}

/// A message carries a link to its event's ticket once the ticket exists. The PSA side of an
/// event is usually done within seconds, so a message waits for it, but never longer than
/// `wait_ms` after the event was accepted (a PSA that is down or rationed must not silence
/// chat): after that it goes without the link. An event with no PSA delivery (email- or
/// chat-only types) sends at once.
pub fn link_decision(psa: &[PsaSide], age_ms: i64, wait_ms: i64) -> LinkDecision {
    if let Some(ticket) = psa.iter().find_map(|p| p.ticket.clone()) {
        return LinkDecision::Send(Some(ticket));
    }
    if psa.iter().any(|p| !p.settled) && age_ms < wait_ms {
        return LinkDecision::Wait;
    }
    LinkDecision::Send(None)
}

/// Escape text for Slack mrkdwn (`&`, `<`, `>` are the only characters Slack asks to escape).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Teams Workflows body: a `message` with one Adaptive Card attachment.
pub fn teams_payload(m: &ChannelMessage) -> Value {
    let mut facts = vec![
        json!({"title": "Client", "value": m.client}),
        json!({"title": "Type", "value": m.event_type}),
        json!({"title": "Severity", "value": m.severity}),
        json!({"title": "Event", "value": m.event_id}),
    ];
    if let Some(number) = &m.ticket_number {
        facts.push(json!({"title": "Ticket", "value": number}));
    }
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": [
            {"type": "TextBlock", "text": truncate(&m.title, 500), "weight": "Bolder",
             "size": "Medium", "wrap": true},
            {"type": "FactSet", "facts": facts},
        ],
    });
    if let Some(link) = &m.ticket_link {
        content["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open ticket", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

/// The Slack incoming-webhook body: fallback `text` and Block Kit `blocks`, within Slack's limits.
pub fn slack_payload(m: &ChannelMessage) -> Value {
    use slack_limits::*;
    let field = |label: &str, value: &str| {
        json!({"type": "mrkdwn",
               "text": truncate(&format!("*{label}*\n{}", slack_escape(value)), SECTION_FIELD)})
    };
    let mut fields = vec![
        field("Client", &m.client),
        field("Type", &m.event_type),
        field("Severity", &m.severity),
    ];
    if let Some(number) = &m.ticket_number {
        fields.push(field("Ticket", number));
    }
    fields.truncate(SECTION_FIELDS);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&m.title, HEADER_TEXT)}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(link) = m
        .ticket_link
        .as_deref()
        .filter(|l| l.chars().count() <= BUTTON_URL)
    {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": truncate("Open ticket", BUTTON_TEXT)},
            "url": link,
        }]}));
    }
    blocks.push(json!({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": truncate(&format!("Event `{}` for {}", slack_escape(&m.event_id), slack_escape(&m.partner)), SECTION_TEXT),
    }]}));
    let fallback = format!("[{}] {} ({})", m.severity, m.title, m.client);
    json!({"text": truncate(&fallback, FALLBACK_TEXT), "blocks": blocks})
}

/// The generic webhook's JSON body.
pub fn webhook_payload(m: &ChannelMessage) -> Value {
    json!({
        "type": "psabridge.event",
        "event": m.event_id,
        "partner": m.partner,
        "client": m.client,
        "event_type": m.event_type,
        "severity": m.severity,
        "title": m.title,
        "ticket": {"number": m.ticket_number, "url": m.ticket_link},
    })
}

/// The body a channel of `kind` is sent for `m`.
pub fn payload(kind: ChannelKind, m: &ChannelMessage) -> Value {
    match kind {
        ChannelKind::Teams => teams_payload(m),
        ChannelKind::Slack => slack_payload(m),
        ChannelKind::Webhook => webhook_payload(m),
    }
}

/// Why a signing secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the signing secret must be \"whsec_\" followed by base64")]
    BadSecret,
    #[error("the signing secret's key must be 24 to 64 bytes")]
    BadKeyLength,
    #[error("no signature matches")]
    NoMatch,
    #[error("the timestamp is more than {WEBHOOK_TOLERANCE_SECS} seconds from now")]
    OutsideTolerance,
}

/// The key bytes of a `whsec_…` secret.
pub fn parse_webhook_secret(secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret
        .strip_prefix(WEBHOOK_SECRET_PREFIX)
        .ok_or(SigningError::BadSecret)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::BadSecret)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SigningError::BadKeyLength);
    }
    Ok(key)
}

/// A new `whsec_…` secret from 32 random bytes the caller supplies (this crate draws none).
pub fn format_webhook_secret(key: &[u8; 32]) -> String {
    format!(
        "{WEBHOOK_SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The `webhook-id` of a delivery: the same on every attempt, so receivers can de-duplicate.
pub fn webhook_id(install_id: &str, delivery_id: i64) -> String {
    format!("msg_{install_id}_{delivery_id}")
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign_webhook(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// Verify as a receiver would: the timestamp within the tolerance of `now`, and one of the
/// space-separated `v1,…` signatures matching (compared in constant time).
pub fn verify_webhook(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
    signatures: &str,
    now: i64,
) -> Result<(), SigningError> {
    if (now - timestamp).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(SigningError::OutsideTolerance);
    }
    let matched = signatures.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        mac(key, id, timestamp, body).verify_slice(&given).is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SigningError::NoMatch)
    }
}

/// How much of a receiver's reply a dead delivery keeps.
pub const REPLY_EXCERPT_CHARS: usize = 200;

/// What a receiver's answer means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerClass {
    /// 2xx: sent.
    Delivered,
    /// 408, 429, 5xx: try again, not before `at_least` (the receiver's Retry-After, if any).
    Retry {
        at_least: Option<Duration>,
        reason: String,
    },
    /// Any other status: the request itself is wrong; dead, with the reply's excerpt.
    Dead { reason: String },
}

/// Classify an answer. `reply` is the body as text; it is cut to [`REPLY_EXCERPT_CHARS`] and
/// any occurrence of `secret_parts` (the URL, its path, a token) is blanked, so a receiver that
/// echoes the request never puts a secret in the delivery log.
pub fn classify_answer(
    status: u16,
    retry_after: Option<Duration>,
    reply: &str,
    secret_parts: &[&str],
) -> AnswerClass {
    let mut cleaned = reply.trim().to_string();
    for part in secret_parts.iter().filter(|p| p.len() >= 4) {
        cleaned = cleaned.replace(part, "[redacted]");
    }
    let excerpt = truncate(&cleaned, REPLY_EXCERPT_CHARS);
    let reason = if excerpt.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {excerpt}")
    };
    match status {
        200..=299 => AnswerClass::Delivered,
        408 | 429 | 500..=599 => AnswerClass::Retry {
            at_least: if status == 429 || status == 503 {
                retry_after
            } else {
                None
            },
            reason,
        },
        _ => AnswerClass::Dead { reason },
    }
}

/// Parse a `Retry-After` header given in seconds (the form Slack and Microsoft send).
pub fn parse_retry_after_secs(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> ChannelMessage {
        ChannelMessage {
            event_id: "evt-1".into(),
            partner: "acme".into(),
            client: "Contoso <HQ> & Co".into(),
            event_type: "malware.detected".into(),
            severity: "high".into(),
            title: "Malware found on LAPTOP-7".into(),
            ticket_link: Some("https://psa.example.com/tickets/42".into()),
            ticket_number: Some("T20260101.0042".into()),
        }
    }

    #[test]
    fn a_message_waits_for_its_ticket_but_not_for_ever() {
        let ticket = LinkedTicket {
            number: Some("T1".into()),
            link: Some("https://psa.example/t/1".into()),
        };
        let pending = PsaSide {
            settled: false,
            ticket: None,
        };
        let done = PsaSide {
            settled: true,
            ticket: Some(ticket.clone()),
        };
        let dead = PsaSide {
            settled: true,
            ticket: None,
        };
        // No PSA side (a chat-only event type): at once, without a ticket.
        assert_eq!(link_decision(&[], 0, 30_000), LinkDecision::Send(None));
        // The ticket is being made: wait, until the wait is over.
        assert_eq!(
            link_decision(std::slice::from_ref(&pending), 1_000, 30_000),
            LinkDecision::Wait
        );
        assert_eq!(
            link_decision(std::slice::from_ref(&pending), 30_000, 30_000),
            LinkDecision::Send(None)
        );
        // A ticket on any connection is linked, even while another connection is pending.
        assert_eq!(
            link_decision(&[pending.clone(), done], 0, 30_000),
            LinkDecision::Send(Some(ticket))
        );
        // The PSA side died: no ticket will come, no reason to wait.
        assert_eq!(link_decision(&[dead], 0, 30_000), LinkDecision::Send(None));
    }

    #[test]
    fn kinds_round_trip_and_only_webhook_signs() {
        for kind in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.signs(), kind == ChannelKind::Webhook);
        }
        assert_eq!(ChannelKind::parse("email"), None);
    }

    #[test]
    fn group_keys_are_per_channel_and_event() {
        assert_eq!(channel_group_key("acme", 3, "e1"), "channel:acme:3:e1");
        assert_ne!(
            channel_group_key("acme", 3, "e1"),
            channel_group_key("acme", 4, "e1")
        );
    }

    #[test]
    fn only_enabled_channels_listing_the_type_get_it() {
        let sub = |id, enabled, types: &[&str]| ChannelSubscription {
            channel_id: id,
            kind: ChannelKind::Slack,
            enabled,
            event_types: types.iter().map(|t| t.to_string()).collect(),
        };
        let subs = [
            sub(5, true, &["a", "b"]),
            sub(2, true, &["a"]),
            sub(3, false, &["a"]),
            sub(4, true, &["b"]),
        ];
        assert_eq!(channels_for(&subs, "a"), vec![2, 5]);
        assert_eq!(channels_for(&subs, "b"), vec![4, 5]);
        assert!(channels_for(&subs, "c").is_empty());
    }

    #[test]
    fn teams_body_is_a_message_with_one_adaptive_card() {
        let body = teams_payload(&message());
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], ADAPTIVE_CARD_VERSION);
        assert_eq!(card["body"][0]["type"], "TextBlock");
        assert_eq!(card["body"][1]["type"], "FactSet");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(
            card["actions"][0]["url"],
            "https://psa.example.com/tickets/42"
        );
        let mut no_ticket = message();
        no_ticket.ticket_link = None;
        assert!(
            teams_payload(&no_ticket)["attachments"][0]["content"]
                .get("actions")
                .is_none()
        );
    }

    #[test]
    fn slack_body_has_fallback_and_blocks_within_limits() {
        let mut m = message();
        m.title = "x".repeat(1000);
        let body = slack_payload(&m);
        assert!(body["text"].as_str().unwrap().chars().count() <= slack_limits::FALLBACK_TEXT);
        let blocks = body["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["header", "section", "actions", "context"]);
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count()
                <= slack_limits::HEADER_TEXT
        );
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(fields.len() <= slack_limits::SECTION_FIELDS);
        assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
        assert!(
            fields[0]["text"]
                .as_str()
                .unwrap()
                .contains("Contoso &lt;HQ&gt; &amp; Co")
        );
        assert_eq!(blocks[2]["elements"][0]["type"], "button");
        assert_eq!(
            blocks[2]["elements"][0]["url"],
            "https://psa.example.com/tickets/42"
        );
    }

    #[test]
    fn webhook_body_names_the_event_and_ticket() {
        let body = webhook_payload(&message());
        assert_eq!(body["event"], "evt-1");
        assert_eq!(body["partner"], "acme");
        assert_eq!(body["ticket"]["url"], "https://psa.example.com/tickets/42");
        let mut m = message();
        m.ticket_link = None;
        assert!(webhook_payload(&m)["ticket"]["url"].is_null());
    }

    #[test]
    fn secrets_parse_and_refuse() {
        let secret = format_webhook_secret(&[7u8; 32]);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(parse_webhook_secret(&secret).unwrap(), vec![7u8; 32]);
        assert_eq!(parse_webhook_secret("abc"), Err(SigningError::BadSecret));
        assert_eq!(
            parse_webhook_secret("whsec_!!"),
            Err(SigningError::BadSecret)
        );
        assert_eq!(
            parse_webhook_secret("whsec_AAAA"),
            Err(SigningError::BadKeyLength)
        );
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = parse_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_webhook(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verifier_refuses_tampering_and_old_timestamps() {
        let key = [9u8; 32];
        let now = 1_800_000_000;
        let sig = sign_webhook(&key, "msg_1", now, b"{}");
        assert_eq!(
            verify_webhook(&key, "msg_1", now, b"{}", &sig, now + 10),
            Ok(())
        );
        assert_eq!(
            verify_webhook(&key, "msg_1", now, b"{ }", &sig, now),
            Err(SigningError::NoMatch)
        );
        assert_eq!(
            verify_webhook(&key, "msg_2", now, b"{}", &sig, now),
            Err(SigningError::NoMatch)
        );
        assert_eq!(
            verify_webhook(
                &key,
                "msg_1",
                now,
                b"{}",
                &sig,
                now + WEBHOOK_TOLERANCE_SECS + 1
            ),
            Err(SigningError::OutsideTolerance)
        );
        let several = format!("v1,AAAA {sig}");
        assert_eq!(
            verify_webhook(&key, "msg_1", now, b"{}", &several, now),
            Ok(())
        );
    }

    #[test]
    fn webhook_ids_are_stable_per_delivery() {
        assert_eq!(webhook_id("inst", 7), webhook_id("inst", 7));
        assert_ne!(webhook_id("inst", 7), webhook_id("inst", 8));
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify_answer(200, None, "ok", &[]),
            AnswerClass::Delivered
        );
        assert_eq!(
            classify_answer(429, Some(Duration::from_secs(30)), "", &[]),
            AnswerClass::Retry {
                at_least: Some(Duration::from_secs(30)),
                reason: "HTTP 429".into()
            }
        );
        assert!(matches!(
            classify_answer(502, None, "bad gateway", &[]),
            AnswerClass::Retry { at_least: None, .. }
        ));
        assert!(matches!(
            classify_answer(408, None, "", &[]),
            AnswerClass::Retry { .. }
        ));
        assert_eq!(
            classify_answer(400, None, "invalid_payload", &[]),
            AnswerClass::Dead {
                reason: "HTTP 400: invalid_payload".into()
            }
        );
        let AnswerClass::Dead { reason } = classify_answer(
            404,
            None,
            &format!(
                "no_service for /services/T0/B0/SECRETXYZ {}",
                "y".repeat(500)
            ),
            &["/services/T0/B0/SECRETXYZ"],
        ) else {
            panic!("404 is dead")
        };
        assert!(!reason.contains("SECRETXYZ"));
        assert!(reason.chars().count() <= REPLY_EXCERPT_CHARS + "HTTP 404: ".len());
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(
            parse_retry_after_secs(" 12 "),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"),
            None
        );
    }
}
