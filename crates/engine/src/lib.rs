//! The delivery engine: it turns accepted events into PSA tickets and notes.
//!
//! Three loops run on every node, all driven by the database so that any number of nodes can
//! share the work and any of them can die:
//!
//! - the **router** ([`router`]) reads accepted events not yet routed, asks the pure core where
//!   each goes, and records one delivery per destination;
//! - the **dispatcher** ([`deliver`]) claims due deliveries (the head of each group only),
//!   plans each with the pure core, runs the plan through the connection's connector, and
//!   records the outcome or schedules a retry;
//! - the **sweeper** ([`sweep`]) reads the state of open tickets in batches, for connections
//!   whose PSA does not push ticket changes to us (and to learn ticket numbers).
//!
//! The engine never decides routing, grouping or contacts itself: it executes the plans of
//! `psabridge_core`, and it talks to PSAs only through `psabridge_psa::Connector`.

pub mod billing;
pub mod breaker;
pub mod connect;
pub mod connectors;
mod contacts;
pub mod deliver;
pub mod mail;
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
    /// How long a claim lasts. Longer than the slowest PSA call times the calls of one
    /// delivery, so that a live worker never loses its claim.
    pub lease: Duration,
    /// How often to look for due work when nothing woke us.
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            coalesce: Duration::from_millis(10),
            route_batch: 500,
            retry: RetryPolicy::default(),
            trust_with_webhook: Duration::from_secs(15 * 60),
            trust_without_webhook: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(20),
            sweep_age: Duration::from_secs(20),
            settle: Duration::from_secs(30),
            replay_window: Duration::from_secs(48 * 3600),
            node_name: format!("node-{}", std::process::id()),
            smtp: None,
            billing_schedule_check: billing::SCHEDULE_CHECK,
        }
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
    pub catalog: Arc<Catalog>,
    pub config: Arc<EngineConfig>,
    pub stats: Arc<Stats>,
    pub breakers: Arc<breaker::Breakers>,
    contacts: Arc<contacts::ContactCache>,
    /// Woken when routing made deliveries, so the dispatcher claims at once.
    work: Arc<tokio::sync::Notify>,
    /// The installation's id, read once (it prefixes our ticket references).
    install_id: Arc<tokio::sync::OnceCell<String>>,
    /// Sends the email channel's deliveries (from `config.smtp`, or given by a test).
    mailer: Option<Arc<dyn mail::Mailer>>,
}

impl Engine {
    pub fn new(
        store: Store,
        connectors: ConnectorRegistry,
        catalog: Arc<Catalog>,
        config: EngineConfig,
    ) -> Engine {
        Engine {
            mailer: mail::mailer_of(config.smtp.as_ref()),
            store,
            connectors,
            catalog,
            config: Arc::new(config),
            stats: Arc::new(Stats::default()),
            breakers: Arc::new(breaker::Breakers::default()),
            contacts: Arc::new(contacts::ContactCache::default()),
            work: Arc::new(tokio::sync::Notify::new()),
            install_id: Arc::new(tokio::sync::OnceCell::new()),
        }
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
            deliver::run(engine, stop).await
        });
        tracker.spawn(router::run(self.clone(), shutdown.clone()));
        tracker.spawn(billing::run_schedule(self.clone(), shutdown.clone()));
        tracker.spawn(sweep::run(self.clone(), shutdown));
    }

    /// Send email through `mailer` instead of the configured SMTP server.
    pub fn with_mailer(mut self, mailer: Arc<dyn mail::Mailer>) -> Engine {
        self.mailer = Some(mailer);
        self
    }

    /// The mailer email goes through, if any (account emails use it too).
    pub fn mailer(&self) -> Option<Arc<dyn mail::Mailer>> {
        self.mailer.clone()
    }

    /// Whether email can be sent (an SMTP server is configured).
    pub fn can_email(&self) -> bool {
        self.mailer.is_some()
    }

    /// Look for due work now (after deliveries were made due by hand).
    pub fn wake(&self) {
        self.work.notify_one();
    }

    /// Total PSA requests made by all connectors of this node.
    pub fn psa_calls(&self) -> u64 {
        self.connectors.total_calls()
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
