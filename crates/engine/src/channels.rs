//! Chat and webhook channels at the edge: posting one message to a Teams Workflows webhook, a
//! Slack incoming webhook or a signed generic webhook, through a [`ChannelSender`].
//!
//! The bodies, the Standard Webhooks signature and what an answer means are decided in
//! `psabridge_core::channels`; this module only builds the request from them, sends it and
//! returns what the receiver said. The HTTP sender ([`HttpChannelSender`]) goes through
//! `psabridge_psa::outbound::Outbound`, so a channel URL obeys the same `[outbound]` rules as a
//! PSA URL (https only, private and loopback addresses refused unless allowed), checked again
//! at every name resolution.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use psabridge_core::channels::{
    AnswerClass, ChannelKind, ChannelMessage, LinkDecision, LinkedTicket, PsaSide, classify_answer,
    event_message, link_decision, parse_retry_after_secs, parse_webhook_secret, payload,
    sign_webhook, webhook_id,
};
use psabridge_core::secret::Secret;
use psabridge_psa::outbound::Outbound;
use psabridge_store::channels::ChannelSecrets;
use psabridge_store::outbox::Delivery;

use crate::{Engine, now_ms};

/// How long one post may take before it counts as unanswered.
pub const POST_TIMEOUT: Duration = Duration::from_secs(15);

/// How soon a message waiting for its event's ticket looks again.
const LINK_RECHECK: Duration = Duration::from_millis(500);

/// The HTTP sender of an engine, within its outbound rules.
pub fn sender_of(outbound: &Outbound) -> Arc<dyn ChannelSender> {
    match HttpChannelSender::new(outbound.clone(), POST_TIMEOUT) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "chat and webhook channels cannot post");
            Arc::new(Unavailable(e))
        }
    }
}

/// A sender for when no HTTP client could be built: every post is refused with the reason.
#[derive(Debug)]
struct Unavailable(String);

#[async_trait]
impl ChannelSender for Unavailable {
    async fn post(&self, _post: &OutgoingPost) -> Result<ReceiverAnswer, SendError> {
        Err(SendError::Refused(self.0.clone()))
    }
}

/// One request to a receiver, ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingPost {
    /// The receiver's URL: a secret (it is the credential of Teams and Slack webhooks).
    pub url: Secret,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The reply's text (the sender reads at most a few kilobytes).
    pub reply: String,
}

/// Why no answer came: refused by the outbound rules, unreachable, timed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The URL may not be called (scheme, address): not worth trying again.
    #[error("{0}")]
    Refused(String),
    /// No answer (connection refused, reset, timeout): worth trying again.
    #[error("{0}")]
    Unanswered(String),
}

/// Something that posts to a receiver. HTTP in production; tests may substitute their own.
#[async_trait]
pub trait ChannelSender: Send + Sync + std::fmt::Debug {
    async fn post(&self, post: &OutgoingPost) -> Result<ReceiverAnswer, SendError>;
}

/// How much of a reply is read before it is cut.
const MAX_REPLY_BYTES: usize = 4096;

/// Posts over HTTPS (or HTTP where the outbound rules allow it) with a per-request timeout.
#[derive(Debug, Clone)]
pub struct HttpChannelSender {
    client: reqwest::Client,
    outbound: Outbound,
}

impl HttpChannelSender {
    pub fn new(outbound: Outbound, timeout: Duration) -> Result<HttpChannelSender, String> {
        let client = outbound
            .client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the HTTP client cannot be built: {e}"))?;
        Ok(HttpChannelSender { client, outbound })
    }

    /// Check a channel URL before it is stored: the same rules as a PSA URL.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        self.outbound
            .check_url(url)
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl ChannelSender for HttpChannelSender {
    async fn post(&self, post: &OutgoingPost) -> Result<ReceiverAnswer, SendError> {
        let url = post.url.expose();
        self.outbound
            .check_url(url)
            .await
            .map_err(|e| SendError::Refused(e.to_string()))?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(post.body.clone());
        for (name, value) in &post.headers {
            request = request.header(name, value);
        }
        // reqwest's errors name the URL; ours must not, so only the kind is kept.
        let mut response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "no answer before the timeout"
            } else if e.is_connect() {
                "the receiver cannot be reached"
            } else if e.is_redirect() {
                "a redirect was refused"
            } else {
                "the request failed"
            };
            SendError::Unanswered(kind.to_string())
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after_secs);
        let mut bytes = Vec::new();
        while bytes.len() < MAX_REPLY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
        bytes.truncate(MAX_REPLY_BYTES);
        Ok(ReceiverAnswer {
            status,
            retry_after,
            reply: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

/// A channel as the sender needs it: its kind, URL and (generic webhook) signing key.
#[derive(Clone)]
pub struct ChannelTarget {
    pub kind: ChannelKind,
    pub url: Secret,
    /// The key of the `whsec_…` secret (generic webhook only).
    pub signing_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for ChannelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelTarget")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The request for `message` to `target`. `webhook_id` is the same on every attempt of one
/// delivery; `now_secs` becomes `webhook-timestamp` (fresh on each attempt, as the spec asks).
pub fn build_post(
    target: &ChannelTarget,
    message: &ChannelMessage,
    webhook_id: &str,
    now_secs: i64,
) -> Result<OutgoingPost, String> {
    let body = serde_json::to_vec(&payload(target.kind, message))
        .map_err(|e| format!("the message cannot be made: {e}"))?;
    let mut headers = Vec::new();
    if target.kind.signs() {
        let key = target
            .signing_key
            .as_deref()
            .ok_or("the webhook has no signing secret")?;
        headers.push(("webhook-id".to_string(), webhook_id.to_string()));
        headers.push(("webhook-timestamp".to_string(), now_secs.to_string()));
        headers.push((
            "webhook-signature".to_string(),
            sign_webhook(key, webhook_id, now_secs, &body),
        ));
    }
    Ok(OutgoingPost {
        url: target.url.clone(),
        headers,
        body,
    })
}

/// The parts of a receiver URL that may be its credential, for blanking out of replies: the
/// URL, its path, and each path segment and query value long enough to be a token (Slack's
/// is the last segment, Teams Workflows' the `sig` value).
fn secret_parts(url: &str) -> Vec<String> {
    let mut parts = vec![url.to_string()];
    if let Ok(u) = reqwest::Url::parse(url) {
        parts.push(u.path().to_string());
        parts.extend(
            u.path_segments()
                .into_iter()
                .flatten()
                .map(str::to_string)
                .chain(u.query_pairs().map(|(_, v)| v.into_owned()))
                .filter(|p| p.len() >= 8),
        );
        if let Some(q) = u.query() {
            parts.push(q.to_string());
        }
    }
    parts.retain(|p| p.len() > 1);
    // Longest first, so a part inside another is not blanked before the whole.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts
}

/// The result of one attempt: the class of the answer and, when there was one, its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    pub status: Option<u16>,
    pub class: AnswerClass,
}

/// Post `message` to `target` once and classify what happened. A refused URL is dead (the
/// settings must change); no answer is retried. Reply excerpts never carry the URL or its path.
pub async fn post_message(
    sender: &dyn ChannelSender,
    target: &ChannelTarget,
    message: &ChannelMessage,
    webhook_id: &str,
    now_secs: i64,
) -> PostOutcome {
    let post = match build_post(target, message, webhook_id, now_secs) {
        Ok(p) => p,
        Err(reason) => {
            return PostOutcome {
                status: None,
                class: AnswerClass::Dead { reason },
            };
        }
    };
    match sender.post(&post).await {
        Ok(answer) => {
            let secrets = secret_parts(target.url.expose());
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            PostOutcome {
                status: Some(answer.status),
                class: classify_answer(answer.status, answer.retry_after, &answer.reply, &secrets),
            }
        }
        Err(SendError::Refused(reason)) => PostOutcome {
            status: None,
            class: AnswerClass::Dead { reason },
        },
        Err(SendError::Unanswered(reason)) => PostOutcome {
            status: None,
            class: AnswerClass::Retry {
                at_least: None,
                reason,
            },
        },
    }
}

impl ChannelTarget {
    /// The target of a stored channel (the signing secret parsed into its key).
    pub fn of(stored: &ChannelSecrets) -> Result<ChannelTarget, String> {
        let signing_key = match &stored.signing_secret {
            Some(s) => Some(
                parse_webhook_secret(s.expose())
                    .map_err(|e| format!("the channel's signing secret: {e}"))?,
            ),
            None => None,
        };
        Ok(ChannelTarget {
            kind: stored.channel.kind,
            url: stored.url.clone(),
            signing_key,
        })
    }
}

/// Deliver one claimed channel delivery (`deliveries.channel` is the channel's kind) and
/// record what happened: sent, tried again later (429/5xx/no answer, honouring Retry-After),
/// dead (another 4xx, a refused URL, the channel deleted), or given back without counting an
/// attempt while the event's PSA ticket is still being made (so the message can link it).
pub(crate) async fn deliver_channel(engine: &Engine, owner: &str, d: Delivery) {
    let d = &d;
    let started = now_ms();
    if psabridge_core::replay::outside_replay_window(
        d.event.received_at,
        d.replayed_at,
        now_ms(),
        engine.config.replay_window,
        false,
    ) {
        crate::deliver::expire(engine, owner, d, started).await;
        return;
    }
    let dead = |why: String| async move {
        crate::deliver::fail(engine, owner, d, started, 0, None, &why, None, false).await
    };
    let Some(channel_id) = d.route["channel_id"].as_i64() else {
        return dead("the delivery names no channel".into()).await;
    };
    let stored = match engine.store.channel_secrets(channel_id).await {
        Ok(Some(c)) if c.channel.partner_id == d.partner_id => c,
        Ok(_) => return dead("the channel was deleted".into()).await,
        Err(e) => {
            let why = format!("storage: {e}");
            crate::deliver::fail(engine, owner, d, started, 0, None, &why, Some(None), false).await;
            return;
        }
    };
    if !stored.channel.enabled {
        return dead(format!(
            "the channel '{}' is switched off",
            stored.channel.name
        ))
        .await;
    }
    let target = match ChannelTarget::of(&stored) {
        Ok(t) => t,
        Err(why) => return dead(why).await,
    };
    let ticket = match event_ticket(engine, d).await {
        Ok(LinkDecision::Send(ticket)) => ticket,
        Ok(LinkDecision::Wait) => {
            let at = now_ms() + LINK_RECHECK.as_millis() as i64;
            if let Err(e) = engine.store.release_delivery(d.id, owner, at).await {
                tracing::warn!(delivery = d.id, error = %e, "giving back a waiting message failed; its lease will expire");
            }
            return;
        }
        Err(e) => {
            tracing::warn!(delivery = d.id, error = %e, "the event's ticket could not be read; sending without its link");
            None
        }
    };
    let install = match engine.install_id().await {
        Ok(i) => i,
        Err(e) => {
            let why = format!("storage: {e}");
            crate::deliver::fail(engine, owner, d, started, 0, None, &why, Some(None), false).await;
            return;
        }
    };
    let client_name =
        crate::deliver::client_name(engine, &d.partner_id, &d.event.event.client).await;
    let catalog = engine.catalog.fresh().await;
    let message = event_message(
        &d.partner_id,
        &d.event.event,
        catalog.rendering.get(&d.event.event.event_type),
        client_name.as_deref(),
        ticket.as_ref(),
    );
    let id = webhook_id(&install, d.id);
    let outcome = post_message(
        engine.channel_sender.as_ref(),
        &target,
        &message,
        &id,
        now_ms() / 1000,
    )
    .await;
    let name = &stored.channel.name;
    let kind = stored.channel.kind.as_str();
    match outcome.class {
        AnswerClass::Delivered => {
            let link = match &message.ticket_number {
                Some(n) => format!(" with ticket {n}"),
                None => String::new(),
            };
            let summary = format!(
                "posted to {kind} channel '{name}'{link} (HTTP {})",
                outcome.status.unwrap_or_default()
            );
            crate::deliver::finish_sent(
                engine,
                owner,
                d,
                started,
                "posted",
                summary,
                message.ticket_number.clone(),
            )
            .await;
        }
        AnswerClass::Retry { at_least, reason } => {
            let why = format!("{kind} channel '{name}': {reason}");
            crate::deliver::fail(
                engine,
                owner,
                d,
                started,
                0,
                None,
                &why,
                Some(at_least),
                false,
            )
            .await;
        }
        AnswerClass::Dead { reason } => {
            dead(format!("{kind} channel '{name}': {reason}")).await;
        }
    }
}

/// Whether the event's PSA ticket exists (and where it opens), or is still being made.
async fn event_ticket(
    engine: &Engine,
    d: &Delivery,
) -> Result<LinkDecision, psabridge_store::StoreError> {
    let rows = engine.store.psa_tickets_of_event(d.event.pk).await?;
    let mut sides = Vec::with_capacity(rows.len());
    for row in rows {
        let ticket = match &row.ticket_id {
            Some(id) => Some(LinkedTicket {
                number: row.ticket_number.clone().or_else(|| Some(id.clone())),
                link: ticket_link(engine, row.connection_id, id).await,
            }),
            None => None,
        };
        sides.push(PsaSide {
            settled: row.settled,
            ticket,
        });
    }
    // A replayed message does not wait again: its PSA side had its chance.
    let wait = if d.replayed_at.is_some() {
        0
    } else {
        engine.config.channel_link_wait.as_millis() as i64
    };
    Ok(link_decision(&sides, now_ms() - d.event.received_at, wait))
}

/// Where a ticket opens in its PSA, from the connection's connector (no PSA request, but
/// Autotask's zone discovery once per connector when nothing else has asked for it yet).
async fn ticket_link(engine: &Engine, connection_id: i64, ticket_id: &str) -> Option<String> {
    let connection = engine.store.connection_by_id(connection_id).await.ok()?;
    let connector = engine
        .connectors
        .get(&engine.store, &connection)
        .await
        .ok()?;
    connector.ticket_url(ticket_id).await
}
