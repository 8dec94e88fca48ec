//! "Connect": validate a connection's credentials, load the PSA's lists, and subscribe to
//! ticket changes where the PSA allows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::{
    ConnectionCheck, Connector, PsaError, PsaLists, SettingsError, WebhookRegistration,
};
use psabridge_store::config::Connection;
use rand::RngCore;
use thiserror::Error;

use crate::connectors::BuildError;
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
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] psabridge_store::StoreError),
    /// A URL the operator's outbound policy does not allow (named setting).
    #[error("setting '{field}': {problem}")]
    Refused { field: String, problem: String },
}

impl ConnectError {
    fn from_build(e: BuildError) -> ConnectError {
        match e {
            BuildError::Settings(e) => ConnectError::Settings(e),
            BuildError::Store(e) => ConnectError::Store(e),
            BuildError::Refused { field, problem } => ConnectError::Refused { field, problem },
        }
    }
}

/// The URL at which a connection's PSA webhook calls us (`/hooks/{psa}/{connection}`).
pub fn webhook_url(public_url: &str, kind: PsaKind, connection_id: i64) -> String {
    format!(
        "{}/hooks/{}/{connection_id}",
        public_url.trim_end_matches('/'),
        kind.as_str()
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
        .map_err(ConnectError::from_build)?;
    let check = connector.check().await?;
    let lists = connector.lists().await?;
    let lists_json = serde_json::to_value(&lists).unwrap_or_default();
    engine
        .store
        .set_connection_lists(connection.id, &lists_json, now_ms())
        .await?;
    subscribe(engine, connection, connector, check, lists, public_url).await
}

/// Changed credentials checked against the PSA before anything is stored: the connector
/// they make, what it said, and the PSA's lists. Nothing is written, whatever the outcome.
pub struct Checked {
    pub connector: Arc<dyn Connector>,
    pub check: ConnectionCheck,
    pub lists: PsaLists,
}

impl Checked {
    /// The lists as they are stored on the connection.
    pub fn lists_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.lists).unwrap_or_default()
    }
}

/// Check `connection` as it would be with `secrets` (not stored yet) against its PSA.
pub async fn check_unsaved(
    engine: &Engine,
    connection: &Connection,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Checked, ConnectError> {
    engine
        .connectors
        .check_urls(&connection.settings)
        .await
        .map_err(ConnectError::from_build)?;
    let connector = engine
        .connectors
        .build_unsaved(connection, secrets)
        .map_err(ConnectError::from_build)?;
    let check = connector.check().await?;
    let lists = connector.lists().await?;
    Ok(Checked {
        connector,
        check,
        lists,
    })
}

/// Put a checked change to work once it is stored (`saved`, its lists included): the checked
/// connector serves the connection from now on, and a webhook is registered if none is.
pub async fn adopt(
    engine: &Engine,
    saved: &Connection,
    checked: Checked,
    public_url: Option<&str>,
) -> Result<Connected, ConnectError> {
    engine.connectors.forget(saved.id);
    engine.contacts.flush(saved.id);
    engine.connectors.install(saved, checked.connector.clone());
    subscribe(
        engine,
        saved,
        checked.connector,
        checked.check,
        checked.lists,
        public_url,
    )
    .await
}

/// Register the status webhook where there is none and a public URL allows one.
async fn subscribe(
    engine: &Engine,
    connection: &Connection,
    connector: Arc<dyn Connector>,
    check: ConnectionCheck,
    lists: PsaLists,
    public_url: Option<&str>,
) -> Result<Connected, ConnectError> {
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
            match connector.register_status_webhook(&webhook_url(base, connection.kind, connection.id), secret.expose()).await {
                Ok(Some(reg)) => {
                    engine
                        .store
                        .set_connection_webhook(connection.id, Some(&reg.id), reg.guid.as_deref(), Some(&secret), now_ms())
                        .await?;
                    (Some(reg), None)
                }
                Ok(None) => (None, Some("this PSA, or its API user, cannot push ticket changes to us; closed tickets are learned by polling and a ticket is read before a note".into())),
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
