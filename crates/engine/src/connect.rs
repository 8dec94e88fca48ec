//! "Connect": validate a connection's credentials, load the PSA's lists, and subscribe to
//! ticket changes where the PSA allows it.

use psabridge_core::secret::Secret;
use psabridge_psa::{ConnectionCheck, PsaError, PsaLists, WebhookRegistration};
use psabridge_store::config::Connection;
use rand::RngCore;
use thiserror::Error;

use crate::{Engine, now_ms};

/// What "Connect" found.
#[derive(Debug, Clone)]
pub struct Connected {
    pub check: ConnectionCheck,
    pub lists: PsaLists,
    /// The webhook now pushing ticket changes to us, if one could be registered.
    pub webhook: Option<WebhookRegistration>,
    /// Why no webhook, when there is none (for the user; the sweep covers it).
    pub webhook_note: Option<String>,
}

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Psa(#[from] PsaError),
    #[error("the connection's settings are incomplete: {0}")]
    Settings(String),
    #[error(transparent)]
    Store(#[from] psabridge_store::StoreError),
}

/// The URL at which a connection's PSA webhook calls us.
pub fn webhook_url(public_url: &str, connection_id: i64) -> String {
    format!(
        "{}/hooks/{}/{connection_id}",
        public_url.trim_end_matches('/'),
        "autotask"
    )
}

/// Connect a stored connection. `public_url` is where PSAs can reach this service; without
/// it no webhook is registered and closed tickets are learned by the sweep.
pub async fn connect(
    engine: &Engine,
    connection: &Connection,
    public_url: Option<&str>,
) -> Result<Connected, ConnectError> {
    engine.connectors.forget(connection.id);
    engine.contacts.flush(connection.id);
    let connector = engine
        .connectors
        .get(&engine.store, connection)
        .await
        .map_err(|e| ConnectError::Settings(e.to_string()))?;
    let check = connector.check().await?;
    let lists = connector.lists().await?;
    let lists_json = serde_json::to_value(&lists).unwrap_or_default();
    engine
        .store
        .set_connection_lists(connection.id, &lists_json, now_ms())
        .await?;

    let (webhook, webhook_note) = match (public_url, &connection.webhook_id) {
        (_, Some(id)) => (
            Some(WebhookRegistration {
                id: id.clone(),
                guid: connection.webhook_guid.clone(),
            }),
            None,
        ),
        (None, None) => (
            None,
            Some(
                "no public URL is configured, so closed tickets are learned by polling".to_string(),
            ),
        ),
        (Some(base), None) => {
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            let secret = Secret::new(raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
            match connector.register_status_webhook(&webhook_url(base, connection.id), secret.expose()).await {
                Ok(Some(reg)) => {
                    engine
                        .store
                        .set_connection_webhook(connection.id, Some(&reg.id), reg.guid.as_deref(), Some(&secret), now_ms())
                        .await?;
                    (Some(reg), None)
                }
                Ok(None) => (None, Some("the PSA user may not create webhooks; closed tickets are learned by polling".into())),
                Err(e) => {
                    tracing::warn!(connection = connection.id, error = %e, "webhook registration failed; polling instead");
                    (None, Some(format!("registering the webhook failed ({e}); closed tickets are learned by polling")))
                }
            }
        }
    };
    Ok(Connected {
        check,
        lists,
        webhook,
        webhook_note,
    })
}
