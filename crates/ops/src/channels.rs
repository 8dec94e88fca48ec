//! Chat and webhook channels of a partner: Microsoft Teams, Slack and a signed generic webhook,
//! each with the event types it gets (beside the ticket, or instead of it where the ticket
//! settings make none: the same rule as email), and a test message.
//!
//! The URL is the receiver's credential: it is checked against the `[outbound]` rules like a
//! PSA URL (https only unless the operator allows http; private and loopback addresses
//! refused unless allowed), sealed, and never shown again nor named in an error. A generic
//! webhook signs every message the Standard Webhooks way; its `whsec_` secret is made here
//! when none is given and shown once, in the answer that made it.

use std::collections::BTreeSet;

use psabridge_core::channels::{
    AnswerClass, ChannelKind, ChannelMessage, format_webhook_secret, parse_webhook_secret,
    webhook_id,
};
use psabridge_core::event::FieldError;
use psabridge_core::secret::Secret;
use psabridge_engine::channels::{ChannelTarget, post_message};
use psabridge_identity::Permission;
use psabridge_store::channels::{Channel, ChannelChange, NewChannel};
use serde::{Deserialize, Serialize};

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::OpsError;
use crate::input::{name, now, present};
use crate::time::Timestamp;

/// Longest channel name.
const MAX_NAME: usize = 100;
/// Longest receiver URL (Teams Workflows URLs run to several hundred characters).
const MAX_URL: usize = 2048;

/// A new channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannelRequest {
    /// `teams`, `slack` or `webhook`.
    pub kind: String,
    pub name: String,
    /// The incoming-webhook URL (Teams Workflows, Slack) or the receiver's address.
    pub url: String,
    #[serde(default = "on")]
    pub enabled: bool,
    /// The event types this channel gets.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// A generic webhook's `whsec_…` secret; made for it when left out.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

fn on() -> bool {
    true
}

/// A JSON merge patch of a channel: a field left out is kept; none can be removed (`null`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub signing_secret: Option<Option<String>>,
}

/// A channel as settings show it: whether its URL and secret are set, never their values.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub id: i64,
    pub kind: &'static str,
    pub name: String,
    pub enabled: bool,
    pub event_types: Vec<String>,
    pub url_set: bool,
    pub signing_secret_set: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ChannelView {
    pub fn of(c: &Channel) -> ChannelView {
        ChannelView {
            id: c.id,
            kind: c.kind.as_str(),
            name: c.name.clone(),
            enabled: c.enabled,
            event_types: c.event_types.iter().cloned().collect(),
            url_set: true,
            signing_secret_set: c.has_signing_secret,
            created_at: Timestamp(c.created_at),
            updated_at: Timestamp(c.updated_at),
        }
    }
}

/// The answer of a change that made a signing secret: the secret, this once.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelWithSecretView {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// Shown only in this answer; give it to the receiver to verify signatures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// What a test message did.
#[derive(Debug, Clone, Serialize)]
pub struct TestMessageView {
    /// The receiver accepted it (2xx).
    pub sent: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// `sent`, `retry` (the receiver is busy or failing: a real message would be tried
    /// again) or `refused` (a real message would be dead: fix the URL or the receiver).
    pub outcome: &'static str,
    /// The receiver's answer or why there was none (the URL is never in it).
    pub detail: Option<String>,
}

/// A test message: which event type it pretends to be (any active one; the first when left out).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestMessageRequest {
    #[serde(default)]
    pub event_type: Option<String>,
}

impl Ops {
    /// The partner's channels.
    pub async fn channels(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<Vec<ChannelView>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .channels(partner)
            .await?
            .iter()
            .map(ChannelView::of)
            .collect())
    }

    /// One channel.
    pub async fn channel(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<ChannelView, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(ChannelView::of(&self.store.channel(partner, id).await?))
    }

    /// Add a channel. A generic webhook without a signing secret gets one, shown in the answer.
    pub async fn create_channel(
        &self,
        acting: &Acting,
        partner: &str,
        req: NewChannelRequest,
    ) -> Result<ChannelWithSecretView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let mut errors = Vec::new();
        let kind = ChannelKind::parse(&req.kind);
        if kind.is_none() {
            errors.push(FieldError::new("kind", "must be teams, slack or webhook"));
        }
        let channel_name = name(&req.name, MAX_NAME, "name", &mut errors);
        let event_types = self.event_types(&req.event_types, &mut errors).await;
        let url = self.receiver_url(&req.url, &mut errors).await;
        let (signing_secret, made) = match (kind, req.signing_secret) {
            (Some(k), Some(_)) if !k.signs() => {
                errors.push(FieldError::new(
                    "signing_secret",
                    "only a webhook channel signs its messages",
                ));
                (None, false)
            }
            (Some(ChannelKind::Webhook), Some(s)) => (signing_secret(&s, &mut errors), false),
            (Some(ChannelKind::Webhook), None) => (Some(new_signing_secret()), true),
            _ => (None, false),
        };
        OpsError::check(errors)?;
        let kind = kind.ok_or_else(|| OpsError::Internal("kind checked above".into()))?;
        let new = NewChannel {
            partner_id: partner.to_string(),
            kind,
            name: channel_name,
            enabled: req.enabled,
            event_types,
            url: Secret::new(url),
            signing_secret: signing_secret.clone(),
        };
        let id = self
            .store
            .create_channel(&new, now())
            .await
            .map_err(name_taken)?;
        let view = ChannelView::of(&self.store.channel(partner, id).await?);
        self.audit(
            acting,
            Some(partner),
            "channel.create",
            &format!("channel:{id}"),
            None,
            Some(&snapshot(&view)),
        )
        .await;
        Ok(ChannelWithSecretView {
            channel: view,
            signing_secret: signing_secret
                .filter(|_| made)
                .map(|s| s.expose().to_string()),
        })
    }

    /// Change a channel (a merge patch; nothing can be removed).
    pub async fn update_channel(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
        patch: ChannelPatch,
    ) -> Result<ChannelView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let current = self.store.channel(partner, id).await?;
        let mut errors: Vec<FieldError> = [
            ("name", patch.name.as_ref().is_some_and(Option::is_none)),
            ("enabled", patch.enabled.is_some_and(|v| v.is_none())),
            ("url", patch.url.as_ref().is_some_and(Option::is_none)),
            (
                "event_types",
                patch.event_types.as_ref().is_some_and(Option::is_none),
            ),
            (
                "signing_secret",
                patch.signing_secret.as_ref().is_some_and(Option::is_none),
            ),
        ]
        .into_iter()
        .filter(|(_, removed)| *removed)
        .map(|(f, _)| FieldError::new(f, "cannot be removed (null); leave it out to keep it"))
        .collect();
        let mut change = ChannelChange {
            enabled: patch.enabled.flatten(),
            ..ChannelChange::default()
        };
        if let Some(Some(n)) = &patch.name {
            change.name = Some(name(n, MAX_NAME, "name", &mut errors));
        }
        if let Some(Some(types)) = &patch.event_types {
            change.event_types = Some(self.event_types(types, &mut errors).await);
        }
        if let Some(Some(url)) = &patch.url {
            change.url = Some(Secret::new(self.receiver_url(url, &mut errors).await));
        }
        if let Some(Some(secret)) = &patch.signing_secret {
            if current.kind.signs() {
                change.signing_secret = signing_secret(secret, &mut errors);
            } else {
                errors.push(FieldError::new(
                    "signing_secret",
                    "only a webhook channel signs its messages",
                ));
            }
        }
        OpsError::check(errors)?;
        let before = ChannelView::of(
            &self
                .store
                .update_channel(partner, id, &change, now())
                .await
                .map_err(name_taken)?,
        );
        let after = ChannelView::of(&self.store.channel(partner, id).await?);
        self.audit(
            acting,
            Some(partner),
            "channel.update",
            &format!("channel:{id}"),
            Some(&snapshot(&before)),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// Give a generic webhook a new signing secret, shown once in the answer. Messages signed
    /// from now on use it (a retried message is signed again with it).
    pub async fn rotate_signing_secret(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<ChannelWithSecretView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let current = self.store.channel(partner, id).await?;
        if !current.kind.signs() {
            return Err(OpsError::Conflict {
                title: "The channel does not sign".into(),
                detail: format!(
                    "channel {id} is a {} channel; only a webhook channel has a signing secret",
                    current.kind.as_str()
                ),
                errors: Vec::new(),
                references: Vec::new(),
            });
        }
        let secret = new_signing_secret();
        let change = ChannelChange {
            signing_secret: Some(secret.clone()),
            ..ChannelChange::default()
        };
        self.store
            .update_channel(partner, id, &change, now())
            .await?;
        let view = ChannelView::of(&self.store.channel(partner, id).await?);
        self.audit(
            acting,
            Some(partner),
            "channel.signing_secret.rotate",
            &format!("channel:{id}"),
            None,
            None,
        )
        .await;
        Ok(ChannelWithSecretView {
            channel: view,
            signing_secret: Some(secret.expose().to_string()),
        })
    }

    /// Remove a channel; its messages still due die when they come up, visibly.
    pub async fn delete_channel(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<(), OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let before = ChannelView::of(&self.store.delete_channel(partner, id).await?);
        self.audit(
            acting,
            Some(partner),
            "channel.delete",
            &format!("channel:{id}"),
            Some(&snapshot(&before)),
            None,
        )
        .await;
        Ok(())
    }

    /// Post a test message to a channel now (not through the outbox) and say what the
    /// receiver answered, exactly (with the URL blanked out).
    pub async fn test_channel(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
        req: TestMessageRequest,
    ) -> Result<TestMessageView, OpsError> {
        self.partner_for(acting, partner, Permission::OperateDeliveries)
            .await?;
        let catalog = self.event_catalog().await;
        let event_type = match &req.event_type {
            Some(key) => catalog.get(key).ok_or_else(|| {
                OpsError::field(
                    "event_type",
                    format!(
                        "'{key}' is not an active event type (GET /api/v1/event-types lists them)"
                    ),
                )
            })?,
            None => catalog.iter().next().ok_or_else(|| {
                OpsError::field(
                    "event_type",
                    "there is no active event type to pretend to be",
                )
            })?,
        };
        let stored = self
            .store
            .channel_secrets(id)
            .await?
            .filter(|c| c.channel.partner_id == partner)
            .ok_or_else(|| OpsError::NotFound(format!("channel {id}")))?;
        let target = ChannelTarget::of(&stored).map_err(OpsError::Internal)?;
        let install = self.store.install_id().await?;
        let message = ChannelMessage {
            event_id: format!("test-{}", now()),
            partner: partner.to_string(),
            client: "Test client".into(),
            event_type: event_type.key.clone(),
            severity: event_type.default_severity.as_str().to_string(),
            title: format!("Test message from PSA Bridge: {}", event_type.name),
            ticket_link: None,
            ticket_number: None,
        };
        // A test's webhook-id is its own (a negative "delivery"), never a real message's.
        let msg_id = webhook_id(&install, -now());
        let sender = self.engine.channel_sender();
        let outcome = post_message(sender.as_ref(), &target, &message, &msg_id, now() / 1000).await;
        let view = match outcome.class {
            AnswerClass::Delivered => TestMessageView {
                sent: true,
                status: outcome.status,
                outcome: "sent",
                detail: None,
            },
            AnswerClass::Retry { reason, .. } => TestMessageView {
                sent: false,
                status: outcome.status,
                outcome: "retry",
                detail: Some(reason),
            },
            AnswerClass::Dead { reason } => TestMessageView {
                sent: false,
                status: outcome.status,
                outcome: "refused",
                detail: Some(reason),
            },
        };
        self.audit(
            acting,
            Some(partner),
            "channel.test",
            &format!("channel:{id}"),
            None,
            Some(&snapshot(&view)),
        )
        .await;
        Ok(view)
    }

    /// The event types a channel gets: each an active type, named by its index when not.
    async fn event_types(&self, keys: &[String], errors: &mut Vec<FieldError>) -> BTreeSet<String> {
        let catalog = self.event_catalog().await;
        let mut out = BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            if catalog.get(key).is_none() {
                errors.push(FieldError::new(
                    format!("event_types[{i}]"),
                    format!(
                        "'{key}' is not an active event type (GET /api/v1/event-types lists them)"
                    ),
                ));
            } else {
                out.insert(key.clone());
            }
        }
        out
    }

    /// A receiver URL, checked against the outbound rules. Errors never repeat the URL: its
    /// path is the credential of a Teams or Slack webhook.
    async fn receiver_url(&self, raw: &str, errors: &mut Vec<FieldError>) -> String {
        let url = raw.trim().to_string();
        if url.is_empty() || url.len() > MAX_URL {
            errors.push(FieldError::new(
                "url",
                format!("must be 1 to {MAX_URL} characters"),
            ));
            return url;
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            errors.push(FieldError::new("url", "must be an https:// URL"));
            return url;
        }
        if let Err(e) = self.engine.connectors.outbound().check_url(&url).await {
            let problem = match e {
                psabridge_psa::outbound::OutboundError::NotUrl(_) => "is not a URL".to_string(),
                other => other.to_string(),
            };
            errors.push(FieldError::new("url", problem));
        }
        url
    }
}

/// A signing secret as given: `whsec_` and a base64 key of 24 to 64 bytes.
fn signing_secret(raw: &str, errors: &mut Vec<FieldError>) -> Option<Secret> {
    match parse_webhook_secret(raw.trim()) {
        Ok(_) => Some(Secret::new(raw.trim())),
        Err(e) => {
            errors.push(FieldError::new("signing_secret", e.to_string()));
            None
        }
    }
}

/// A new random signing secret (32 bytes, as Standard Webhooks suggests).
fn new_signing_secret() -> Secret {
    Secret::new(format_webhook_secret(&rand::random::<[u8; 32]>()))
}

/// A taken name, said as a field error.
fn name_taken(e: psabridge_store::StoreError) -> OpsError {
    match e {
        psabridge_store::StoreError::Conflict(what) => OpsError::Conflict {
            title: "The name is taken".into(),
            detail: what.clone(),
            errors: vec![FieldError::new("name", what)],
            references: Vec::new(),
        },
        other => other.into(),
    }
}
