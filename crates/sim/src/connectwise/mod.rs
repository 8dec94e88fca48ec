//! A simulator of the ConnectWise PSA (Manage) REST API, written from ConnectWise's published
//! API description and the public behaviour its clients rely on.
//!
//! It serves `/{codebase}/apis/3.0/...` under any codebase prefix (`v4_6_release`, `v2025_1`,
//! …) and `/login/companyinfo/{company}` for codebase discovery. Every API call needs Basic
//! authentication as `company+publicKey:privateKey` and a `clientId` header. List endpoints
//! take `conditions`, `childConditions`, `orderBy`, `fields`, `page` and `pageSize` (parameter
//! names case-insensitive, unknown ones ignored) and answer a bare JSON array with a `Link`
//! header whose URLs end in `page=N`; `/count` answers `{"count": N}`. Creates answer 201,
//! updates take JSON Patch (paths with or without a leading `/`), validation failures answer
//! 400 with an `InvalidObject` body and its `errors[]` (a ticket's `agreement` must be one of
//! its company's `finance/agreements`), and a token bucket per company and
//! client id answers 429 with `Retry-After`.
//!
//! A control surface under `/_sim/` (no ConnectWise authentication, never faulted or limited)
//! injects faults, reads statistics and seed facts, and acts as a technician.
//!
//! Modules, one job each: `server` (accept loop that can close connections unanswered),
//! `routing` (paths and the order of a call: faults, authentication, limits, routes), `auth`,
//! `limits`, `faults`, `errors`, `callbacks` (`system/callbacks` and their signed callouts), `conditions` (the query language), `listing` (filters,
//! ordering, fields, paging), `api` (the endpoints), `tickets` (ticket and note writes),
//! `catalog` (the product catalogue), `additions` (products billed on agreements),
//! `store` and `seed` (the data), `control` (`/_sim/`).

mod additions;
mod api;
mod auth;
mod callbacks;
mod catalog;
pub mod conditions;
mod configurations;
mod control;
mod errors;
mod faults;
mod limits;
mod listing;
mod routing;
mod seed;
mod store;
mod tickets;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use serde_json::{Value, json};

pub use callbacks::signature as callback_signature;
pub use configurations::MANAGED_WORKSTATION_TYPE;
pub use errors::ApiError;
pub use faults::{FaultKind, FaultRule};

use store::Db;

/// An API member's key pair (System > Members > API Members > API Keys).
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub public_key: String,
    pub private_key: String,
    /// The member's identifier, written as `createdBy`/`updatedBy`.
    pub member_identifier: String,
}

/// The token bucket of one company and client id.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Requests refilled per second.
    pub per_second: f64,
    /// The bucket's size (requests that may come at once).
    pub burst: u32,
}

/// How the simulator behaves. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// The company id people log in with (case-insensitive, as ConnectWise treats it).
    pub company_id: String,
    /// The company's display name (`CompanyName` of companyinfo).
    pub company_name: String,
    /// The key pairs accepted.
    pub api_keys: Vec<ApiKey>,
    /// The client ids accepted in the `clientId` header.
    pub client_ids: Vec<String>,
    /// The codebase companyinfo announces (`v2025_1/`); every codebase prefix is served.
    pub codebase: String,
    /// `VersionCode` of companyinfo.
    pub version_code: String,
    /// Throttling per company and client id (`None`: never 429). ConnectWise publishes no
    /// number, so the default is generous and tests set their own.
    pub rate_limit: Option<RateLimit>,
    /// The board a ticket created without `board` lands on (ConnectWise uses the API
    /// member's default board; which one is a tenant setting).
    pub default_board_id: i64,
    /// The largest `pageSize` honoured (ConnectWise: 1000); larger values are clamped.
    pub max_page_size: u32,
    /// The `pageSize` when none is given (ConnectWise: 25).
    pub default_page_size: u32,
    /// Latency added to every API call.
    pub base_latency_ms: u64,
    /// The URL the simulator calls itself in `Link` headers, `_info` hrefs and companyinfo;
    /// default `http://<listener address>`.
    pub public_url: Option<String>,
    /// Seed of the generated part of the data (company names, contacts).
    pub seed: u64,
}

/// The demo credentials (also in `psabridge demo`'s `demo.json`).
pub const DEMO_COMPANY: &str = "demomsp";
pub const DEMO_PUBLIC_KEY: &str = "psabridgepub";
pub const DEMO_PRIVATE_KEY: &str = "cw-demo-private";
pub const DEMO_CLIENT_ID: &str = "3f1c8b52-5b0e-4c55-9a63-6d2f0b7c1a90";

impl Default for Config {
    fn default() -> Self {
        Config {
            company_id: DEMO_COMPANY.into(),
            company_name: "Demo MSP".into(),
            api_keys: vec![ApiKey {
                public_key: DEMO_PUBLIC_KEY.into(),
                private_key: DEMO_PRIVATE_KEY.into(),
                member_identifier: "PSABridge".into(),
            }],
            client_ids: vec![DEMO_CLIENT_ID.into()],
            codebase: "v2025_1/".into(),
            version_code: "v2025.1".into(),
            rate_limit: Some(RateLimit {
                per_second: 40.0,
                burst: 400,
            }),
            default_board_id: 1,
            max_page_size: 1000,
            default_page_size: 25,
            base_latency_ms: 0,
            public_url: None,
            seed: 20_261_122,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the simulator cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// What the request handlers share.
struct Shared {
    config: Config,
    /// `http://127.0.0.1:PORT`
    base_url: String,
    db: Mutex<Db>,
    buckets: limits::Buckets,
    faults: faults::Faults,
    counters: crate::stats::RequestCounts,
    /// The last callback callouts (`/_sim/callback-deliveries`).
    callouts: callbacks::DeliveryLog,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT/v4_6_release/apis/3.0`: what `_info` hrefs name.
    fn api_base(&self) -> String {
        format!("{}/v4_6_release/apis/3.0", self.base_url)
    }

    fn record(&self, endpoint: &str, status: &str) {
        self.counters.record(endpoint, Some(status));
    }

    fn stats_json(&self) -> Value {
        let c = self.counters.snapshot();
        json!({
            "requests": c.requests,
            "by_endpoint": c.by_endpoint,
            "by_status": c.by_outcome,
        })
    }

    fn reset(&self) {
        *self.db() = Db::seeded(&self.config, &self.api_base());
        self.faults.clear();
        self.buckets.clear();
        self.counters.clear();
        self.callouts.clear();
    }
}

/// A running simulator. Clones share it; it serves until [`Simulator::shutdown`] or until the
/// last handle is dropped.
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
        let db = Db::seeded(&config, &format!("{base_url}/v4_6_release/apis/3.0"));
        let shared = Arc::new(Shared {
            base_url,
            db: Mutex::new(db),
            buckets: limits::Buckets::default(),
            faults: faults::Faults::with_seeds(faults::DRAW_SEEDS),
            counters: crate::stats::RequestCounts::default(),
            callouts: callbacks::DeliveryLog::default(),
            config,
        });
        let router = Router::new()
            .fallback(routing::handle)
            .with_state(shared.clone());
        let serving = crate::server::Serving::start(listener, router, "ConnectWise");
        Ok(Simulator { shared, serving })
    }

    /// `http://127.0.0.1:PORT`: what a user types as the site (and where companyinfo is).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/v4_6_release/apis/3.0`: an API base URL clients may use.
    pub fn api_url(&self) -> String {
        self.shared.api_base()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stop serving (held requests are cut).
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }

    /// Every ticket as the API returns it, in id order.
    pub fn tickets(&self) -> Vec<Value> {
        let db = self.shared.db();
        db.table(store::TICKETS)
            .values()
            .map(|t| db.ticket_out(t))
            .collect()
    }

    /// One ticket in the normalised view of `GET /_sim/tickets/{id}`.
    pub fn ticket(&self, id: i64) -> Option<Value> {
        let db = self.shared.db();
        db.table(store::TICKETS)
            .get(&id)
            .map(|t| control::normalised(&db, t))
    }

    /// The notes of a ticket as the API returns them, in id order.
    pub fn notes_of(&self, ticket_id: i64) -> Vec<Value> {
        let db = self.shared.db();
        db.notes_of(ticket_id)
            .into_iter()
            .map(store::note_out)
            .collect()
    }

    /// The facts of `GET /_sim/fixtures`.
    pub fn fixtures(&self) -> Value {
        control::fixtures(&self.shared.db())
    }

    /// API requests served so far.
    pub fn total_requests(&self) -> u64 {
        self.shared.counters.requests()
    }

    /// Add a fault rule (as `POST /_sim/faults` does).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        rule.check()?;
        self.shared.faults.add(rule);
        Ok(())
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Data back to the seed; faults, limits and statistics cleared (as `POST /_sim/reset`).
    pub fn reset(&self) {
        self.shared.reset();
    }
}

/// Now, as ConnectWise writes times (UTC, seconds, `Z`).
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
