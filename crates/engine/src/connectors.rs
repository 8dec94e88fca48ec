//! Building and caching one connector per PSA connection.
//!
//! A connector holds what makes it economical (the discovered zone, cached picklists, its
//! request budget and per-endpoint slots), so it lives as long as its connection is
//! unchanged. A connection edited since the connector was built gets a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use psabridge_core::secret::Secret;
use psabridge_psa::limits::{BudgetLedger, SharedBudget};
use psabridge_psa::{Connector, Outbound, SettingsError};
use psabridge_store::config::Connection;
use psabridge_store::{Store, StoreError};
use thiserror::Error;

/// Why a connector could not be built from a stored connection.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A URL of the connection may not be called under the operator's outbound policy.
    #[error("setting '{field}': {problem}")]
    Refused { field: String, problem: String },
}

struct Entry {
    updated_at: i64,
    connector: Arc<dyn Connector>,
}

/// Connectors by connection id.
#[derive(Clone)]
pub struct ConnectorRegistry {
    http: reqwest::Client,
    outbound: Outbound,
    cache: Arc<Mutex<HashMap<i64, Entry>>>,
    /// Calls made by connectors that were since replaced, so totals never go backwards.
    retired_calls: Arc<std::sync::atomic::AtomicU64>,
    /// The database ledger of shared request budgets (PostgreSQL), made on first use.
    ledger: Arc<std::sync::OnceLock<Arc<dyn BudgetLedger>>>,
}

/// Request budgets counted in the database, for nodes sharing a PostgreSQL database.
pub struct StoreLedger {
    store: Store,
    /// When slices older than a day were last forgotten (milliseconds).
    last_cleanup: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for StoreLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLedger")
    }
}

impl StoreLedger {
    pub fn new(store: Store) -> StoreLedger {
        StoreLedger {
            store,
            last_cleanup: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

#[async_trait::async_trait]
impl BudgetLedger for StoreLedger {
    async fn reserve(
        &self,
        connection_id: i64,
        scope: &str,
        window_start: i64,
        limit: u32,
        want: u32,
    ) -> Result<u32, String> {
        use std::sync::atomic::Ordering;
        let last = self.last_cleanup.load(Ordering::Relaxed);
        if window_start - last > 60_000
            && self
                .last_cleanup
                .compare_exchange(last, window_start, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // Any node may do it; slices a day old can no longer be reserved from.
            let _ = self.store.forget_budgets(window_start - 86_400_000).await;
        }
        self.store
            .reserve_budget(connection_id, scope, window_start, limit, want)
            .await
            .map_err(|e| e.to_string())
    }
}

impl ConnectorRegistry {
    /// A registry that calls any address (embedding and tests).
    pub fn new() -> ConnectorRegistry {
        ConnectorRegistry::with_outbound(Outbound::default())
    }

    /// A registry whose connectors call only what `outbound` allows: every URL of a
    /// connection is checked before its connector is built, and every name is checked again
    /// when it is resolved for a request.
    pub fn with_outbound(outbound: Outbound) -> ConnectorRegistry {
        let http = outbound
            .client(reqwest::Client::builder())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("psabridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        ConnectorRegistry {
            http,
            outbound,
            cache: Arc::new(Mutex::new(HashMap::new())),
            retired_calls: Arc::default(),
            ledger: Arc::default(),
        }
    }

    /// The connector of a connection, built on first use and after each change of it.
    pub async fn get(
        &self,
        store: &Store,
        connection: &Connection,
    ) -> Result<Arc<dyn Connector>, BuildError> {
        if let Some(e) = self.lock().get(&connection.id)
            && e.updated_at == connection.updated_at
        {
            return Ok(e.connector.clone());
        }
        self.check_urls(&connection.settings).await?;
        let secrets = store.connection_secrets(connection.id).await?;
        let connector = build(self.http.clone(), connection, &secrets)?;
        if store.engine() == psabridge_store::Engine::Postgres && connection.id > 0 {
            // Several nodes may serve this connection: they share its budget through the
            // database. On SQLite (one node) the connector's own bucket is the whole budget.
            let ledger = self
                .ledger
                .get_or_init(|| Arc::new(StoreLedger::new(store.clone())))
                .clone();
            connector
                .meter()
                .share_budget(Arc::new(SharedBudget::new(ledger, connection.id)));
        }
        let mut cache = self.lock();
        if let Some(old) = cache.insert(
            connection.id,
            Entry {
                updated_at: connection.updated_at,
                connector: connector.clone(),
            },
        ) {
            self.retired_calls.fetch_add(
                old.connector.meter().total(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Ok(connector)
    }

    /// The outbound policy of this registry's connectors.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Check every URL setting of a connection (a stored URL the policy refuses since fails
    /// here, with the setting's name, instead of being called).
    pub async fn check_urls(
        &self,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), BuildError> {
        for (field, value) in settings {
            if !field.ends_with("_url") {
                continue;
            }
            if let Some(url) = value.as_str().filter(|u| !u.trim().is_empty())
                && let Err(e) = self.outbound.check_url(url).await
            {
                return Err(BuildError::Refused {
                    field: field.clone(),
                    problem: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Build a connector for a connection that is not stored yet ("Connect" on create).
    pub fn build_unsaved(
        &self,
        connection: &Connection,
        secrets: &std::collections::BTreeMap<String, Secret>,
    ) -> Result<Arc<dyn Connector>, BuildError> {
        build(self.http.clone(), connection, secrets)
    }

    /// Use `connector` for `connection` until the connection changes (embedding, tests).
    pub fn install(&self, connection: &Connection, connector: Arc<dyn Connector>) {
        connector
            .meter()
            .label(connection.id, connection.kind.as_str());
        self.lock().insert(
            connection.id,
            Entry {
                updated_at: connection.updated_at,
                connector,
            },
        );
    }

    /// Forget the connector of a connection (deleted, or its caches must be flushed).
    pub fn forget(&self, connection_id: i64) {
        if let Some(old) = self.lock().remove(&connection_id) {
            self.retired_calls.fetch_add(
                old.connector.meter().total(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Connections whose connector must wait before its next request (budget spent).
    pub fn waiting(&self, longer_than: Duration) -> Vec<i64> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.connector.ready_in() > longer_than)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Each live connector's budget: (connection id, requests in the trailing hour, the
    /// connector's share of the PSA's hourly limit, how long until it may send again).
    pub fn budgets(&self) -> Vec<(i64, u64, u32, Duration)> {
        self.lock()
            .iter()
            .map(|(id, e)| {
                (
                    *id,
                    e.connector.meter().last_hour(),
                    e.connector.sweep_cost().requests_per_hour,
                    e.connector.ready_in(),
                )
            })
            .collect()
    }

    /// The PSA kind of a connection whose connector this node has built.
    pub fn kind_of(&self, connection_id: i64) -> Option<String> {
        self.lock()
            .get(&connection_id)
            .and_then(|e| e.connector.meter().kind())
    }

    /// PSA requests sent by every connector of this node, ever.
    pub fn total_calls(&self) -> u64 {
        let live: u64 = self
            .lock()
            .values()
            .map(|e| e.connector.meter().total())
            .sum();
        live + self
            .retired_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ConnectorRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn build(
    http: reqwest::Client,
    c: &Connection,
    secrets: &std::collections::BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, BuildError> {
    let connector = psabridge_psa::build(c.kind, http, &c.settings, secrets)?;
    if c.id > 0 {
        connector.meter().label(c.id, c.kind.as_str());
    }
    Ok(connector)
}
