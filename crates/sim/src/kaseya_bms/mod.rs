//! A simulator of the Kaseya BMS REST API v2, written from the vendor's published Swagger
//! document (`/swagger/v2/swagger.json`) and the behaviour public clients rely on.
//!
//! What it serves, under `/v2/` (paths case-insensitive, trailing slash tolerated):
//! - `POST security/authenticate` (form, URL-encoded or multipart: `GrantType=password`,
//!   `UserName`, `Password`, `Tenant`), `POST security/refreshtoken`, `GET security/userinfo`;
//!   every other call needs `Authorization: Bearer <accessToken>` (401 otherwise);
//! - CRM accounts (`summary`, `lookup`, locations, contacts of an account), contact search and
//!   summary;
//! - service-desk tickets: create, list (`GET` with `Filter.X` query names), `POST search`
//!   (same filters in a body), read, JSON-Patch update, notes (list, add), resolve;
//! - lookups: queues, statuses, priorities, issue types and their sub-issue types, SLAs, work
//!   types, and the generic `lookup/{tableName}` and `tenantlookup/{tableName}` tables;
//! - `GET finance/contracts/lookup` (`AccountId`, `Ids`, `Name`, `ExcludeExpiredContracts`),
//!   whose contracts a ticket's `ContractId` must come from (the ticket's account's);
//! - contract billing (`billing`): `GET finance/contracts/summary`, the finance catalogue's
//!   services (`admin/finance/services`: lookup, read, create), services added to recurring
//!   contracts as effective-dated entries, and a service's related contract services (search
//!   and bulk update of cost and price).
//!
//! As the vendor does: every answer is the `{success, error, result}` envelope (with
//! `totalRecords` on paged endpoints), errors included; output is camelCase while request
//! bodies and query names are read in any case; page 0 is page 1; write DTOs are validated
//! (required fields, types, ids that must exist) with the failure envelope; each endpoint has
//! an hourly quota (1500 a call per endpoint by default) answered with 429, the failure
//! envelope and `Retry-After`.
//!
//! Behaviour the public material leaves open is configurable in [`Config`] and marked `[?]`:
//! the HTTP status of failures, the table names behind the generic lookups, the token life.
//!
//! A control surface under `/_sim/` (no vendor authentication, never faulted, never counted or
//! limited) injects faults, reads statistics and the seed's facts, and acts as a technician.
//!
//! Modules, one job each: `server` (accept loop that can close connections unanswered),
//! `routing` (the pipeline of a call), `envelope` (answers), `input` (case-insensitive reading),
//! `auth`, `limits`, `faults`, `control`, `api` (the vendor endpoints), `billing` (contracts,
//! services and their entries), `store` (records and
//! their JSON), `seed`.

mod api;
mod auth;
mod billing;
mod control;
mod envelope;
mod faults;
mod input;
mod limits;
mod routing;
mod seed;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

pub use faults::{FaultKind, FaultRule};

use store::Db;

/// How the simulator behaves. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// The tenant (the MSP's company name in BMS), sent as `Tenant` when authenticating.
    pub tenant: String,
    /// The API user's name and password.
    pub username: String,
    pub password: String,
    /// Calls per endpoint (method and path template) per rolling hour. BMS documents 1500.
    pub hourly_limit_per_endpoint: u32,
    /// How long an access token lives, in seconds. [?] Not documented; one hour by default.
    pub token_ttl_secs: u64,
    /// HTTP status of a refused login. [?] Undocumented; 401 by default.
    pub auth_failure_status: u16,
    /// HTTP status of a validation failure. [?] 200 or 400 (the body says `success:false`
    /// either way); 400 by default.
    pub validation_status: u16,
    /// Table names of the generic lookup that hold ticket types, ticket sources and note
    /// types. [?] The vendor does not publish them.
    pub ticket_type_table: String,
    pub source_table: String,
    pub note_type_table: String,
    /// Whether the source table answers at all (`false`: it answers an empty list, as a
    /// tenant without it would, so that clients fall back to BMS's fixed source ids).
    pub serve_source_table: bool,
    /// Longest ticket title accepted. [?] Not in the Swagger; 255 by default.
    pub title_max: usize,
    /// Latency added to every API call.
    pub base_latency_ms: u64,
    /// Seed of the generated part of the data (company names, extra contacts).
    pub seed: u64,
    /// Active companies besides Acme Ltd (default 139: 140 active in all).
    pub extra_active_companies: usize,
    /// The base URL it reports; default `http://<listener address>`.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tenant: "demo-msp".into(),
            username: "api.psabridge".into(),
            password: "bms-demo-password".into(),
            hourly_limit_per_endpoint: 1500,
            token_ttl_secs: 3600,
            auth_failure_status: 401,
            validation_status: 400,
            ticket_type_table: "TicketType".into(),
            source_table: "TicketSource".into(),
            note_type_table: "NoteType".into(),
            serve_source_table: true,
            title_max: 255,
            base_latency_ms: 0,
            seed: 2026,
            extra_active_companies: 139,
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

/// What the request handlers share.
struct Shared {
    config: Config,
    base_url: String,
    db: Mutex<Db>,
    tokens: Mutex<auth::Tokens>,
    quota: Mutex<limits::Quota>,
    faults: faults::Faults,
    counters: crate::stats::RequestCounts,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, endpoint: &str, outcome: &str) {
        self.counters.record(endpoint, Some(outcome));
    }

    fn stats_json(&self) -> Value {
        let c = self.counters.snapshot();
        json!({
            "requests": c.requests,
            "by_endpoint": c.by_endpoint,
            "by_outcome": c.by_outcome,
            "hourly_limit_per_endpoint": self.config.hourly_limit_per_endpoint,
        })
    }

    fn reset(&self) {
        *self.db() = seed::seeded(&self.config);
        self.faults.clear();
        self.counters.clear();
        self.quota.lock().unwrap_or_else(|p| p.into_inner()).clear();
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
        let shared = Arc::new(Shared {
            db: Mutex::new(seed::seeded(&config)),
            tokens: Mutex::new(auth::Tokens::default()),
            quota: Mutex::new(limits::Quota::default()),
            faults: faults::Faults::default(),
            counters: crate::stats::RequestCounts::default(),
            base_url,
            config,
        });
        let router = Router::new()
            .fallback(routing::handle)
            .with_state(shared.clone());
        let serving = crate::server::Serving::start(listener, router, "BMS");
        Ok(Simulator { shared, serving })
    }

    /// `http://127.0.0.1:PORT`: the API host (what `api.bms.kaseya.com` is for real).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stop serving (held requests are cut).
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }

    /// A ticket in the normalised view of `GET /_sim/tickets/{id}`.
    pub fn ticket(&self, id: i64) -> Option<Value> {
        let db = self.shared.db();
        db.tickets.get(&id).map(|t| db.normalised(t))
    }

    /// Each contract's service lines in force now, as `GET /_sim/billing` answers them.
    pub fn billing(&self) -> Value {
        billing::billing_view(&self.shared.db())
    }

    /// Every ticket, normalised, in id order.
    pub fn tickets(&self) -> Vec<Value> {
        let db = self.shared.db();
        db.tickets.values().map(|t| db.normalised(t)).collect()
    }

    /// The seed's facts, as `GET /_sim/fixtures` answers them.
    pub fn fixtures(&self) -> Value {
        self.shared.db().fixtures()
    }

    /// `GET /_sim/stats`.
    pub fn stats(&self) -> Value {
        self.shared.stats_json()
    }

    /// API requests served so far (`/_sim/` not counted).
    pub fn total_requests(&self) -> u64 {
        self.shared.counters.requests()
    }

    /// Add a fault rule (as `POST /_sim/faults` does).
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        rule.check_hitting("call")?;
        self.shared.faults.add(rule);
        Ok(())
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Data back to the seed; faults, statistics and quotas cleared (tokens stay valid).
    pub fn reset(&self) {
        self.shared.reset();
    }
}

/// Now, as BMS writes times (UTC, `Z`).
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn latency(config: &Config) -> Duration {
    Duration::from_millis(config.base_latency_ms)
}
