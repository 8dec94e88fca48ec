//! The delivery engine: it turns accepted events into PSA tickets and notes.
//!
//! Three loops run on every node, all driven by the database so that any number of nodes can
//! share the work and any of them can die:
//!
//! - the **router** ([`router`]) reads accepted events not yet routed, asks the pure core where
//!   each goes, and records one delivery per destination;
//! - the **dispatcher** ([`dispatch`]) claims due deliveries (the head of each group only),
//!   fairly across connections, and sleeps until work is due or a commit wakes it; each
//!   delivery ([`deliver`]) is planned with the pure core, its plan run through the
//!   connection's connector, and its outcome recorded or a retry scheduled;
//! - the **sweeper** ([`sweep`]) reads the state of open tickets in batches, for connections
//!   whose PSA does not push ticket changes to us (and to learn ticket numbers).
//!
//! The engine never decides routing, grouping or contacts itself: it executes the plans of
//! `psabridge_core`, and it talks to PSAs only through `psabridge_psa::Connector`.

pub mod assets;
pub mod billing;
pub mod breaker;
pub mod catalog;
pub mod channels;
pub mod connect;
pub mod connectors;
mod contacts;
pub mod deliver;
pub mod dispatch;
pub mod mail;
pub mod metrics;
pub mod router;
pub mod sweep;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use psabridge_core::catalog::Catalog;
use psabridge_core::retry::RetryPolicy;
use psabridge_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use connectors::ConnectorRegistry;

/// How the engine behaves. The defaults suit production; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Deliveries in progress at once on this node.
    pub concurrency: usize,
    /// Deliveries in progress at once per connection on this node (`None`: half of
    /// `concurrency`), so that a slow PSA cannot occupy every worker.
    pub per_connection_concurrency: Option<usize>,
    /// How long a claim lasts. Longer than the slowest PSA call times the calls of one
    /// delivery, so that a live worker never loses its claim.
    pub lease: Duration,
    /// How often to look again while a breaker or a spent budget holds due work back.
    pub poll_interval: Duration,
    /// After a wake-up, how long to let more work gather before acting on it.
    pub coalesce: Duration,
    /// Events routed per batch.
    pub route_batch: i64,
    pub retry: RetryPolicy,
    /// How long "the ticket is open" stays believable when the PSA pushes ticket changes.
    pub trust_with_webhook: Duration,
    /// … and when we only learn by polling: short, so that a ticket a technician has just
    /// closed is verified before a note rather than noted (config
    /// `engine.trust_without_push_secs`; 0 verifies before every note).
    pub trust_without_webhook: Duration,
    /// How often the sweeper runs, and the age of a confirmation it refreshes.
    pub sweep_interval: Duration,
    pub sweep_age: Duration,
    /// The share (0–1) of each connection's request budget its sweeps may spend, whatever
    /// the number of open tickets (default 0.2). Deliveries come first: a connection with
    /// deliveries due is not swept.
    pub sweep_share: f64,
    /// How long a write whose answer was lost may still take to land at the PSA; the next
    /// attempt (which first looks for what it may have made) waits at least this long.
    pub settle: Duration,
    /// Events older than this (since accepted, or since replayed on purpose) are not sent
    /// to the PSA: their deliveries are kept as `expired` (default 48 hours).
    pub replay_window: Duration,
    /// A name for this node's claims (shows in the database as the lease owner).
    pub node_name: String,
    /// The SMTP server of the email channel; `None`: email cannot be switched on.
    pub smtp: Option<mail::SmtpConfig>,
    /// How often the nightly billing syncs are checked for being due.
    pub billing_schedule_check: Duration,
    /// How often assets due for a push are pushed to the PSAs.
    pub asset_sync_interval: Duration,
    /// What PSAs and identity providers may be called (`[outbound]`); the default calls
    /// anything, the binary always sets it from its configuration.
    pub outbound: psabridge_core::outbound::OutboundPolicy,
    /// At shutdown, how long deliveries in progress may take to finish; those still running
    /// then are interrupted and given back (due now, attempt not counted).
    pub drain_timeout: Duration,
    /// How long a chat or webhook message waits for its event's PSA ticket, so that it can
    /// carry the ticket's link; after that it goes without (default 30 s).
    pub channel_link_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 16,
            per_connection_concurrency: None,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            coalesce: Duration::from_millis(10),
            route_batch: 500,
            retry: RetryPolicy::default(),
            trust_with_webhook: Duration::from_secs(15 * 60),
            trust_without_webhook: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(20),
            sweep_age: Duration::from_secs(20),
            sweep_share: 0.2,
            settle: Duration::from_secs(30),
            replay_window: Duration::from_secs(48 * 3600),
            node_name: default_node_name(),
            smtp: None,
            billing_schedule_check: billing::SCHEDULE_CHECK,
            asset_sync_interval: assets::INTERVAL,
            outbound: psabridge_core::outbound::OutboundPolicy::unrestricted(),
            drain_timeout: Duration::from_secs(30),
            channel_link_wait: Duration::from_secs(30),
        }
    }
}

/// This process's name in leases: the host, the process id and the start time, so that two
/// hosts' processes of the same id never take each other's claims or job leases.
fn default_node_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!(
        "{host}-{}-{:x}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros() & 0xff_ffff
    )
}

impl EngineConfig {
    /// The most deliveries one connection may have in progress on this node.
    pub fn lane_cap(&self) -> usize {
        self.per_connection_concurrency
            .unwrap_or(self.concurrency / 2)
            .clamp(1, self.concurrency.max(1))
    }
}

/// Running counters, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub events_routed: AtomicU64,
    pub events_skipped: AtomicU64,
    pub tickets_created: AtomicU64,
    pub notes_added: AtomicU64,
    pub deliveries_without_action: AtomicU64,
    pub delivery_failures: AtomicU64,
    pub deliveries_dead: AtomicU64,
    pub deliveries_expired: AtomicU64,
    pub sweeps: AtomicU64,
    /// PSA requests the sweeps made.
    pub sweep_requests: AtomicU64,
    pub tickets_found_closed: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared parts of the engine's loops.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub connectors: ConnectorRegistry,
    /// The event types, kept current with the store once `LiveCatalog::follow` ran.
    pub catalog: Arc<catalog::LiveCatalog>,
    pub config: Arc<EngineConfig>,
    pub stats: Arc<Stats>,
    pub breakers: Arc<breaker::Breakers>,
    contacts: Arc<contacts::ContactCache>,
    /// Woken when routing made deliveries, so the dispatcher claims at once.
    work: Arc<tokio::sync::Notify>,
    /// What holds connections back from claims (breakers, budgets).
    gate: Arc<dyn dispatch::ClaimGate>,
    /// The installation's id, read once (it prefixes our ticket references).
    install_id: Arc<tokio::sync::OnceCell<String>>,
    /// Sends the email channel's deliveries (from `config.smtp`, or given by a test).
    mailer: Option<Arc<dyn mail::Mailer>>,
    /// Posts the chat and webhook channels' messages (HTTP within `[outbound]`, or a test's).
    channel_sender: Arc<dyn channels::ChannelSender>,
    /// Set once shutdown began: no more claims; `/readyz` says so.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// Each connection's PSA kind as last sampled, for the labels of delivery metrics.
    kinds: Arc<std::sync::Mutex<std::collections::HashMap<i64, String>>>,
}

impl Engine {
    pub fn new(
        store: Store,
        connectors: ConnectorRegistry,
        catalog: Arc<Catalog>,
        config: EngineConfig,
    ) -> Engine {
        let breakers = Arc::new(breaker::Breakers::default());
        Engine {
            gate: Arc::new(dispatch::LocalGate {
                breakers: breakers.clone(),
                connectors: connectors.clone(),
            }),
            mailer: mail::mailer_of(config.smtp.as_ref()),
            channel_sender: channels::sender_of(connectors.outbound()),
            store,
            connectors,
            catalog: Arc::new(catalog::LiveCatalog::fixed(catalog)),
            config: Arc::new(config),
            stats: Arc::new(Stats::default()),
            breakers,
            contacts: Arc::new(contacts::ContactCache::default()),
            work: Arc::new(tokio::sync::Notify::new()),
            install_id: Arc::new(tokio::sync::OnceCell::new()),
            draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            kinds: Arc::default(),
        }
    }

    /// Whether this node is shutting down (it claims nothing more).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Start the router, dispatcher and sweeper; they stop when `shutdown` is cancelled, after
    /// finishing (or abandoning to their lease) the deliveries in progress.
    pub fn spawn(&self, shutdown: CancellationToken, tracker: &TaskTracker) {
        let engine = self.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            match engine
                .store
                .release_orphaned_claims(now_ms(), engine.config.settle.as_millis() as i64)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(deliveries = n, "released claims left by a previous process")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not release old claims; they will expire")
                }
            }
            dispatch::run(engine, stop).await
        });
        tracker.spawn(router::run(self.clone(), shutdown.clone()));
        tracker.spawn(billing::run_schedule(self.clone(), shutdown.clone()));
        tracker.spawn(assets::run(self.clone(), shutdown.clone()));
        tracker.spawn(listen(self.clone(), shutdown.clone()));
        let draining = self.draining.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            stop.cancelled().await;
            draining.store(true, Ordering::Relaxed);
        });
        tracker.spawn(sweep::run(self.clone(), shutdown));
    }

    /// Hold connections back from claims by `gate` instead of this node's breakers and
    /// budgets alone (e.g. budgets shared by several nodes).
    pub fn with_gate(mut self, gate: Arc<dyn dispatch::ClaimGate>) -> Engine {
        self.gate = gate;
        self
    }

    /// Send email through `mailer` instead of the configured SMTP server.
    pub fn with_mailer(mut self, mailer: Arc<dyn mail::Mailer>) -> Engine {
        self.mailer = Some(mailer);
        self
    }

    /// Post chat and webhook messages through `sender` instead of HTTP.
    pub fn with_channel_sender(mut self, sender: Arc<dyn channels::ChannelSender>) -> Engine {
        self.channel_sender = sender;
        self
    }

    /// What chat and webhook messages are posted through.
    pub fn channel_sender(&self) -> Arc<dyn channels::ChannelSender> {
        self.channel_sender.clone()
    }

    /// The mailer email goes through, if any (account emails use it too).
    pub fn mailer(&self) -> Option<Arc<dyn mail::Mailer>> {
        self.mailer.clone()
    }

    /// Whether email can be sent (an SMTP server is configured).
    pub fn can_email(&self) -> bool {
        self.mailer.is_some()
    }

    /// The installation's id (it prefixes ticket references, Message-IDs and webhook-ids),
    /// read from the store once.
    pub(crate) async fn install_id(&self) -> Result<String, psabridge_store::StoreError> {
        self.install_id
            .get_or_try_init(|| async { self.store.install_id().await })
            .await
            .cloned()
    }

    /// Look for due work now (after deliveries were made due by hand).
    pub fn wake(&self) {
        self.work.notify_one();
    }

    /// Total PSA requests made by all connectors of this node.
    /// The PSA kind of a connection for metric labels (`email` for connection 0, the lane of
    /// email and chat messages), from the
    /// last sample or the connector of this node.
    pub(crate) fn kind_of(&self, connection: i64) -> String {
        if connection == 0 {
            return "email".into();
        }
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kinds.get(&connection) {
            return k.clone();
        }
        match self.connectors.kind_of(connection) {
            Some(k) => {
                kinds.insert(connection, k.clone());
                k
            }
            None => "unknown".into(),
        }
    }

    pub fn psa_calls(&self) -> u64 {
        self.connectors.total_calls()
    }
}

/// Wake the router and the dispatcher on other nodes' commits (PostgreSQL LISTEN/NOTIFY).
/// On SQLite one process does everything and wakes itself in memory.
async fn listen(engine: Engine, shutdown: CancellationToken) {
    use psabridge_store::queues::Wakeup;
    let mut wakeups = match engine.store.wakeups().await {
        Ok(Some(w)) => w,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other nodes' commits; relying on timers");
            return;
        }
    };
    let accepted = engine.store.accepted_notify();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = wakeups.recv() => match got {
                Ok(Wakeup::Accepted) => accepted.notify_one(),
                Ok(Wakeup::Work) => engine.work.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other nodes' commits failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    engine.work.notify_one();
                }
            },
        }
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
