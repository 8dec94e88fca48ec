//! A simulator of the Autotask PSA REST API, written from Autotask's documentation.
//!
//! It serves `/ATServicesRest/V1.0/...` (paths case-insensitive, trailing slash tolerated)
//! with zone discovery pointing back at itself, the authentication headers, queries with every
//! documented operator and id-ordered paging, entity metadata with picklists, Autotask's error
//! bodies and status codes, its rolling-hour request threshold (with the documented latency
//! tiers) and its threads-per-endpoint limit, and signed ticket webhooks. A control surface
//! under `/_sim/` (no Autotask authentication) injects faults, reads statistics and acts as a
//! technician; it is never faulted or limited itself.
//!
//! Modules, one job each:
//! - [`server`](self): accept loop (closing connections unanswered for faults);
//! - `routing`: path normalisation and the order of a call (faults, auth, limits, routes);
//! - `auth`, `limits`, `faults`, `control`, `webhooks`: what their names say;
//! - `entities`: the entity routes; `query`: the query engine; `validation`: typing and rules;
//! - `model`: entity metadata; `seed`: the seed data; `store`: records, indexes, state file.
//!
//! Behaviour the public documentation leaves open is configurable and marked so in
//! [`Config`] and the crate README.

mod auth;
mod billing;
mod control;
mod entities;
mod errors;
mod faults;
mod limits;
mod model;
mod query;
mod routing;
mod seed;
mod store;
mod validation;
mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

pub use errors::ApiError;
pub use faults::{FaultKind, FaultRule};
pub use model::ids;
pub use webhooks::signature as webhook_signature;

use model::EntityInfo;
use store::Db;

/// An API-only user of the simulated database.
#[derive(Clone, Debug)]
pub struct ApiUser {
    /// The user name (an e-mail-like string), sent in `UserName` and to zone discovery.
    pub username: String,
    /// Sent in `Secret`.
    pub secret: String,
    /// The API tracking identifier, sent in `ApiIntegrationCode` (27 characters in Autotask).
    pub integration_code: String,
}

/// How the simulator behaves. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// The API users (default: one demo user).
    pub api_users: Vec<ApiUser>,
    /// Requests per rolling 60 minutes for the whole database (Autotask: 10,000).
    pub hourly_limit: u32,
    /// Requests in flight per (integration code, entity) (Autotask: 3 for new integrations).
    pub thread_limit: u32,
    /// Autotask's usage latency: +0.5 s per request from 50% of the hourly limit, +1 s from 75%.
    pub latency_tiers: bool,
    /// Latency added to every API call (a real tenant answers in about 80–200 ms).
    pub base_latency_ms: u64,
    /// Keep the data in this file: loaded at start, saved (debounced, atomically) after
    /// changes and at shutdown. `None` keeps nothing.
    pub state_file: Option<PathBuf>,
    /// The `TicketWebhookFields.fieldID` that means the ticket's `status`. Autotask does not
    /// publish its field ids, so this is configurable (default 13).
    pub status_webhook_field_id: i64,
    /// Whether the API user's default ticket category supplies a due date, so that creates
    /// without `dueDateTime` succeed. Tenant configuration in Autotask (default true).
    pub category_supplies_due_date: bool,
    /// How far ahead the category's default due date lies, in hours (default 24).
    pub category_due_hours: i64,
    /// GET by id of a missing record: `false` answers 200 `{"item": null}` (default; what
    /// django-autotask expects), `true` answers 404 (what apigrate maps). Clients disagree.
    pub missing_item_is_404: bool,
    /// Retries of a webhook callout that fails (default 2: three attempts).
    pub webhook_retries: u32,
    /// The URL zone discovery hands out is `<public_url>/ATServicesRest/`; default
    /// `http://<listener address>` (127.0.0.1 when bound to all interfaces).
    pub public_url: Option<String>,
    /// `zoneName` of zone discovery.
    pub zone_name: String,
    /// `ci` of zone discovery (the tenant's id).
    pub ci: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_users: vec![ApiUser {
                username: "psabridge-api@bridgewater-it.example".into(),
                secret: "Sim-Secret-2026!".into(),
                integration_code: "SIMULATEDINTEGRATIONCODE123".into(),
            }],
            hourly_limit: 10_000,
            thread_limit: 3,
            latency_tiers: true,
            base_latency_ms: 0,
            state_file: None,
            status_webhook_field_id: 13,
            category_supplies_due_date: true,
            category_due_hours: 24,
            missing_item_is_404: false,
            webhook_retries: 2,
            public_url: None,
            zone_name: "Simulated Zone (America East)".into(),
            ci: 12345,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the simulator cannot serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("the state file {path} is unreadable: {reason}")]
    State { path: String, reason: String },
}

/// Requests the simulator has served (see also `GET /_sim/stats`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RequestStats {
    /// API requests (zone discovery included; `/_sim/` not).
    pub total: u64,
    /// Per entity (child routes count as the child), per method.
    pub by_entity: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per outcome: the status code, or `dropped`/`held` for connection faults.
    pub by_outcome: BTreeMap<String, u64>,
    /// Requests counted against the hourly threshold in the last 60 minutes.
    pub threshold_used: u64,
    pub threshold_limit: u32,
    /// Requests in flight, per entity.
    pub in_flight: BTreeMap<String, u32>,
}

#[derive(Default)]
struct Counters {
    total: u64,
    by_entity: BTreeMap<String, BTreeMap<String, u64>>,
    by_outcome: BTreeMap<String, u64>,
}

/// Every entity's metadata (the same for every simulator).
fn all_entities() -> &'static [EntityInfo] {
    static ENTITIES: OnceLock<Vec<EntityInfo>> = OnceLock::new();
    ENTITIES.get_or_init(model::entities)
}

/// The entities whose rows the contract billing rules write.
fn billing_entities() -> billing::Entities {
    let find = |name: &str| {
        all_entities()
            .iter()
            .find(|e| e.name == name)
            .expect("billing entities are in the model")
    };
    billing::Entities {
        contract_services: find("ContractServices"),
        contract_service_units: find("ContractServiceUnits"),
    }
}

/// What the request handlers share.
struct Shared {
    config: Config,
    /// `http://127.0.0.1:PORT`
    base_url: String,
    /// `http://127.0.0.1:PORT/ATServicesRest/`
    zone_url: String,
    db: Mutex<Db>,
    dirty: AtomicBool,
    window: Mutex<limits::Window>,
    threads: Arc<limits::Threads>,
    faults: faults::Faults,
    counters: Mutex<Counters>,
    deliveries: webhooks::DeliveryLog,
    http: reqwest::Client,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    fn entity(&self, name: &str) -> Option<&'static EntityInfo> {
        all_entities()
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// The child entity of `parent` served at `/Parent/{id}/<child_path>`.
    fn child_of(&self, parent: &EntityInfo, child_path: &str) -> Option<&'static EntityInfo> {
        all_entities().iter().find(|e| {
            e.parent.is_some_and(|(p, _)| p == parent.name)
                && e.child_path
                    .is_some_and(|c| c.eq_ignore_ascii_case(child_path))
        })
    }

    /// The entity a request counts against (thread limit, statistics, fault filters): the
    /// URL's entity, or on a child route (`/Tickets/1/Notes`) the child's.
    fn bucket_of(&self, rest: &[String]) -> String {
        let Some(first) = rest.first() else {
            return String::new();
        };
        let Some(e) = self.entity(first) else {
            return first.to_ascii_lowercase();
        };
        if rest.len() >= 3
            && rest[1].parse::<i64>().is_ok()
            && let Some(child) = self.child_of(e, &rest[2])
        {
            return child.name.to_string();
        }
        e.name.to_string()
    }

    fn window_count(&self) -> u64 {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count()
    }

    fn record(&self, entity: &str, method: &str, outcome: &str) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.total += 1;
        *c.by_entity
            .entry(entity.to_string())
            .or_default()
            .entry(method.to_string())
            .or_default() += 1;
        *c.by_outcome.entry(outcome.to_string()).or_default() += 1;
    }

    fn stats(&self) -> RequestStats {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        RequestStats {
            total: c.total,
            by_entity: c.by_entity.clone(),
            by_outcome: c.by_outcome.clone(),
            threshold_used: self.window_count(),
            threshold_limit: self.config.hourly_limit,
            in_flight: self.threads.snapshot(),
        }
    }

    fn stats_json(&self) -> Value {
        let st = self.stats();
        json!({
            // `requests` is what every simulator's stats say; `total_requests` is kept for
            // scripts written against this one.
            "requests": st.total,
            "total_requests": st.total,
            "by_entity": st.by_entity,
            "by_outcome": st.by_outcome,
            "threshold": {"limit": st.threshold_limit, "used_in_last_hour": st.threshold_used, "timeframe_minutes": 60},
            "in_flight": st.in_flight.values().sum::<u32>(),
            "in_flight_by_entity": st.in_flight,
        })
    }

    fn reset_stats(&self) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()) = Counters::default();
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn reset_data(&self) {
        *self.db() = Db::seeded(all_entities());
        self.mark_dirty();
    }

    fn save_if_dirty(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let result = self.db().save(path);
        if let Err(e) = result {
            self.mark_dirty();
            tracing::warn!(path = %path.display(), error = %e, "the simulator could not save its state");
        }
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
        let entities = all_entities();
        let db = match &config.state_file {
            Some(p) if p.exists() => Db::load(p, entities).map_err(|reason| Error::State {
                path: p.display().to_string(),
                reason,
            })?,
            _ => Db::seeded(entities),
        };
        let base_url = crate::server::base_url(addr, config.public_url.as_deref());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let fresh = config.state_file.as_ref().is_some_and(|p| !p.exists());
        let shared = Arc::new(Shared {
            zone_url: format!("{base_url}/ATServicesRest/"),
            base_url,
            db: Mutex::new(db),
            dirty: AtomicBool::new(fresh),
            window: Mutex::new(limits::Window::new()),
            threads: Arc::new(limits::Threads::default()),
            faults: faults::Faults::default(),
            counters: Mutex::new(Counters::default()),
            deliveries: webhooks::DeliveryLog::default(),
            http,
            config,
        });
        let router = Router::new()
            .fallback(routing::handle)
            .with_state(shared.clone());
        let saver = shared.clone();
        let serving = crate::server::Serving::spawn(move |stopped| async move {
            let mut saver_stop = stopped.clone();
            // Save the state file while dirty, at most four times a second.
            let persist = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {
                            let s = saver.clone();
                            let _ = tokio::task::spawn_blocking(move || s.save_if_dirty()).await;
                        }
                        _ = saver_stop.changed() => break,
                    }
                }
                saver
            });
            crate::server::serve(listener, router, stopped, "Autotask").await;
            if let Ok(saver) = persist.await {
                let _ = tokio::task::spawn_blocking(move || saver.save_if_dirty()).await;
            }
        });
        Ok(Simulator { shared, serving })
    }

    /// `http://127.0.0.1:PORT`: the zone-discovery host.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/ATServicesRest/`: the zone's URL, as zone discovery answers it.
    pub fn zone_url(&self) -> String {
        self.shared.zone_url.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Stop serving (held requests are cut) and save the state file.
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }

    /// Every record of an entity (`"Tickets"`, `"Contacts"`, …), in id order.
    pub fn records(&self, entity: &str) -> Vec<Value> {
        let db = self.shared.db();
        db.records
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(entity))
            .map(|(_, t)| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every ticket, in id order.
    pub fn tickets(&self) -> Vec<Value> {
        self.records("Tickets")
    }

    /// One ticket.
    pub fn ticket(&self, id: i64) -> Option<Value> {
        self.shared.db().get("Tickets", id).cloned()
    }

    /// The notes of a ticket, in id order.
    pub fn notes_of(&self, ticket_id: i64) -> Vec<Value> {
        self.shared.db().children_of("TicketNotes", ticket_id)
    }

    /// What has been served.
    pub fn request_stats(&self) -> RequestStats {
        self.shared.stats()
    }

    /// API requests served so far.
    pub fn total_requests(&self) -> u64 {
        self.shared.stats().total
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

    /// Webhook deliveries (the last 200): target, sequence number, attempts, outcome.
    pub fn webhook_deliveries(&self) -> Vec<Value> {
        self.shared.deliveries.list()
    }
}

/// Now, as Autotask writes times (UTC, milliseconds, `Z`).
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
