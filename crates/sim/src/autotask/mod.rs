//! A simulator of the Autotask PSA REST API, written from Autotask's documentation.
//!
//! It serves `/ATServicesRest/V1.0/...` (paths case-insensitive, trailing slash tolerated)
//! with zone discovery pointing back at itself, the three authentication headers, queries
//! with every documented operator and id-ordered paging, entity metadata with picklists,
//! Autotask's error bodies and status codes, its rolling-hour request threshold (with the
//! documented latency tiers) and its three-threads-per-endpoint limit, and signed ticket
//! webhooks. A control surface under `/_sim/` (no Autotask auth) injects faults and reads
//! statistics; it is never affected by faults itself.
//!
//! Behaviour the public documentation leaves open is configurable and marked so in
//! [`Config`] and the crate README.

mod data;
mod entities;
mod faults;
mod query;
mod webhooks;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use thiserror::Error;

use data::EntityInfo;
pub use data::ids;
use faults::{FaultKind, FaultRule};

/// An API user of the simulated database.
#[derive(Clone, Debug)]
pub struct ApiUser {
    pub username: String,
    pub secret: String,
    /// The API tracking identifier (27 characters in Autotask).
    pub integration_code: String,
}

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct Config {
    pub api_users: Vec<ApiUser>,
    /// Requests per rolling 60 minutes for the whole database (Autotask: 10,000).
    pub hourly_limit: u32,
    /// Requests in flight per (integration code, entity) (Autotask: 3 for new integrations).
    pub thread_limit: u32,
    /// Add Autotask's usage latency: +0.5 s per request at 50% of the hourly limit, +1 s at 75%.
    pub latency_tiers: bool,
    /// Latency added to every API request (a real tenant answers in about 80–200 ms).
    pub base_latency_ms: u64,
    /// Keep the data in this file across restarts; `None` keeps nothing.
    pub state_file: Option<PathBuf>,
    /// The `TicketWebhookFields.fieldID` of the ticket status. Not published by Autotask:
    /// configurable (default 13).
    pub status_webhook_field_id: i64,
    /// Whether the API user's default ticket category supplies a due date, so that creates
    /// without `dueDateTime` succeed. Tenant-dependent in Autotask (default true).
    pub category_supplies_due_date: bool,
    /// GET by id of a missing record: `false` answers 200 `{"item": null}` (default, as
    /// several clients expect), `true` answers 404. Clients disagree on which Autotask does.
    pub missing_item_is_404: bool,
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
            missing_item_is_404: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
    #[error("the state file {path} is unreadable: {reason}")]
    State { path: String, reason: String },
}

/// The simulated database.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Db {
    records: BTreeMap<String, BTreeMap<i64, Value>>,
    next_id: i64,
    ticket_seq: u64,
    webhook_seq: u64,
}

struct Shared {
    config: Config,
    base_url: String,
    entities: Vec<EntityInfo>,
    db: Mutex<Db>,
    dirty: std::sync::atomic::AtomicBool,
    /// Request times of the rolling hour.
    window: Mutex<VecDeque<Instant>>,
    in_flight: Mutex<HashMap<(String, String), u32>>,
    faults: Mutex<Vec<FaultRule>>,
    stats: Mutex<BTreeMap<String, u64>>,
    http: reqwest::Client,
}

/// A running simulator. Dropping it does not stop it; call [`Simulator::shutdown`].
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Simulator {
    /// Serve on `listener` (already bound) until shut down. Returns once it accepts requests.
    pub async fn start(
        listener: tokio::net::TcpListener,
        config: Config,
    ) -> Result<Simulator, Error> {
        let addr: SocketAddr = listener.local_addr()?;
        let now = now_text();
        let db = match &config.state_file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                serde_json::from_str(&text).map_err(|e| Error::State {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?
            }
            _ => Db {
                records: data::seed(&now)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                next_id: 31000000,
                ticket_seq: 0,
                webhook_seq: 0,
            },
        };
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            entities: data::entities(),
            db: Mutex::new(db),
            dirty: std::sync::atomic::AtomicBool::new(false),
            window: Mutex::new(VecDeque::new()),
            in_flight: Mutex::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            config,
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let saver = shared.clone();
        let mut saver_stop = stop.subscribe();
        let task = tokio::spawn(async move {
            // Save the state file while dirty, at most twice a second.
            let persist = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => saver.save_if_dirty(),
                        _ = saver_stop.changed() => { saver.save_if_dirty(); return; }
                    }
                }
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
            let _ = persist.await;
        });
        Ok(Simulator {
            shared,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// `http://127.0.0.1:PORT`: where zone discovery is asked.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/ATServicesRest/`: the zone's URL, as zone discovery answers.
    pub fn zone_url(&self) -> String {
        format!("{}/ATServicesRest/", self.shared.base_url)
    }

    /// Stop serving and save the state file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Every record of an entity (for tests).
    pub fn records(&self, entity: &str) -> Vec<Value> {
        let db = self.shared.db.lock().unwrap_or_else(|p| p.into_inner());
        db.records
            .get(entity)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// API requests served so far (for tests).
    pub fn total_requests(&self) -> u64 {
        self.shared
            .stats
            .lock()
            .map(|s| s.get("total").copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Shared {
    fn save_if_dirty(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        if !self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let text = {
            let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
            serde_json::to_string(&*db).unwrap_or_default()
        };
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .is_err()
        {
            tracing::warn!(path = %path.display(), "the simulator could not save its state");
        }
    }

    fn entity(&self, name: &str) -> Option<&EntityInfo> {
        self.entities
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    fn count(&self, key: &str) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *s.entry(key.to_string()).or_default() += 1;
        *s.entry("total".to_string()).or_default() += 1;
    }

    /// Requests in the rolling hour, after dropping older ones.
    fn window_count(&self) -> usize {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let hour = Duration::from_secs(3600);
        while w.front().is_some_and(|t| t.elapsed() > hour) {
            w.pop_front();
        }
        w.len()
    }
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An Autotask error answer: `{"errors": [...]}`.
pub(crate) fn errors(status: StatusCode, messages: &[&str]) -> Response {
    (status, axum::Json(json!({"errors": messages}))).into_response()
}

fn iis_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>",
    )
        .into_response()
}

pub(crate) fn not_allowed(method: &Method) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({"Message": format!("The requested resource does not support http method '{method}'.")})),
    )
        .into_response()
}

/// Decrements the in-flight count of an endpoint when the request ends, however it ends.
struct InFlight {
    shared: Arc<Shared>,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// End the connection without an answer, as a network failure would.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("simulated dropped connection"))
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_string();
    let lower = path.to_ascii_lowercase();
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if lower.starts_with("/_sim") {
        return faults::control(&s, &method, &segs[1..], uri.query(), &body).await;
    }
    if segs.first().map(|p| p.to_ascii_lowercase()) != Some("atservicesrest".into()) {
        return iis_not_found();
    }
    let rest: Vec<&str> = segs[1..].to_vec();
    if rest.len() == 1 && rest[0].eq_ignore_ascii_case("VersionInformation") {
        return axum::Json(json!({"apiVersions": ["1.0"]})).into_response();
    }
    if rest.first().map(|v| v.eq_ignore_ascii_case("v1.0")) != Some(true) {
        return iis_not_found();
    }
    let rest = &rest[1..];
    let entity_name = rest.first().copied().unwrap_or("").to_string();

    // Zone discovery: no authentication, no thread limit.
    if rest.len() == 1 && entity_name.eq_ignore_ascii_case("zoneInformation") {
        s.count("GET zoneInformation");
        let user = uri
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k.eq_ignore_ascii_case("user"))
            })
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        if !s
            .config
            .api_users
            .iter()
            .any(|u| u.username.eq_ignore_ascii_case(&user))
        {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                &["Zone information could not be determined"],
            );
        }
        return axum::Json(json!({
            "zoneName": "Simulated Zone (America East)",
            "url": format!("{}/ATServicesRest/", s.base_url),
            "webUrl": format!("{}/", s.base_url),
            "ci": 12345,
        }))
        .into_response();
    }

    // Faults come first: a real network or server failure happens before anything else.
    let fault = faults::take(&s, &method, &entity_name, &path);
    let mut after_commit = false;
    let mut slow = Duration::ZERO;
    if let Some(rule) = &fault {
        match rule.kind {
            FaultKind::Status => return faults::status_answer(rule),
            FaultKind::Html => {
                return (
                    StatusCode::from_u16(rule.status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body><h1>Server Error in '/ATServicesRest' Application.</h1></body></html>",
                )
                    .into_response();
            }
            // A slow answer holds its thread slot while it is slow, as a slow server does.
            FaultKind::Delay => slow = Duration::from_millis(rule.delay_ms.unwrap_or(1000)),
            FaultKind::Timeout => {
                tokio::time::sleep(Duration::from_millis(rule.hold_ms.unwrap_or(120_000))).await;
                return errors(StatusCode::GATEWAY_TIMEOUT, &["The request timed out."]);
            }
            FaultKind::Drop => drop_connection(),
            FaultKind::AfterCommit => after_commit = true,
        }
    }

    // Authentication.
    let user = header(&headers, "username").unwrap_or("");
    let secret = header(&headers, "secret").unwrap_or("");
    let code = header(&headers, "apiintegrationcode").unwrap_or("");
    let Some(api_user) = s
        .config
        .api_users
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(user) && u.secret == secret)
    else {
        s.count("401");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"errors": ["Unauthorized"]})),
        )
            .into_response();
    };
    if api_user.integration_code != code {
        s.count("500 IntegrationCode");
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            &["IntegrationCode is invalid."],
        );
    }

    // The rolling-hour threshold, and the latency Autotask adds as usage grows.
    let used = s.window_count();
    let limit = s.config.hourly_limit.max(1) as usize;
    if used >= limit {
        s.count("429 threshold");
        return errors(
            StatusCode::TOO_MANY_REQUESTS,
            &[&format!(
                "Request threshold exceeded: {limit} requests per 60 minutes. Requests are refused until usage falls below the threshold."
            )],
        );
    }
    s.window
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(Instant::now());
    let mut delay = Duration::from_millis(s.config.base_latency_ms) + slow;
    if s.config.latency_tiers {
        if used * 4 >= limit * 3 {
            delay += Duration::from_millis(1000);
        } else if used * 2 >= limit {
            delay += Duration::from_millis(500);
        }
    }

    // Three requests in flight per integration code and entity.
    let entity_key = s
        .entity(&entity_name)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|| entity_name.to_ascii_lowercase());
    let bucket = entity_bucket(&s, rest, &entity_key);
    let key = (code.to_string(), bucket.clone());
    {
        let mut m = s.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.clone()).or_default();
        if *n >= s.config.thread_limit {
            s.count("429 threads");
            return errors(
                StatusCode::TOO_MANY_REQUESTS,
                &[&format!(
                    "Thread Threshold Exceeded: the Autotask API thread threshold of {} threads has been exceeded for {bucket}. Internal code: Itgenatr005",
                    s.config.thread_limit
                )],
            );
        }
        *n += 1;
    }
    let _guard = InFlight {
        shared: s.clone(),
        key,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    s.count(&format!("{method} {bucket}"));

    let impersonate =
        header(&headers, "impersonationresourceid").and_then(|v| v.parse::<i64>().ok());
    let answer = entities::dispatch(&s, &method, rest, uri.query(), &body, impersonate).await;
    if after_commit {
        drop_connection();
    }
    answer
}

/// The thread-limit bucket of a request: its entity, where child routes count as the child.
fn entity_bucket(s: &Shared, rest: &[&str], fallback: &str) -> String {
    if rest.len() >= 3
        && let Some(parent) = s.entity(rest[0])
        && let Some(child) = s.entities.iter().find(|e| {
            e.parent.is_some_and(|(p, _)| p == parent.name)
                && e.child_path
                    .is_some_and(|c| c.eq_ignore_ascii_case(rest[2]))
        })
    {
        return child.name.to_string();
    }
    fallback.to_string()
}
