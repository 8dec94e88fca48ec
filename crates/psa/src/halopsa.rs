//! The HaloPSA connector, written from Halo's published REST API (its Swagger document and the
//! behaviour of its public clients).
//!
//! - Two hosts: the resource server (`{resource}/api/...`) and the authorisation server
//!   (`{auth}/token`). The authorisation server is the `auth_url` setting or, when absent, the
//!   `auth_url` that `GET {resource}/api/authinfo` names (falling back to `{resource}/auth`).
//! - OAuth2 client credentials: `POST {auth}/token?tenant=…` with a form body
//!   (`grant_type=client_credentials`, `client_id`, `client_secret`, `scope=all`). The token is
//!   kept until a minute before it expires, and fetched again once when the API answers 401.
//! - Lists (`GET /api/Client`, `/Site`, `/Users`, `/Tickets`, `/Actions`) come wrapped
//!   (`{"record_count": N, "clients": [...]}`) and are paged with
//!   `pageinate=true&page_size=N&page_no=P`; setup lists (`Status`, `Team`, …) come as bare
//!   arrays. Both forms are accepted everywhere.
//! - Writes are `POST /api/<Resource>` with a JSON array; the answer is the saved record (an
//!   object for one element, accepted as a one-element array too).
//! - Companies are Halo clients and, for clients with more than one active site, each site:
//!   `12` is client 12 (its main site), `12/3` is site 3 of client 12, named `Client / Site`.
//!   Which clients have several sites is read from one site listing, kept for ten minutes.
//! - Our reference is stored in the ticket's `supplier_reference` and found again with the
//!   documented `search_supplier_reference` filter (setting `reference_field`; `details`
//!   appends it to the details instead and finds it with `search_details`).
//! - Notes are private actions (`outcome` "Private Note", `hiddenfromuser`); a close is one
//!   action that carries the note and `new_status`.
//! - Contracts are `ClientContract`s; one naming a site that is a company of its own belongs to
//!   that site's company. Contract billing (`billing`) bills catalogue `Item`s on the lines of
//!   a contract's `RecurringInvoice`.
//! - Assets (`assets`) are Halo assets (`/api/Asset`) of the connection's `asset_type_id`, our
//!   reference in the asset tag (`inventory_number`); a `12/3` company's assets are filed at
//!   site 3, a `12` company's at the client's main site.
//! - Every request (token requests included) first takes a slot of our share of Halo's rolling
//!   request window, is counted in the [`CallMeter`] and has a timeout.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use psabridge_core::render::truncate;
use psabridge_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

mod assets;
mod billing;

use crate::building::{SettingsError, count, id_list, int, required, secret, string};
use crate::http::{
    contains_reference, id_number, lost_answer, plain_message, retry_after, root_cause, unanswered,
};
use crate::{
    CallMeter, Company, CompanyPage, ConnectionCheck, Connector, Contact, Contract, ListItem,
    NewNote, NewTicket, PsaError, PsaLists, PushError, Pushed, TicketRef, TicketState,
    WebhookRegistration,
};

/// The HaloPSA settings a connection may carry, with their meaning.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "resource_url",
        "the Halo address (acme.halopsa.com, https://acme.halopsa.com or …/api) (required)",
    ),
    (
        "auth_url",
        "the authorisation server (default: asked of {resource}/api/authinfo)",
    ),
    (
        "tenant",
        "the tenant sent as ?tenant= to the token endpoint (Halo-hosted instances need it)",
    ),
    ("client_id", "the API application's client ID (required)"),
    (
        "requests_per_window",
        "our share of Halo's requests per rolling 5 minutes (default 250 of the 300 allowed)",
    ),
    ("page_size", "records per list page (default 100)"),
    (
        "closed_statuses",
        "status ids that count as closed (default: the statuses Halo lists as closed, else [\"9\"])",
    ),
    (
        "urgency_lookup_id",
        "the Lookup type id of urgency values (tenant data, default 29)",
    ),
    (
        "impact_lookup_id",
        "the Lookup type id of impact values (tenant data, default 30)",
    ),
    (
        "reference_field",
        "where our reference is kept: supplier_reference (default) or details",
    ),
    (
        "asset_type_id",
        "the Asset Type assets are created as (needed to push assets)",
    ),
];

/// The settings a connection cannot do without (the API asks for each by name; the builder
/// refuses a connection that lacks one).
pub const REQUIRED: &[&str] = &["resource_url", "client_id"];

/// The HaloPSA secret fields.
pub const SECRETS: &[&str] = &["client_secret"];

/// Where our reference is kept on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceField {
    /// `supplier_reference`, found with `search_supplier_reference`.
    SupplierReference,
    /// A line appended to `details`, found with `search_details`.
    Details,
}

/// What a Halo API application gives us.
#[derive(Debug, Clone)]
pub struct HaloCredentials {
    /// `https://acme.halopsa.com` (no `/api`).
    pub resource_url: String,
    /// `https://acme.halopsa.com/auth`; discovered when `None`.
    pub auth_url: Option<String>,
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: Secret,
}

/// How the connector behaves.
#[derive(Debug, Clone)]
pub struct HaloOptions {
    /// Status ids that count as closed; when empty, the statuses Halo lists as closed.
    pub closed_statuses: Vec<String>,
    pub urgency_lookup_id: i64,
    pub impact_lookup_id: i64,
    /// Requests per rolling window (our share).
    pub requests_per_window: u32,
    pub window: Duration,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub reference_field: ReferenceField,
    /// The Asset Type assets are created as (Halo requires one on every asset); without it,
    /// assets are not pushed.
    pub asset_type_id: Option<i64>,
}

impl Default for HaloOptions {
    fn default() -> Self {
        HaloOptions {
            closed_statuses: Vec::new(),
            urgency_lookup_id: 29,
            impact_lookup_id: 30,
            requests_per_window: 250,
            window: Duration::from_secs(300),
            page_size: 100,
            request_timeout: Duration::from_secs(20),
            reference_field: ReferenceField::SupplierReference,
            asset_type_id: None,
        }
    }
}

/// Build a HaloPSA connector from a connection's settings and secrets.
pub fn from_settings(
    http: reqwest::Client,
    s: &Map<String, Value>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, SettingsError> {
    let bad = |field: &'static str| move |problem: String| SettingsError::Bad { field, problem };
    let resource_url = normalise_url(&required(s, "resource_url")?).map_err(bad("resource_url"))?;
    let auth_url = string(s, "auth_url")?
        .map(|u| normalise_url(&u))
        .transpose()
        .map_err(bad("auth_url"))?;
    let credentials = HaloCredentials {
        resource_url,
        auth_url,
        tenant: string(s, "tenant")?,
        client_id: required(s, "client_id")?,
        client_secret: secret(secrets, "client_secret")?,
    };
    let mut options = HaloOptions::default();
    if let Some(n) = count(s, "requests_per_window")? {
        options.requests_per_window = n;
    }
    if let Some(n) = count(s, "page_size")? {
        options.page_size = n;
    }
    if let Some(v) = id_list(s, "closed_statuses")? {
        options.closed_statuses = v;
    }
    if let Some(n) = int(s, "urgency_lookup_id")? {
        options.urgency_lookup_id = n;
    }
    if let Some(n) = int(s, "impact_lookup_id")? {
        options.impact_lookup_id = n;
    }
    options.asset_type_id = int(s, "asset_type_id")?;
    match string(s, "reference_field")?.as_deref() {
        None | Some("supplier_reference") => {}
        Some("details") => options.reference_field = ReferenceField::Details,
        Some(other) => {
            return Err(SettingsError::Bad {
                field: "reference_field",
                problem: format!("'{other}' is neither supplier_reference nor details"),
            });
        }
    }
    Ok(Arc::new(HaloConnector::new(http, credentials, options)))
}

/// What users type as a Halo address, made into `https://host[/path]` without a trailing
/// slash or `/api`.
pub fn normalise_url(input: &str) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    let mut u = if t.contains("://") {
        t.to_string()
    } else {
        format!("https://{t}")
    };
    loop {
        let before = u.len();
        while u.ends_with('/') {
            u.pop();
        }
        if u.len() >= 4 && u[u.len() - 4..].eq_ignore_ascii_case("/api") {
            u.truncate(u.len() - 4);
        }
        if u.len() == before {
            break;
        }
    }
    let parsed = url::Url::parse(&u).map_err(|e| format!("'{t}' is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("'{t}' is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{t}' names no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("'{t}' must not carry a query or fragment"));
    }
    Ok(u)
}

/// Longest summary we send (Halo's column is believed to hold 255; kept under it).
const SUMMARY_MAX: usize = 250;
/// Longest details text we send.
const DETAILS_MAX: usize = 30_000;
/// Longest note text we send.
const NOTE_MAX: usize = 30_000;
/// How long the lists stay cached.
const LISTS_FOR: Duration = Duration::from_secs(6 * 3600);
/// How long the site listing behind company pages stays cached.
const SITES_FOR: Duration = Duration::from_secs(600);
/// A token is fetched again this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Tickets asked for in one batch (`ticketids=` keeps URLs short).
const STATE_BATCH: usize = 100;
/// Halo's own closed status ("Closed").
const HALO_CLOSED: &str = "9";
/// Halo's own "New" status, where a reopened ticket goes unless told otherwise.
const HALO_NEW: &str = "1";
/// The line of the details that carries our reference (`reference_field = details`).
const REFERENCE_LABEL: &str = "PSA Bridge reference: ";

/// Our share of a rolling request window, counted exactly (a token bucket's burst could
/// exceed a rolling limit).
#[derive(Debug)]
pub struct RollingWindow {
    limit: usize,
    window: Duration,
    sent: std::sync::Mutex<VecDeque<tokio::time::Instant>>,
}

impl RollingWindow {
    pub fn new(limit: u32, window: Duration) -> RollingWindow {
        RollingWindow {
            limit: limit.max(1) as usize,
            window,
            sent: std::sync::Mutex::new(VecDeque::new()),
        }
    }

    fn wait_with(&self, sent: &mut VecDeque<tokio::time::Instant>) -> Duration {
        let now = tokio::time::Instant::now();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            sent.pop_front();
        }
        if sent.len() < self.limit {
            Duration::ZERO
        } else {
            sent.front()
                .map(|t| (*t + self.window).saturating_duration_since(now))
                .unwrap_or_default()
        }
    }

    /// How long until a request may be sent.
    pub fn ready_in(&self) -> Duration {
        let mut s = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        self.wait_with(&mut s)
    }

    /// Take a slot, waiting for one.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.sent.lock().unwrap_or_else(|p| p.into_inner());
                let wait = self.wait_with(&mut s);
                if wait.is_zero() {
                    s.push_back(tokio::time::Instant::now());
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A bearer token and when it stops being used.
struct Token {
    value: Secret,
    renew_at: Instant,
}

/// The lists, and what was learned with them.
#[derive(Clone)]
struct Cached {
    lists: PsaLists,
    /// Statuses Halo lists as closed.
    closed: Vec<String>,
    at: Instant,
}

/// Active sites per client id.
type SiteMap = BTreeMap<i64, Vec<(i64, String)>>;

/// What our webhook is called in Halo.
pub const WEBHOOK_NAME: &str = "PSA Bridge: ticket status changes";
/// The Basic user name of our webhook's calls (the password is a secret we generate).
pub const WEBHOOK_USER: &str = "psabridge";
/// The Halo event our webhook is sent for.
pub const WEBHOOK_EVENT: &str = "Ticket Status Changed";

/// Compare secrets without telling by timing where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The HaloPSA connector.
pub struct HaloConnector {
    http: reqwest::Client,
    creds: HaloCredentials,
    opts: HaloOptions,
    /// The token endpoint (`{auth}/token`), discovered once.
    token_url: Mutex<Option<String>>,
    token: Mutex<Option<Token>>,
    lists: Mutex<Option<Cached>>,
    sites: Mutex<Option<(SiteMap, Instant)>>,
    window: RollingWindow,
    meter: CallMeter,
}

/// A text or number as text (`12`, `12.0` and `"12"` are all `12`).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i.to_string()),
            None => n.as_f64().map(|f| {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    format!("{}", f as i64)
                } else {
                    f.to_string()
                }
            }),
        },
        _ => None,
    }
}

/// An id that Halo may write as `12`, `12.0` or `"12"`.
fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn field_id(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(id_of)
}

fn field_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn field_bool(v: &Value, key: &str) -> bool {
    match v.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        _ => false,
    }
}

/// An id of ours as the JSON number Halo expects.
fn num(field: &str, id: &str) -> Result<Value, PsaError> {
    id_number(field, id, "a HaloPSA").map(Value::from)
}

/// A company id of ours: `12` (a client) or `12/3` (site 3 of client 12).
pub fn parse_company(id: &str) -> Result<(i64, Option<i64>), PsaError> {
    let bad = || {
        PsaError::Invalid(format!(
            "company '{id}' is not a HaloPSA client or client/site"
        ))
    };
    match id.trim().split_once('/') {
        None => Ok((id.trim().parse().map_err(|_| bad())?, None)),
        Some((c, s)) => Ok((
            c.trim().parse().map_err(|_| bad())?,
            Some(s.trim().parse().map_err(|_| bad())?),
        )),
    }
}

/// The records of a list answer: a bare array, or the array under `key` of a wrapper (or, if
/// the key differs, its only array).
pub fn records(answer: &Value, key: &str) -> Vec<Value> {
    match answer {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_array())
            .or_else(|| {
                let arrays: Vec<&Vec<Value>> = m.values().filter_map(Value::as_array).collect();
                (arrays.len() == 1).then(|| arrays[0])
            })
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The saved record of a POST: an object, or the first element of an array.
fn saved(answer: &Value) -> Option<&Value> {
    match answer {
        Value::Array(a) => a.first(),
        Value::Object(_) => Some(answer),
        _ => None,
    }
}

/// The message of a Halo error body. Halo answers errors in several shapes:
/// `{"resultCode","errorMessage"}`, `{"ClassName","Message"}`, `{"Message"}`,
/// `{"error","error_description"}`, a bare JSON string, or text.
pub fn error_message(body: &str) -> String {
    crate::http::excerpt(&error_message_of(body))
}

fn error_message_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(v @ Value::Object(_)) => {
            let pick = |k: &str| {
                v.as_object().and_then(|m| {
                    m.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .and_then(|(_, x)| x.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
            };
            pick("errorMessage")
                .or_else(|| pick("error_description"))
                .or_else(|| pick("Message"))
                .or_else(|| pick("error"))
                .unwrap_or_else(|| crate::http::undocumented_json(body))
        }
        Ok(_) => crate::http::undocumented_json(body),
        Err(_) => plain_message(body, "no message"),
    }
}

/// Classify an API answer that is not a success. `write` is true when the request may have
/// changed something in Halo (so a lost answer leaves the outcome unknown).
pub fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    write: bool,
) -> PsaError {
    let msg = error_message(body);
    let lower = msg.to_lowercase();
    match status {
        StatusCode::TOO_MANY_REQUESTS => PsaError::RateLimited {
            retry_after: retry_after(headers),
            message: msg,
        },
        StatusCode::UNAUTHORIZED => PsaError::Auth(format!(
            "HaloPSA refused the access token (401): {msg} — check the client ID and secret"
        )),
        StatusCode::FORBIDDEN => PsaError::Auth(format!(
            "the HaloPSA API application lacks a permission this needs (403): {msg}"
        )),
        StatusCode::NOT_FOUND => PsaError::NotFound(msg),
        StatusCode::BAD_REQUEST if lower.contains("ticket") && is_missing(&lower) => {
            PsaError::NotFound(msg)
        }
        s if s.is_server_error() => PsaError::Transient {
            retry_after: retry_after(headers),
            // A 503 says the request was not taken; after any other 5xx to a write, Halo may
            // have saved it before failing.
            outcome_unknown: write && s != StatusCode::SERVICE_UNAVAILABLE,
            message: format!("HaloPSA answered {s}: {msg}"),
        },
        StatusCode::REQUEST_TIMEOUT => PsaError::Transient {
            retry_after: None,
            outcome_unknown: write,
            message: format!("HaloPSA answered 408: {msg}"),
        },
        _ => PsaError::Invalid(format!("HaloPSA answered {status}: {msg}")),
    }
}

fn is_missing(lower: &str) -> bool {
    ["not found", "does not exist", "doesn't exist", "no such"]
        .iter()
        .any(|p| lower.contains(p))
}

/// Classify a token endpoint's refusal, naming the credential Halo refused where it can tell.
pub fn classify_token(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    tenant: Option<&str>,
) -> PsaError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let msg = error_message(body);
    let lower = msg.to_lowercase();
    if lower.contains("tenant") || code.contains("tenant") {
        return PsaError::Auth(format!(
            "HaloPSA does not know the tenant '{}': {msg} — check the tenant",
            tenant.unwrap_or("")
        ));
    }
    match (status, code.as_str()) {
        (_, "invalid_client") | (StatusCode::UNAUTHORIZED, _) => PsaError::Auth(
            "HaloPSA refused the client ID or client secret (invalid_client) — check both in the API application"
                .into(),
        ),
        (_, "unauthorized_client" | "invalid_scope" | "invalid_grant") => PsaError::Auth(format!(
            "HaloPSA refused the API application ({code}): {msg} — it needs the client credentials grant and the 'all' scope"
        )),
        (StatusCode::FORBIDDEN, _) => PsaError::Auth(format!("HaloPSA refused the token request (403): {msg}")),
        (StatusCode::NOT_FOUND, _) => PsaError::Unreachable(format!(
            "no HaloPSA token endpoint there (404) — check the resource and auth URLs: {msg}"
        )),
        (StatusCode::INTERNAL_SERVER_ERROR, _) if tenant.is_some() => PsaError::Auth(format!(
            "HaloPSA failed the token request (500), which it does for an unknown tenant — check the tenant '{}': {msg}",
            tenant.unwrap_or("")
        )),
        (StatusCode::TOO_MANY_REQUESTS, _) => PsaError::RateLimited {
            retry_after: retry_after(headers),
            message: msg,
        },
        (s, _) if s.is_server_error() => PsaError::Transient {
            retry_after: retry_after(headers),
            outcome_unknown: false,
            message: format!("HaloPSA's token endpoint answered {s}: {msg}"),
        },
        (s, _) => PsaError::Auth(format!("HaloPSA refused the token request ({s}): {msg}")),
    }
}

/// A Halo `ContractHeader` as our contract: in force unless Halo marks it inactive
/// (`active: false`) or expired.
fn contract_of(v: &Value) -> Option<Contract> {
    let id = field_id(v, "id")?;
    let name = [field_str(v, "ref"), field_str(v, "contracttype_name")]
        .into_iter()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .map_or_else(|| format!("Contract {id}"), str::to_string);
    let active =
        v.get("active").and_then(Value::as_bool) != Some(false) && !field_bool(v, "expired");
    Some(Contract {
        id: id.to_string(),
        name,
        active,
    })
}

/// The company a `ContractHeader` belongs to: `12/3` when it names site 3 of client 12 and
/// PSA Bridge lists that site as a company (its client has several active sites), else `12`.
fn company_of_contract(v: &Value, sites: &SiteMap) -> Option<String> {
    let client = field_id(v, "client_id")?;
    let site = field_id(v, "site_id").filter(|s| *s > 0);
    Some(match site {
        Some(s)
            if sites
                .get(&client)
                .is_some_and(|l| l.len() > 1 && l.iter().any(|(id, _)| *id == s)) =>
        {
            format!("{client}/{s}")
        }
        _ => client.to_string(),
    })
}

/// The cursor of the next company page (opaque to callers: a page number).
fn page_cursor(page_no: u32) -> String {
    format!("p{page_no}")
}

fn parse_cursor(c: &str) -> Result<u32, PsaError> {
    c.strip_prefix('p')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| PsaError::Invalid(format!("cursor '{c}' is not one this API gave")))
}

/// Does `details` carry `reference` on our reference line?
fn details_carry(details: &str, reference: &str) -> bool {
    details.lines().any(|l| {
        l.trim()
            .strip_prefix(REFERENCE_LABEL.trim())
            .is_some_and(|r| r.trim() == reference)
    })
}

impl HaloConnector {
    pub fn new(http: reqwest::Client, credentials: HaloCredentials, options: HaloOptions) -> Self {
        HaloConnector {
            http,
            window: RollingWindow::new(options.requests_per_window, options.window),
            creds: credentials,
            opts: options,
            token_url: Mutex::new(None),
            token: Mutex::new(None),
            lists: Mutex::new(None),
            sites: Mutex::new(None),
            meter: CallMeter::new(),
        }
    }

    /// Forget cached lists and sites.
    pub async fn flush_lists(&self) {
        *self.lists.lock().await = None;
        *self.sites.lock().await = None;
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.creds.resource_url, path)
    }

    /// Send one request (a budget slot taken, counted), mapping transport failures.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
        write: bool,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), PsaError> {
        self.window.acquire().await;
        self.meter
            .admit("", self.opts.requests_per_window, self.opts.window)
            .await;
        let (client, built) = req.timeout(self.opts.request_timeout).build_split();
        let request =
            built.map_err(|e| PsaError::Invalid(format!("{what}: {}", root_cause(&e))))?;
        let mut metered = self
            .meter
            .request(request.method().as_str(), request.url().path());
        let started = Instant::now();
        let resp = match client.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                metered.failed(&e);
                tracing::debug!(what, error = %root_cause(&e), "HaloPSA request failed");
                return Err(unanswered(&e, what, what, write, "timed out calling"));
            }
        };
        let status = resp.status();
        metered.answered(status.as_u16());
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| lost_answer(&e, what, write))?;
        drop(metered);
        tracing::debug!(
            what,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "HaloPSA"
        );
        Ok((status, headers, body))
    }

    /// The token endpoint, asking `authinfo` on first use when no auth URL is configured.
    async fn token_url(&self) -> Result<String, PsaError> {
        let mut slot = self.token_url.lock().await;
        if let Some(u) = slot.clone() {
            return Ok(u);
        }
        let auth = match &self.creds.auth_url {
            Some(a) => a.clone(),
            None => {
                let url = self.api_url("authinfo");
                let (status, _, body) = self
                    .send(self.http.get(&url), "HaloPSA authinfo", false)
                    .await
                    .map_err(|e| match e {
                        PsaError::Unreachable(m) => PsaError::Unreachable(format!(
                            "{} could not be reached — check the resource URL: {m}",
                            self.creds.resource_url
                        )),
                        other => other,
                    })?;
                let discovered = (status == StatusCode::OK)
                    .then(|| serde_json::from_str::<Value>(&body).ok())
                    .flatten()
                    .and_then(|v| {
                        v.get("auth_url")
                            .or_else(|| v.get("Auth_Url"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .filter(|u| !u.trim().is_empty());
                match discovered {
                    Some(u) => normalise_url(&u).map_err(|p| {
                        PsaError::Unreachable(format!("authinfo named a bad auth URL: {p}"))
                    })?,
                    None if status.is_server_error() => {
                        return Err(classify(status, &Default::default(), &body, false));
                    }
                    None => format!("{}/auth", self.creds.resource_url),
                }
            }
        };
        let url = format!("{auth}/token");
        *slot = Some(url.clone());
        Ok(url)
    }

    /// A valid bearer token, fetched when there is none or it is about to expire.
    async fn bearer(&self) -> Result<Secret, PsaError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let url = self.token_url().await?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.creds.client_id)
            .append_pair("client_secret", self.creds.client_secret.expose())
            .append_pair("scope", "all")
            .finish();
        let mut req = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        if let Some(t) = &self.creds.tenant {
            req = req.query(&[("tenant", t.as_str())]);
        }
        let (status, headers, body) =
            self.send(req, "HaloPSA token", false)
                .await
                .map_err(|e| match e {
                    PsaError::Unreachable(m) => PsaError::Unreachable(format!(
                        "the HaloPSA authorisation server at {url} could not be reached: {m}"
                    )),
                    other => other,
                })?;
        if status != StatusCode::OK {
            return Err(classify_token(
                status,
                &headers,
                &body,
                self.creds.tenant.as_deref(),
            ));
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| {
            PsaError::Unreachable(format!(
                "{url} did not answer a token (is this a HaloPSA auth URL?)"
            ))
        })?;
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                PsaError::Auth("HaloPSA answered the token request without a token".into())
            })?;
        let lifetime = v
            .get("expires_in")
            .and_then(id_of)
            .filter(|s| *s > 0)
            .unwrap_or(3600) as u64;
        let value = Secret::new(token);
        *slot = Some(Token {
            value: value.clone(),
            renew_at: Instant::now()
                + Duration::from_secs(lifetime)
                    .saturating_sub(TOKEN_MARGIN.min(Duration::from_secs(lifetime / 2))),
        });
        Ok(value)
    }

    /// One API call below `/api/`, re-authenticating once when the token is refused.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        write: bool,
    ) -> Result<Value, PsaError> {
        let mut renewed = false;
        loop {
            let token = self.bearer().await?;
            let mut req = self
                .http
                .request(method.clone(), self.api_url(path))
                .bearer_auth(token.expose());
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let what = format!("{method} /api/{path}");
            let (status, headers, text) = self.send(req, &what, write).await?;
            if status == StatusCode::UNAUTHORIZED && !renewed {
                // The token expired or was revoked early: one fresh token, one more try.
                renewed = true;
                *self.token.lock().await = None;
                continue;
            }
            if !status.is_success() {
                return Err(classify(status, &headers, &text, write));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|_| PsaError::Transient {
                retry_after: None,
                outcome_unknown: write,
                message: format!("HaloPSA answered {what} without JSON"),
            });
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, PsaError> {
        self.call(Method::GET, path, query, None, false).await
    }

    /// Every record of a wrapped list, page after page, at most `limit`.
    async fn get_all(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
        limit: usize,
    ) -> Result<Vec<Value>, PsaError> {
        let size = self.opts.page_size.max(1);
        let mut out = Vec::new();
        let mut page_no = 1u32;
        loop {
            let mut q = query.to_vec();
            q.push(("pageinate", "true".into()));
            q.push(("page_size", size.to_string()));
            q.push(("page_no", page_no.to_string()));
            let v = self.get(path, &q).await?;
            let got = records(&v, key);
            let n = got.len();
            out.extend(got);
            let total = v.get("record_count").and_then(id_of);
            let more = match total {
                Some(t) => (out.len() as i64) < t && n > 0,
                None => n as u32 >= size,
            };
            if !more || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            page_no += 1;
        }
    }

    /// Active sites of every client, from one (paged) site listing kept ten minutes.
    async fn site_map(&self) -> Result<SiteMap, PsaError> {
        let mut cached = self.sites.lock().await;
        if let Some((m, at)) = cached.as_ref()
            && at.elapsed() < SITES_FOR
        {
            return Ok(m.clone());
        }
        let sites = self
            .get_all(
                "Site",
                "sites",
                &[("includeinactive", "false".into())],
                usize::MAX,
            )
            .await?;
        let mut map = SiteMap::new();
        for s in &sites {
            if field_bool(s, "inactive") {
                continue;
            }
            let (Some(id), Some(client)) = (field_id(s, "id"), field_id(s, "client_id")) else {
                continue;
            };
            map.entry(client)
                .or_default()
                .push((id, field_str(s, "name").to_string()));
        }
        for v in map.values_mut() {
            v.sort();
        }
        *cached = Some((map.clone(), Instant::now()));
        Ok(map)
    }

    fn contact_of(v: &Value, company_id: &str) -> Option<Contact> {
        let mut name = field_str(v, "name").trim().to_string();
        if name.is_empty() {
            name = format!("{} {}", field_str(v, "firstname"), field_str(v, "surname"))
                .trim()
                .to_string();
        }
        Some(Contact {
            id: v.get("id").and_then(text)?,
            company_id: company_id.to_string(),
            name,
            email: Some(field_str(v, "emailaddress").to_string()).filter(|e| !e.is_empty()),
            active: !field_bool(v, "inactive"),
        })
    }

    /// The query of a company's users: its client, or one of its sites.
    fn company_query(company_id: &str) -> Result<Vec<(&'static str, String)>, PsaError> {
        let (client, site) = parse_company(company_id)?;
        let mut q = vec![
            ("client_id", client.to_string()),
            ("includeinactive", "false".into()),
        ];
        if let Some(s) = site {
            q.push(("site_id", s.to_string()));
        }
        Ok(q)
    }

    /// Lists and the statuses Halo lists as closed, cached.
    async fn cached_lists(&self) -> Result<Cached, PsaError> {
        let mut cached = self.lists.lock().await;
        if let Some(c) = cached.as_ref()
            && c.at.elapsed() < LISTS_FOR
        {
            return Ok(c.clone());
        }
        let c = self.read_lists().await?;
        *cached = Some(c.clone());
        Ok(c)
    }

    async fn read_lists(&self) -> Result<Cached, PsaError> {
        let mut lists = PsaLists::new();
        let item = |id: String, label: &str, active: bool, parent: Option<String>| ListItem {
            id,
            label: label.to_string(),
            active,
            parent,
        };

        let types = self
            .get("TicketType", &[("showinactive", "true".into())])
            .await?;
        lists.insert(
            "ticket_type".into(),
            records(&types, "tickettypes")
                .iter()
                .filter_map(|t| {
                    Some(item(
                        t.get("id").and_then(text)?,
                        field_str(t, "name"),
                        !field_bool(t, "inactive"),
                        None,
                    ))
                })
                .collect(),
        );

        let statuses = records(&self.get("Status", &[]).await?, "statuses");
        let open: BTreeSet<String> = records(
            &self
                .get("Status", &[("excludeclosed", "true".into())])
                .await?,
            "statuses",
        )
        .iter()
        .filter_map(|s| s.get("id").and_then(text))
        .collect();
        let mut closed = Vec::new();
        let mut status_items = Vec::new();
        for s in &statuses {
            let Some(id) = s.get("id").and_then(text) else {
                continue;
            };
            if !open.contains(&id) {
                closed.push(id.clone());
            }
            status_items.push(item(id, field_str(s, "name"), true, None));
        }
        lists.insert("status".into(), status_items);

        let mut seen = BTreeSet::new();
        let priorities = records(&self.get("Priority", &[]).await?, "priorities")
            .iter()
            .filter_map(|p| {
                let id = p.get("priorityid").and_then(text)?;
                seen.insert(id.clone())
                    .then(|| item(id, field_str(p, "name"), !field_bool(p, "ishidden"), None))
            })
            .collect();
        lists.insert("priority".into(), priorities);

        let slas = self.get("SLA", &[]).await?;
        lists.insert(
            "sla".into(),
            records(&slas, "slas")
                .iter()
                .filter_map(|s| {
                    Some(item(
                        s.get("id").and_then(text)?,
                        field_str(s, "name"),
                        !field_bool(s, "inactive"),
                        None,
                    ))
                })
                .collect(),
        );

        // Teams by name (a ticket's `team` is the team's name); agents once per team.
        let teams = records(
            &self
                .get("Team", &[("includeagentsforteams", "true".into())])
                .await?,
            "teams",
        );
        lists.insert(
            "team".into(),
            teams
                .iter()
                .filter(|t| !field_str(t, "name").is_empty())
                .map(|t| {
                    let name = field_str(t, "name");
                    item(name.to_string(), name, !field_bool(t, "inactive"), None)
                })
                .collect(),
        );
        let team_active: BTreeMap<String, bool> = teams
            .iter()
            .map(|t| (field_str(t, "name").to_string(), !field_bool(t, "inactive")))
            .collect();
        let agents = records(
            &self
                .get(
                    "Agent",
                    &[
                        ("includeenabled", "true".into()),
                        ("includedisabled", "true".into()),
                    ],
                )
                .await?,
            "agents",
        );
        let mut memberships: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for t in &teams {
            for a in t
                .get("agents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = field_id(a, "agent_id").or_else(|| field_id(a, "id")) {
                    memberships
                        .entry(id)
                        .or_default()
                        .insert(field_str(t, "name").to_string());
                }
            }
        }
        let mut agent_items = Vec::new();
        for a in &agents {
            let Some(id) = field_id(a, "id") else {
                continue;
            };
            let mut teams_of = memberships.get(&id).cloned().unwrap_or_default();
            if teams_of.is_empty() {
                for s in a
                    .get("teams")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let n = field_str(s, "team_name");
                    if !n.is_empty() {
                        teams_of.insert(n.to_string());
                    }
                }
            }
            if teams_of.is_empty() && !field_str(a, "team").is_empty() {
                teams_of.insert(field_str(a, "team").to_string());
            }
            let enabled = !field_bool(a, "isdisabled") && !field_bool(a, "inactive");
            if teams_of.is_empty() {
                agent_items.push(item(id.to_string(), field_str(a, "name"), enabled, None));
            }
            for t in teams_of {
                let active = enabled && team_active.get(&t).copied().unwrap_or(true);
                agent_items.push(item(id.to_string(), field_str(a, "name"), active, Some(t)));
            }
        }
        lists.insert("agent".into(), agent_items);

        let categories = self.get("Category", &[("type_id", "1".into())]).await?;
        let mut seen = BTreeSet::new();
        lists.insert(
            "category".into(),
            records(&categories, "categories")
                .iter()
                .filter(|c| field_id(c, "type_id").is_none_or(|t| t == 1))
                .filter_map(|c| {
                    let v = field_str(c, "value");
                    (!v.is_empty() && seen.insert(v.to_string()))
                        .then(|| item(v.to_string(), v, !field_bool(c, "inactive"), None))
                })
                .collect(),
        );

        for (key, lookup) in [
            ("urgency", self.opts.urgency_lookup_id),
            ("impact", self.opts.impact_lookup_id),
        ] {
            let v = self
                .get("Lookup", &[("lookupid", lookup.to_string())])
                .await?;
            lists.insert(
                key.into(),
                records(&v, "lookups")
                    .iter()
                    .filter(|l| field_id(l, "lookupid").is_none_or(|id| id == lookup))
                    .filter_map(|l| {
                        Some(item(
                            l.get("id").and_then(text)?,
                            field_str(l, "name"),
                            !field_bool(l, "inactive"),
                            None,
                        ))
                    })
                    .collect(),
            );
        }
        Ok(Cached {
            lists,
            closed,
            at: Instant::now(),
        })
    }

    /// The status ids that count as closed: configured, else those Halo lists as closed,
    /// else Halo's own Closed.
    async fn closed_statuses(&self) -> Result<Vec<String>, PsaError> {
        if !self.opts.closed_statuses.is_empty() {
            return Ok(self.opts.closed_statuses.clone());
        }
        let c = self.cached_lists().await?;
        Ok(if c.closed.is_empty() {
            vec![HALO_CLOSED.to_string()]
        } else {
            c.closed
        })
    }

    /// A private note action (optionally changing the status).
    fn note_action(ticket: Value, note: &NewNote, new_status: Option<Value>) -> Value {
        let text = if note.title.trim().is_empty() {
            note.text.clone()
        } else {
            format!("{}\n\n{}", note.title.trim(), note.text)
        };
        let mut a = json!({
            "ticket_id": ticket,
            "note": truncate(&text, NOTE_MAX),
            "outcome": "Private Note",
            "hiddenfromuser": true,
            "sendemail": false,
        });
        if let Some(s) = new_status {
            a["new_status"] = s;
        }
        a
    }
}

/// Ticket fields as Halo names them, for our field names; `true` when Halo wants a number.
const TICKET_FIELDS: [(&str, &str, bool); 9] = [
    ("ticket_type", "tickettype_id", true),
    ("status", "status_id", true),
    ("priority", "priority_id", true),
    ("sla", "sla_id", true),
    ("team", "team", false),
    ("agent", "agent_id", true),
    ("category", "category_1", false),
    ("urgency", "urgency", true),
    ("impact", "impact", true),
];

#[async_trait]
impl Connector for HaloConnector {
    async fn ticket_url(&self, ticket_id: &str) -> Option<String> {
        // The agent screens live at the instance's root, beside `/api`.
        let mut url = reqwest::Url::parse(&format!("{}/ticket", self.creds.resource_url)).ok()?;
        url.query_pairs_mut().append_pair("id", ticket_id);
        Some(url.to_string())
    }

    async fn check(&self) -> Result<ConnectionCheck, PsaError> {
        *self.token_url.lock().await = None;
        *self.token.lock().await = None;
        self.bearer().await?;
        let me = self.get("Agent/me", &[]).await?;
        let who = field_str(&me, "name");
        Ok(ConnectionCheck {
            api_url: format!("{}/api", self.creds.resource_url),
            description: if who.is_empty() {
                format!("HaloPSA at {}", self.creds.resource_url)
            } else {
                format!("HaloPSA at {} as {who}", self.creds.resource_url)
            },
        })
    }

    async fn lists(&self) -> Result<PsaLists, PsaError> {
        Ok(self.cached_lists().await?.lists)
    }

    async fn companies(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<CompanyPage, PsaError> {
        let page_no = cursor.map(parse_cursor).transpose()?.unwrap_or(1);
        let size = self.opts.page_size.max(1);
        let mut q = vec![
            ("includeinactive", "false".to_string()),
            ("pageinate", "true".into()),
            ("page_size", size.to_string()),
            ("page_no", page_no.to_string()),
            ("order", "name".into()),
        ];
        if let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) {
            q.push(("search", s.to_string()));
        }
        let v = self.get("Client", &q).await?;
        let clients = records(&v, "clients");
        let sites = if clients.is_empty() {
            SiteMap::new()
        } else {
            self.site_map().await?
        };
        let mut companies = Vec::new();
        for c in &clients {
            let Some(id) = field_id(c, "id") else {
                continue;
            };
            let name = field_str(c, "name");
            let active = !field_bool(c, "inactive");
            companies.push(Company {
                id: id.to_string(),
                name: name.to_string(),
                active,
            });
            if let Some(list) = sites.get(&id).filter(|l| l.len() > 1) {
                for (sid, sname) in list {
                    companies.push(Company {
                        id: format!("{id}/{sid}"),
                        name: format!("{name} / {sname}"),
                        active,
                    });
                }
            }
        }
        let total = v.get("record_count").and_then(id_of);
        let more = match total {
            Some(t) => i64::from(page_no) * i64::from(size) < t && !clients.is_empty(),
            None => clients.len() as u32 >= size,
        };
        Ok(CompanyPage {
            companies,
            next: more.then(|| page_cursor(page_no + 1)),
        })
    }

    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError> {
        let q = Self::company_query(company_id)?;
        Ok(self
            .get_all("Users", "users", &q, 10_000)
            .await?
            .iter()
            .filter_map(|u| Self::contact_of(u, company_id))
            .filter(|c| c.active)
            .collect())
    }

    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError> {
        let wanted = email.trim().to_lowercase();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Self::company_query(company_id)?;
        q.push(("search", email.trim().to_string()));
        // `search` is a substring match over names and addresses: keep exact matches only,
        // on any of a user's three addresses.
        Ok(self
            .get_all("Users", "users", &q, 1000)
            .await?
            .iter()
            .filter(|u| {
                !field_bool(u, "inactive")
                    && ["emailaddress", "email2", "email3"]
                        .iter()
                        .any(|k| field_str(u, k).trim().to_lowercase() == wanted)
            })
            .filter_map(|u| Self::contact_of(u, company_id))
            .collect())
    }

    async fn primary_contact(&self, company_id: &str) -> Result<Option<String>, PsaError> {
        // A site's main contact is flagged on the user (`ismaincontact`); for a whole client,
        // the oldest of its sites' main contacts.
        let q = Self::company_query(company_id)?;
        Ok(crate::oldest_id(
            self.get_all("Users", "users", &q, 10_000)
                .await?
                .iter()
                .filter(|u| field_bool(u, "ismaincontact") && !field_bool(u, "inactive"))
                .filter_map(|u| u.get("id").and_then(text)),
        ))
    }

    async fn create_ticket(&self, t: &NewTicket) -> Result<TicketRef, PsaError> {
        let (client, site) = parse_company(&t.company_id)?;
        let reference = truncate(&t.reference, 50);
        let details = match self.opts.reference_field {
            ReferenceField::SupplierReference => truncate(&t.description, DETAILS_MAX),
            ReferenceField::Details => {
                let line = format!("\n\n{REFERENCE_LABEL}{reference}");
                format!(
                    "{}{line}",
                    truncate(&t.description, DETAILS_MAX - line.chars().count())
                )
            }
        };
        let mut body = json!({
            "summary": truncate(&t.title, SUMMARY_MAX),
            "details": details,
            "client_id": client,
        });
        if self.opts.reference_field == ReferenceField::SupplierReference {
            body["supplier_reference"] = json!(reference);
        }
        if let Some(s) = site {
            body["site_id"] = json!(s);
        }
        if let Some(c) = &t.contact_id {
            body["user_id"] = num("contact", c)?;
        }
        if let Some(c) = &t.contract_id {
            body["contract_id"] = num("contract", c)?;
        }
        for (ours, theirs, numeric) in TICKET_FIELDS {
            if let Some(v) = t.fields.get(ours) {
                body[theirs] = if numeric { num(ours, v)? } else { json!(v) };
            }
        }
        let v = self
            .call(Method::POST, "Tickets", &[], Some(&json!([body])), true)
            .await?;
        let id = saved(&v)
            .and_then(|r| r.get("id"))
            .and_then(id_of)
            .filter(|id| *id > 0)
            .ok_or_else(|| PsaError::Transient {
                retry_after: None,
                outcome_unknown: true,
                message: "HaloPSA answered a ticket create without an id".into(),
            })?;
        // HaloPSA shows people a ticket's id as its number ("#104").
        Ok(TicketRef {
            id: id.to_string(),
            number: Some(id.to_string()),
        })
    }

    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError> {
        let reference = truncate(reference, 50);
        let (filter, field) = match self.opts.reference_field {
            ReferenceField::SupplierReference => {
                ("search_supplier_reference", "supplier_reference")
            }
            ReferenceField::Details => ("search_details", "details"),
        };
        let v = self
            .get(
                "Tickets",
                &[(filter, reference.clone()), ("count", "50".into())],
            )
            .await?;
        // The search matches substrings; keep exact matches where the list shows the field
        // (a list without the column is trusted).
        Ok(records(&v, "tickets")
            .iter()
            .filter(|t| match t.get(field).and_then(Value::as_str) {
                None => true,
                Some(s) if field == "details" => details_carry(s, &reference),
                Some(s) => s.trim() == reference,
            })
            .filter_map(|t| field_id(t, "id"))
            .min()
            .map(|id| TicketRef {
                id: id.to_string(),
                number: Some(id.to_string()),
            }))
    }

    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError> {
        let action = Self::note_action(num("ticket", ticket_id)?, note, None);
        self.call(Method::POST, "Actions", &[], Some(&json!([action])), true)
            .await?;
        Ok(())
    }

    async fn find_note_by_reference(
        &self,
        ticket_id: &str,
        reference: &str,
    ) -> Result<bool, PsaError> {
        let id = num("ticket", ticket_id)?;
        let v = self
            .get(
                "Actions",
                &[("ticket_id", id.to_string()), ("excludesys", "true".into())],
            )
            .await?;
        Ok(records(&v, "actions").iter().any(|a| {
            contains_reference(field_str(a, "note"), reference)
                || contains_reference(field_str(a, "note_html"), reference)
        }))
    }

    async fn close_ticket(
        &self,
        ticket_id: &str,
        close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let status = match close_status {
            Some(s) => s.to_string(),
            None => self
                .opts
                .closed_statuses
                .first()
                .cloned()
                .unwrap_or_else(|| HALO_CLOSED.to_string()),
        };
        // One action: the note that says why, and the new status.
        let action = Self::note_action(
            num("ticket", ticket_id)?,
            note,
            Some(num("close status", &status)?),
        );
        self.call(Method::POST, "Actions", &[], Some(&json!([action])), true)
            .await?;
        Ok(())
    }

    async fn reopen_ticket(
        &self,
        ticket_id: &str,
        status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        // One action, as for a close: the note and the open status.
        let action = Self::note_action(
            num("ticket", ticket_id)?,
            note,
            Some(num("reopen status", status.unwrap_or(HALO_NEW))?),
        );
        self.call(Method::POST, "Actions", &[], Some(&json!([action])), true)
            .await?;
        Ok(())
    }

    /// A client's contracts without a site of their own, or a site company's contracts (the
    /// documented `site_id` filter): the company of a contract is `company_of_contract`'s.
    async fn contracts(&self, company_id: &str) -> Result<Vec<Contract>, PsaError> {
        let (client, site) = parse_company(company_id)?;
        let mut q = vec![
            ("client_id", client.to_string()),
            ("includeinactive", "true".to_string()),
        ];
        if let Some(s) = site {
            q.push(("site_id", s.to_string()));
        }
        let found = self
            .get_all("ClientContract", "contracts", &q, 10_000)
            .await?;
        let on_a_site = |c: &Value| field_id(c, "site_id").is_some_and(|s| s > 0);
        let sites = if found.iter().any(on_a_site) {
            self.site_map().await?
        } else {
            SiteMap::new()
        };
        Ok(found
            .iter()
            .filter(|c| company_of_contract(c, &sites).as_deref() == Some(company_id.trim()))
            .filter_map(contract_of)
            .collect())
    }

    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError> {
        let closed = self.closed_statuses().await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(STATE_BATCH) {
            let list = chunk
                .iter()
                .map(|i| num("ticket", i).map(|v| v.to_string()))
                .collect::<Result<Vec<_>, _>>()?
                .join(",");
            let v = self
                .get(
                    "Tickets",
                    &[("ticketids", list), ("count", chunk.len().to_string())],
                )
                .await?;
            for t in records(&v, "tickets") {
                // Only the tickets asked about: a state of another ticket (a filter the
                // instance ignored) must not close or open someone else's group.
                let Some(id) = field_id(&t, "id").filter(|id| chunk.contains(&id.to_string()))
                else {
                    continue;
                };
                let status = t.get("status_id").and_then(text).unwrap_or_default();
                out.push(TicketState {
                    id: id.to_string(),
                    closed: closed.contains(&status) || field_bool(&t, "hasbeenclosed"),
                    status,
                    number: Some(id.to_string()),
                });
            }
        }
        Ok(out)
    }

    async fn register_status_webhook(
        &self,
        url: &str,
        secret: &str,
    ) -> Result<Option<WebhookRegistration>, PsaError> {
        // Ours already (a reconnect)? Then it is updated with the new password, not doubled:
        // Halo never answers a webhook's password, so the one we just made must be set.
        let existing = match self.get("Webhook", &[]).await {
            Ok(v) => records(&v, "webhooks"),
            Err(PsaError::Auth(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let found = existing
            .iter()
            .find(|w| w.get("url").and_then(Value::as_str) == Some(url))
            .and_then(|w| w.get("id").and_then(Value::as_str))
            .map(str::to_string);
        let mut hook = json!({
            "name": WEBHOOK_NAME,
            "url": url,
            "content_type": "application/json",
            "method": 0,
            "authentication_type": 1,
            "basic_username": WEBHOOK_USER,
            "basic_password": secret,
            "active": true,
            "events": [{ "name": WEBHOOK_EVENT }],
        });
        if let Some(id) = &found {
            hook["id"] = json!(id);
        }
        let answer = match self
            .call(Method::POST, "Webhook", &[], Some(&json!([hook])), true)
            .await
        {
            Ok(v) => v,
            Err(PsaError::Auth(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = match &answer {
            Value::Array(a) => a.first().and_then(|w| w.get("id")).and_then(text),
            other => other.get("id").and_then(text),
        }
        .or(found)
        .ok_or_else(|| PsaError::Invalid("Halo answered a webhook save without an id".into()))?;
        Ok(Some(WebhookRegistration { id, guid: None }))
    }

    async fn read_push(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        secret: &str,
    ) -> Result<Option<Pushed>, PushError> {
        use base64::Engine as _;
        let given = headers
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .ok_or_else(|| PushError::Unauthenticated("no Basic authentication".into()))?;
        let expected = format!("{WEBHOOK_USER}:{secret}");
        if !constant_time_eq(&given, expected.as_bytes()) {
            return Err(PushError::Unauthenticated(
                "the webhook's credentials do not match".into(),
            ));
        }
        let payload: Value = serde_json::from_slice(body)
            .map_err(|e| PushError::Malformed(format!("not JSON: {e}")))?;
        let Some(ticket) = payload.get("ticket").filter(|t| t.is_object()) else {
            return Ok(None);
        };
        let Some(id) = field_id(ticket, "id") else {
            return Err(PushError::Malformed("the ticket has no id".into()));
        };
        let status = ticket.get("status_id").and_then(text);
        let closed = match status {
            Some(status) => {
                let closed = self.closed_statuses().await?;
                Some(closed.contains(&status) || field_bool(ticket, "hasbeenclosed"))
            }
            None => None,
        };
        Ok(Some(Pushed {
            ticket_id: id.to_string(),
            closed,
            deleted: false,
            number: Some(id.to_string()),
        }))
    }

    fn ready_in(&self) -> Duration {
        self.window.ready_in().max(self.meter.shared_ready_in())
    }

    fn contract_billing(&self) -> Option<&dyn crate::billing::ContractBilling> {
        Some(self)
    }

    fn asset_sync(&self) -> Option<&dyn crate::assets::AssetSync> {
        Some(self)
    }

    fn meter(&self) -> &CallMeter {
        &self.meter
    }

    fn sweep_cost(&self) -> crate::SweepCost {
        crate::SweepCost {
            requests_per_hour: (f64::from(self.opts.requests_per_window) * 3600.0
                / self.opts.window.as_secs_f64().max(1.0)) as u32,
            tickets_per_request: STATE_BATCH,
        }
    }
}

/// Every pure reader of a HaloPSA answer applied to one: as an error (of the API and of the
/// authorisation server), its message, and, for a JSON body, its records as contracts and the
/// id of a saved record. For [`crate::answers`] (fuzzing).
pub(crate) fn read_answer(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", classify(status, headers, body, true)),
        format!(
            "{:?}",
            classify_token(status, headers, body, Some("tenant"))
        ),
        error_message(body),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        for key in ["clients", "tickets", "contracts", "users", "record"] {
            for r in records(&v, key) {
                out.push(format!("{:?}", contract_of(&r)));
                out.push(format!("{:?}", field_id(&r, "id")));
            }
        }
        out.push(format!(
            "{:?}",
            saved(&v).and_then(|r| r.get("id")).and_then(id_of)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn urls_are_normalised() {
        for input in [
            "acme.halopsa.com",
            "https://acme.halopsa.com/",
            "https://acme.halopsa.com/api",
            "https://acme.halopsa.com/api/",
            " https://acme.halopsa.com//API// ",
        ] {
            assert_eq!(
                normalise_url(input).as_deref(),
                Ok("https://acme.halopsa.com"),
                "{input}"
            );
        }
        assert_eq!(
            normalise_url("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert_eq!(
            normalise_url("https://halo.example.com/auth/").as_deref(),
            Ok("https://halo.example.com/auth")
        );
        assert!(normalise_url("").is_err());
        assert!(normalise_url("ftp://x").is_err());
        assert!(normalise_url("https://").is_err());
    }

    #[test]
    fn company_ids_encode_client_and_site() {
        assert_eq!(parse_company("12").unwrap(), (12, None));
        assert_eq!(parse_company("12/3").unwrap(), (12, Some(3)));
        assert!(matches!(parse_company("acme"), Err(PsaError::Invalid(_))));
        assert!(matches!(parse_company("12/x"), Err(PsaError::Invalid(_))));
    }

    #[test]
    fn a_site_contract_belongs_to_its_site_company_only_where_the_site_is_one() {
        let sites: SiteMap = BTreeMap::from([
            (12, vec![(3, "Head Office".into()), (4, "Warehouse".into())]),
            (20, vec![(100, "Head Office".into())]),
        ]);
        let company = |v: Value| company_of_contract(&v, &sites);
        assert_eq!(
            company(json!({"client_id": 12, "site_id": 3})).as_deref(),
            Some("12/3")
        );
        assert_eq!(
            company(json!({"client_id": 12, "site_id": 0})).as_deref(),
            Some("12")
        );
        // An inactive site (not in the map) and the only site of a client are the client's.
        assert_eq!(
            company(json!({"client_id": 12, "site_id": 5})).as_deref(),
            Some("12")
        );
        assert_eq!(
            company(json!({"client_id": 20.0, "site_id": 100})).as_deref(),
            Some("20")
        );
        assert_eq!(company(json!({"site_id": 3})), None);
    }

    #[test]
    fn contracts_are_in_force_unless_inactive_or_expired() {
        let c = contract_of(
            &json!({"id": 44.0, "client_id": 12, "ref": "MSA-1", "active": true, "expired": false}),
        )
        .unwrap();
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.active),
            ("44", "MSA-1", true)
        );
        assert!(
            !contract_of(&json!({"id": 1, "ref": "x", "expired": true}))
                .unwrap()
                .active
        );
        assert!(
            !contract_of(&json!({"id": 1, "ref": "x", "active": false}))
                .unwrap()
                .active
        );
        assert_eq!(contract_of(&json!({"id": 7})).unwrap().name, "Contract 7");
        assert!(contract_of(&json!({"ref": "no id"})).is_none());
    }

    #[test]
    fn cursors_are_page_numbers() {
        assert_eq!(parse_cursor(&page_cursor(3)).unwrap(), 3);
        assert!(parse_cursor("3").is_err());
        assert!(parse_cursor("p0").is_err());
    }

    #[test]
    fn errors_are_classified() {
        let h = HeaderMap::new();
        let c = |s: u16, b: &str, w: bool| classify(StatusCode::from_u16(s).unwrap(), &h, b, w);
        assert!(matches!(c(401, "", false), PsaError::Auth(_)));
        assert!(
            matches!(c(403, r#"{"Message":"no"}"#, false), PsaError::Auth(m) if m.contains("no"))
        );
        assert!(matches!(c(404, "", false), PsaError::NotFound(_)));
        assert!(
            matches!(c(400, r#""Client 999 does not exist""#, true), PsaError::Invalid(m) if m.contains("Client 999"))
        );
        assert!(matches!(
            c(400, r#""Ticket 77 does not exist""#, true),
            PsaError::NotFound(_)
        ));
        assert!(matches!(
            c(500, "<html/>", true),
            PsaError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
        assert!(matches!(
            c(503, "", true),
            PsaError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        assert!(matches!(
            c(502, "", false),
            PsaError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "42".parse().unwrap());
        match classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            "Rate Limit Reached",
            false,
        ) {
            PsaError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(42)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_reads_http_dates() {
        let mut h = HeaderMap::new();
        let when = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(
            reqwest::header::RETRY_AFTER,
            when.to_rfc2822().parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(27),
            "{d:?}"
        );
    }

    #[test]
    fn token_refusals_name_the_credential() {
        let h = HeaderMap::new();
        let t = |s: u16, b: &str, tenant: Option<&str>| {
            classify_token(StatusCode::from_u16(s).unwrap(), &h, b, tenant)
        };
        assert!(matches!(
            t(401, r#"{"error":"invalid_client"}"#, Some("demo")),
            PsaError::Auth(m) if m.contains("client ID or client secret")
        ));
        assert!(matches!(
            t(400, r#"{"error":"invalid_request","error_description":"Unknown tenant"}"#, Some("x")),
            PsaError::Auth(m) if m.contains("tenant 'x'")
        ));
        assert!(matches!(t(500, "", Some("x")), PsaError::Auth(m) if m.contains("tenant")));
        assert!(matches!(t(500, "", None), PsaError::Transient { .. }));
        assert!(matches!(t(404, "", None), PsaError::Unreachable(_)));
    }

    #[test]
    fn error_bodies_of_every_shape() {
        assert_eq!(
            error_message(r#"{"resultCode":1,"errorMessage":"bad"}"#),
            "bad"
        );
        assert_eq!(
            error_message(r#"{"ClassName":"X","Message":"worse"}"#),
            "worse"
        );
        assert_eq!(
            error_message(r#"{"error":"invalid_client","error_description":"d"}"#),
            "d"
        );
        assert_eq!(error_message(r#""plain""#), "plain");
        assert_eq!(error_message("text"), "a non-JSON answer (4 bytes)");
        assert_eq!(
            error_message(&format!(r#"{{"Message":"{}\u0007x"}}"#, "a".repeat(300)))
                .chars()
                .count(),
            200
        );
        assert_eq!(error_message("<html>x</html>"), "an HTML error page");
    }

    #[test]
    fn vendor_json_is_read_leniently() {
        assert_eq!(id_of(&json!(12.0)), Some(12));
        assert_eq!(id_of(&json!("12")), Some(12));
        assert_eq!(id_of(&json!(12.5)), None);
        assert_eq!(text(&json!(3.0)).as_deref(), Some("3"));
        let wrapped = json!({"record_count": 1, "clients": [{"id": 1}]});
        assert_eq!(records(&wrapped, "clients").len(), 1);
        assert_eq!(records(&json!([{"id": 1}, {"id": 2}]), "statuses").len(), 2);
        assert_eq!(
            records(&json!({"page_no": 1, "other": [1]}), "clients").len(),
            1
        );
        assert_eq!(
            saved(&json!([{"id": 5}])).and_then(|v| v.get("id")),
            Some(&json!(5))
        );
        assert_eq!(
            saved(&json!({"id": 5})).and_then(|v| v.get("id")),
            Some(&json!(5))
        );
        assert!(details_carry("x\n\nPSA Bridge reference: ab-1", "ab-1"));
        assert!(!details_carry("x\n\nPSA Bridge reference: ab-12", "ab-1"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_is_exact() {
        let w = RollingWindow::new(3, Duration::from_secs(300));
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            w.acquire().await;
        }
        assert_eq!(w.ready_in(), Duration::from_secs(300));
        w.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(300));
    }

    #[test]
    fn settings_build_and_name_bad_values() {
        let http = reqwest::Client::new();
        let mut secrets = BTreeMap::new();
        secrets.insert("client_secret".to_string(), Secret::new("s"));
        let ok = json!({"resource_url": "acme.halopsa.com", "tenant": "acme", "client_id": "c"});
        assert!(from_settings(http.clone(), ok.as_object().unwrap(), &secrets).is_ok());
        let bad = json!({"resource_url": "https://", "client_id": "c"});
        assert!(matches!(
            from_settings(http.clone(), bad.as_object().unwrap(), &secrets),
            Err(SettingsError::Bad {
                field: "resource_url",
                ..
            })
        ));
        let bad = json!({"resource_url": "a.b", "client_id": "c", "reference_field": "x"});
        assert!(matches!(
            from_settings(http.clone(), bad.as_object().unwrap(), &secrets),
            Err(SettingsError::Bad {
                field: "reference_field",
                ..
            })
        ));
        assert!(matches!(
            from_settings(http, ok.as_object().unwrap(), &BTreeMap::new()),
            Err(SettingsError::Missing("client_secret"))
        ));
    }
}
