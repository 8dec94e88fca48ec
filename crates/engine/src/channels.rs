//! Chat and webhook channels at the edge: posting one message to a Teams Workflows webhook, a
//! Slack incoming webhook or a signed generic webhook, through a [`ChannelSender`].
//!
//! The bodies, the Standard Webhooks signature and what an answer means are decided in
//! `psabridge_core::channels`; this module only builds the request from them, sends it and
//! returns what the receiver said. The HTTP sender ([`HttpChannelSender`]) goes through
//! `psabridge_psa::outbound::Outbound`, so a channel URL obeys the same `[outbound]` rules as a
//! PSA URL (https only, private and loopback addresses refused unless allowed), checked again
//! at every name resolution.

use std::time::Duration;

use async_trait::async_trait;
use psabridge_core::channels::{
    AnswerClass, ChannelKind, ChannelMessage, classify_answer, parse_retry_after_secs, payload,
    sign_webhook,
};
use psabridge_core::secret::Secret;
use psabridge_psa::outbound::Outbound;

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
            let url = target.url.expose();
            let path = reqwest::Url::parse(url)
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            let secrets: Vec<&str> = [url, path.as_str()]
                .into_iter()
                .filter(|p| p.len() > 1)
                .collect();
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
