//! A simulator of the HaloPSA REST API, written from Halo's published Swagger document and
//! the documented behaviour of its public clients.
//!
//! It serves the resource server (`/api/...`, paths and query names case-insensitive) and
//! the authorisation server (`/auth/token`, OAuth2 client credentials with `?tenant=`),
//! with anonymous discovery at `/api/authinfo`. Big entities (`Client`, `Site`, `Users`,
//! `Tickets`, `Actions`, `ClientContract`) answer wrapped lists with `record_count`, paged with
//! `pageinate`/`page_size`/`page_no` or capped with `count`; setup lists (`Status`, `Team`,
//! `Agent`, `TicketType`, `Category`, `Priority`, `SLA`, `Lookup`) answer bare arrays. POSTs
//! take JSON arrays and create or update by `id`, answering an object for one element. A
//! ticket's `contract_id` must be a `ClientContract` of its client (400 otherwise). Catalogue
//! `Item`s and the `RecurringInvoice`s whose lines bill them on contracts are in `billing`.
//! `Site.client_id` and `Users.site_id` are written as floats (`12.0`), as the Swagger types
//! them. Requests count against a rolling window (default 300 per 5 minutes) answered with
//! 429 "Rate Limit Reached - …" and `Retry-After`.
//!
//! A control surface under `/_sim/` (no authentication, never faulted, never limited)
//! injects faults, reads statistics and fixtures, and acts as a technician.
//!
//! Points the public material leaves open are configurable ([`Config`]): the status answered
//! for an unknown tenant, whether the tenant parameter is required, the urgency and impact
//! lookup ids, the summary limit and the status type codes (0 open, 1 hold, 2 closed here).

mod api;
mod assets;
mod billing;
mod control;
mod errors;
mod faults;
mod routing;
mod seed;
mod store;
mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::{Value, json};

pub use faults::{FaultKind, FaultRule};
pub use seed::ids;

use store::Db;

/// An API application (Configuration > Integrations > Halo API > Applications).
#[derive(Clone, Debug)]
pub struct ApiClient {
    pub client_id: String,
    pub client_secret: String,
    /// Every API call of this application is refused with 403 (an application without
    /// permissions), while its token requests succeed.
    pub forbidden: bool,
}

/// How the simulator behaves. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// The tenant expected in `?tenant=` of the token endpoint.
    pub tenant: String,
    pub api_clients: Vec<ApiClient>,
    /// Requests per rolling window (hosted Halo: 300 per 5 minutes, reported 2022–23).
    pub rate_limit: u32,
    pub rate_window_secs: u64,
    /// Lifetime of an access token (`expires_in`).
    pub token_lifetime_secs: u64,
    /// Refuse token requests without `?tenant=` (Halo-hosted multi-tenant auth servers need
    /// it; some clients omit it). Default false.
    pub require_tenant: bool,
    /// The status answered for an unknown tenant (a public client saw 500) [uncertain].
    pub unknown_tenant_status: u16,
    /// Longest ticket summary accepted [uncertain; 255 assumed].
    pub summary_max: usize,
    /// Lookup type ids of urgency and impact (tenant data).
    pub urgency_lookup_id: i64,
    pub impact_lookup_id: i64,
    /// `page_size` when `pageinate=true` comes without one.
    pub default_page_size: usize,
    /// Latency added to every API call.
    pub base_latency_ms: u64,
    /// Seed of generated tokens.
    pub seed: u64,
    /// The URL authinfo hands out is `<public_url>/auth`; default `http://<listener address>`.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tenant: "demo".into(),
            api_clients: vec![ApiClient {
                client_id: "psabridge-demo".into(),
                client_secret: "halo-demo-secret".into(),
                forbidden: false,
            }],
            rate_limit: 300,
            rate_window_secs: 300,
            token_lifetime_secs: 3600,
            require_tenant: false,
            unknown_tenant_status: 500,
            summary_max: 255,
            urgency_lookup_id: 29,
            impact_lookup_id: 30,
            default_page_size: 50,
            base_latency_ms: 0,
            seed: 0x4A10,
            public_url: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the simulator cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// An issued access token.
struct Issued {
    client_id: String,
    expires: Instant,
}

/// What the request handlers share.
struct Shared {
    config: Config,
    base_url: String,
    db: Mutex<Db>,
    tokens: Mutex<HashMap<String, Issued>>,
    token_counter: Mutex<u64>,
    window: Mutex<VecDeque<Instant>>,
    faults: faults::Faults,
    counters: crate::stats::RequestCounts,
    /// Requests refused with 429 because the rolling window was full (not fault rules).
    rate_limited: std::sync::atomic::AtomicU64,
    /// Outgoing webhooks and their callouts.
    webhooks: webhooks::Webhooks,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, endpoint: &str) {
        self.counters.record(endpoint, None);
    }

    fn stats_json(&self) -> Value {
        let c = self.counters.snapshot();
        let window = Duration::from_secs(self.config.rate_window_secs.max(1));
        let now = Instant::now();
        let used = self
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|t| now.duration_since(**t) < window)
            .count();
        json!({
            "requests": c.requests,
            "by_endpoint": c.by_endpoint,
            "rate_limit": {"limit": self.config.rate_limit, "window_secs": self.config.rate_window_secs, "used": used},
            "rate_limited": self.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    fn reset(&self) {
        *self.db() = seed::seed();
        self.faults.clear();
        self.counters.clear();
        self.rate_limited
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.webhooks.clear();
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Count a request in the rolling window; `Err(wait)` when the window is full.
    fn admit(&self) -> Result<(), Duration> {
        let window = Duration::from_secs(self.config.rate_window_secs.max(1));
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while w.front().is_some_and(|t| now.duration_since(*t) >= window) {
            w.pop_front();
        }
        if w.len() >= self.config.rate_limit as usize {
            self.rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = w
                .front()
                .map(|t| (*t + window).saturating_duration_since(now))
                .unwrap_or(window);
            return Err(wait);
        }
        w.push_back(now);
        Ok(())
    }
}

/// A running HaloPSA simulator. Clones share it.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    serving: crate::server::Serving,
}

impl Simulator {
    /// Serve on `listener` (already bound) until shut down. Returns once it accepts requests.
    pub async fn start(
        listener: tokio::net::TcpListener,
        config: Config,
    ) -> Result<Simulator, Error> {
        let addr: SocketAddr = listener.local_addr()?;
        let base_url = crate::server::base_url(addr, config.public_url.as_deref());
        let shared = Arc::new(Shared {
            token_counter: Mutex::new(config.seed),
            config,
            base_url,
            db: Mutex::new(seed::seed()),
            tokens: Mutex::new(HashMap::new()),
            window: Mutex::new(VecDeque::new()),
            faults: faults::Faults::default(),
            counters: crate::stats::RequestCounts::default(),
            rate_limited: std::sync::atomic::AtomicU64::new(0),
            webhooks: webhooks::Webhooks::default(),
        });
        let router = Router::new()
            .fallback(routing::handle)
            .with_state(shared.clone());
        let serving = crate::server::Serving::start(listener, router, "HaloPSA");
        Ok(Simulator { shared, serving })
    }

    /// `http://127.0.0.1:PORT`: the resource URL (the API is below `/api`, the
    /// authorisation server below `/auth`).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/auth`: what authinfo names.
    pub fn auth_url(&self) -> String {
        format!("{}/auth", self.shared.base_url)
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stop serving (held requests are cut).
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }

    /// Every ticket as the API returns it, in id order.
    pub fn tickets(&self) -> Vec<Value> {
        self.shared
            .db()
            .table("Tickets")
            .values()
            .cloned()
            .collect()
    }

    /// One ticket, normalised as `GET /_sim/tickets/{id}` shows it.
    pub fn ticket(&self, id: i64) -> Option<Value> {
        control::ticket_view(&self.shared.db(), id)
    }

    /// The actions of a ticket, in id order.
    pub fn actions_of(&self, ticket_id: i64) -> Vec<Value> {
        self.shared
            .db()
            .table("Actions")
            .values()
            .filter(|a| api::id_of(&a["ticket_id"]) == Some(ticket_id))
            .cloned()
            .collect()
    }

    /// What `GET /_sim/fixtures` answers.
    pub fn fixtures(&self) -> Value {
        control::fixtures(&self.shared.db())
    }

    /// API requests served so far (token and authinfo requests included).
    pub fn total_requests(&self) -> u64 {
        self.shared.counters.requests()
    }

    /// Add a fault rule (as `POST /_sim/faults` does).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        rule.check()?;
        self.shared.faults.add(rule);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Make every issued token expired (as `POST /_sim/expire-tokens` does).
    pub fn expire_tokens(&self) {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Now, as Halo writes times.
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
