//! The ConnectWise PSA (Manage) connector, written from ConnectWise's REST API documentation
//! (API 3.0) and its published OpenAPI description.
//!
//! - The site users type (`na.myconnectwise.net`) names the API host
//!   (`api-na.myconnectwise.net`); on-premise hosts are used as typed. The codebase
//!   (`v2025_1/`) is asked of `GET /login/companyinfo/{company}` once, unless configured; the
//!   API lives at `{host}/{codebase}apis/3.0`.
//! - Every call carries `Authorization: Basic base64("{company}+{public}:{private}")`, the
//!   integration's `clientId` and `Accept: application/json`.
//! - Lists are read with `conditions`/`childConditions`, `fields`, `orderBy`, and
//!   `page`/`pageSize` paging; the next page is the one the `Link` header's `rel="next"`
//!   names (or, without a `Link`, the following one while pages come back full). The company
//!   list's cursor is that next page number.
//! - Ticket lists (boards, per-board statuses, types, subtypes, items, teams; priorities,
//!   sources) are read once and cached; a subtype is listed once per type it is associated
//!   with (`typeAssociationIds`).
//! - A create carries our reference in `externalXRef`, found again with
//!   `conditions=externalXRef="…"`; notes are internal analysis notes, found again with
//!   `conditions=text contains "…"`. A close adds its note, then patches `status` (JSON Patch).
//! - Contract billing (`billing`): catalogue items named by their identifier, billed as
//!   additions on agreements that bill every cycle; quantities and costs set by JSON Patch.
//! - Every request first takes a token of our hourly share ([`TokenBucket`]) and is counted
//!   in the [`CallMeter`].
//!
//! Where ConnectWise's documentation is silent, the choices are:
//! - "active" companies are those not deleted and not in the shipped `Inactive` company
//!   status (`deletedFlag=false and status/name!="Inactive"`);
//! - a 401 whose message names the client id is reported as a `client_id` problem, any other
//!   401 as the key pair's (ConnectWise does not say which key it refused); an unknown
//!   company is told by companyinfo's `null`;
//! - closed means `closedFlag`, or a status the boards mark `closedStatus`, or one listed in
//!   the `closed_statuses` setting; a close without a status uses the board's first active
//!   closed status by sort order;
//! - description and note texts are cut at 30,000 characters (no published limit);
//! - the codebase can be pinned with the `codebase` setting when companyinfo is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use psabridge_core::render::truncate;
use psabridge_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, RwLock};

mod assets;
mod billing;

use crate::building::{SettingsError, count, id_list, int, required, secret, string};
use crate::http::{
    contains_reference, id_number, lost_answer, plain_message, retry_after, root_cause, text,
    unanswered,
};
use crate::limits::TokenBucket;
use crate::{
    CallMeter, Company, CompanyPage, ConnectionCheck, Connector, Contact, Contract, ListItem,
    NewNote, NewTicket, PsaError, PsaLists, PushError, Pushed, TicketRef, TicketState,
    WebhookRegistration,
};

/// The settings a ConnectWise connection may carry, with their meaning.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "site_url",
        "the ConnectWise site (na.myconnectwise.net, eu.…, au.…, or an on-premise host) (required)",
    ),
    ("company", "the company id used to log in (required)"),
    ("public_key", "the API member's public key (required)"),
    (
        "client_id",
        "the integration's clientId from developer.connectwise.com (required)",
    ),
    (
        "codebase",
        "the API codebase (v2025_1); discovered from companyinfo when unset",
    ),
    (
        "requests_per_hour",
        "our share of the tenant's API capacity (default 3600)",
    ),
    (
        "page_size",
        "records per list page (default 100, at most 1000)",
    ),
    (
        "closed_statuses",
        "status ids that count as closed besides the board's closed statuses and closedFlag",
    ),
    (
        "configuration_type_id",
        "the configuration type assets become configurations as (needed to push assets)",
    ),
];

/// The settings a connection cannot do without (the API asks for each by name; the builder
/// refuses a connection that lacks one).
pub const REQUIRED: &[&str] = &["site_url", "company", "public_key", "client_id"];

/// The ConnectWise secret fields.
pub const SECRETS: &[&str] = &["private_key"];

/// Where a service ticket opens in ConnectWise's web client: the site's host without the
/// `api-` prefix of its API host, the service-request screen with the ticket's record id.
pub fn ticket_page(api_host: &str, company: &str, ticket_id: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(api_host).ok()?;
    if let Some(site) = url
        .host_str()
        .and_then(|h| h.strip_prefix("api-"))
        .map(str::to_string)
    {
        url.set_host(Some(&site)).ok()?;
    }
    url.set_path("/v4_6_release/services/system_io/Service/fv_sr100_request.rsp");
    url.query_pairs_mut()
        .clear()
        .append_pair("companyName", company)
        .append_pair("service_recid", ticket_id);
    Some(url.to_string())
}

/// What a ConnectWise API member gives us.
#[derive(Debug, Clone)]
pub struct ConnectWiseCredentials {
    /// `https://api-na.myconnectwise.net` (scheme and host, no path).
    pub host: String,
    pub company: String,
    pub public_key: String,
    pub private_key: Secret,
    pub client_id: String,
}

/// How the connector behaves.
#[derive(Debug, Clone)]
pub struct ConnectWiseOptions {
    /// The codebase (`v2025_1/`); asked of companyinfo when `None`.
    pub codebase: Option<String>,
    /// Status ids that count as closed besides closed statuses and `closedFlag`.
    pub closed_statuses: Vec<String>,
    pub request_timeout: Duration,
    pub requests_per_hour: u32,
    /// Records per list page (ConnectWise answers at most 1000).
    pub page_size: u32,
    /// The configuration type pushed assets get (ConnectWise requires a type on each).
    pub configuration_type_id: Option<i64>,
}

impl Default for ConnectWiseOptions {
    fn default() -> Self {
        ConnectWiseOptions {
            codebase: None,
            closed_statuses: Vec::new(),
            request_timeout: Duration::from_secs(30),
            requests_per_hour: 3600,
            page_size: 100,
            configuration_type_id: None,
        }
    }
}

/// ConnectWise answers at most 1000 records a page.
const MAX_PAGE: u32 = 1000;
/// `summary` holds at most 100 characters.
const SUMMARY_MAX: usize = 100;
/// What we put in `initialDescription` and note texts at most (ConnectWise publishes no
/// limit; notes are large text columns).
const TEXT_MAX: usize = 30_000;
/// Ids per `id in (…)` query, keeping URLs short.
const IDS_PER_QUERY: usize = 100;
/// How long the ticket lists stay cached.
const LISTS_FOR: Duration = Duration::from_secs(6 * 3600);
/// Cloud sites and their API hosts.
const CLOUD_HOSTS: &[(&str, &str)] = &[
    ("na.myconnectwise.net", "api-na.myconnectwise.net"),
    ("eu.myconnectwise.net", "api-eu.myconnectwise.net"),
    ("au.myconnectwise.net", "api-au.myconnectwise.net"),
    ("aus.myconnectwise.net", "api-aus.myconnectwise.net"),
    ("za.myconnectwise.net", "api-za.myconnectwise.net"),
    (
        "staging.connectwisedev.com",
        "api-staging.connectwisedev.com",
    ),
];
/// Companies our list shows: not deleted, not in the (shipped) Inactive status.
const ACTIVE_COMPANIES: &str = "deletedFlag=false and status/name!=\"Inactive\"";

/// Build a ConnectWise connector from a connection's settings and secrets.
pub fn from_settings(
    http: reqwest::Client,
    s: &Map<String, Value>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, SettingsError> {
    let site = required(s, "site_url")?;
    let host = api_host(&site).map_err(|problem| SettingsError::Bad {
        field: "site_url",
        problem,
    })?;
    let company = required(s, "company")?;
    if company.contains(['+', ':', '/']) {
        return Err(SettingsError::Bad {
            field: "company",
            problem: "a company id has no '+', ':' or '/'".into(),
        });
    }
    let credentials = ConnectWiseCredentials {
        host,
        company,
        public_key: required(s, "public_key")?,
        private_key: secret(secrets, "private_key")?,
        client_id: required(s, "client_id")?,
    };
    let mut options = ConnectWiseOptions {
        codebase: string(s, "codebase")?.map(|c| normalise_codebase(&c)),
        ..ConnectWiseOptions::default()
    };
    if let Some(n) = count(s, "requests_per_hour")? {
        options.requests_per_hour = n;
    }
    if let Some(n) = count(s, "page_size")? {
        if n > MAX_PAGE {
            return Err(SettingsError::Bad {
                field: "page_size",
                problem: format!("ConnectWise answers at most {MAX_PAGE} records a page"),
            });
        }
        options.page_size = n;
    }
    options.configuration_type_id = int(s, "configuration_type_id")?;
    if let Some(v) = id_list(s, "closed_statuses")? {
        options.closed_statuses = v;
    }
    Ok(Arc::new(ConnectWiseConnector::new(
        http,
        credentials,
        options,
    )))
}

/// The API host of what a user typed as the site: scheme (https unless given) and host
/// (with port), cloud sites mapped to their `api-` host, paths and trailing slashes dropped.
pub fn api_host(site: &str) -> Result<String, String> {
    let t = site.trim();
    if t.trim_matches('/').is_empty() {
        return Err("is empty".into());
    }
    let with_scheme = if t.contains("://") {
        t.to_string()
    } else {
        format!("https://{t}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("'{site}' is not a host: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{site}' must be an http(s) address"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("'{site}' names no host"))?
        .to_ascii_lowercase();
    let host = CLOUD_HOSTS
        .iter()
        .find(|(site, _)| *site == host)
        .map_or(host.clone(), |(_, api)| api.to_string());
    Ok(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// `v2025_1`, `/v2025_1/` → `v2025_1/`.
pub fn normalise_codebase(c: &str) -> String {
    format!("{}/", c.trim().trim_matches('/'))
}

/// A string literal of ConnectWise's conditions language.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `record[key].id` as our id string.
fn ref_id(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|r| r.get("id")).and_then(text)
}

/// An id as the JSON number ConnectWise expects (ours are strings).
fn num(field: &str, id: &str) -> Result<i64, PsaError> {
    id_number(field, id, "a ConnectWise")
}

/// The page number `Link`'s `rel="next"` names, if any.
fn next_page(headers: &reqwest::header::HeaderMap) -> Option<Option<u32>> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    Some(link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\"") || p.trim() == "rel=next")
        {
            return None;
        }
        let url = target.trim().trim_start_matches('<').trim_end_matches('>');
        let query = url.split_once('?')?.1;
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("page")
                .then(|| v.parse::<u32>().ok())
                .flatten()
        })
    }))
}

/// The message of a ConnectWise error body (`{"code","message","errors":[{"message"}]}`),
/// or the raw text.
fn error_message(body: &str) -> String {
    crate::http::excerpt(&error_message_of(body))
}

fn error_message_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.is_object() => {
            let main = str_of(&v, "message");
            let details: Vec<String> = v
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            match (main.is_empty(), details.is_empty()) {
                (_, false) if main.is_empty() => details.join("; "),
                (false, false) => format!("{main}: {}", details.join("; ")),
                (false, true) => main,
                _ => crate::http::undocumented_json(body),
            }
        }
        Ok(_) => crate::http::undocumented_json(body),
        Err(_) => plain_message(body, ""),
    }
}

/// Classify an HTTP answer that is not a success. `write` is true when the request may have
/// changed something (so a lost answer leaves the outcome unknown).
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    write: bool,
    company: &str,
) -> PsaError {
    let msg = error_message(body);
    let lower = msg.to_ascii_lowercase();
    match status {
        StatusCode::TOO_MANY_REQUESTS => PsaError::RateLimited {
            retry_after: retry_after(headers),
            message: msg,
        },
        StatusCode::UNAUTHORIZED if lower.contains("clientid") || lower.contains("client id") => {
            PsaError::Auth(format!(
                "ConnectWise refused the client id (401: {msg}) — check client_id"
            ))
        }
        StatusCode::UNAUTHORIZED => PsaError::Auth(format!(
            "ConnectWise refused the API member's keys for company '{company}' (401) — check public_key and private_key"
        )),
        StatusCode::FORBIDDEN => PsaError::Auth(format!(
            "the API member's security role does not allow this (403): {msg}"
        )),
        StatusCode::NOT_FOUND => PsaError::NotFound(msg),
        s if s.is_server_error() => PsaError::Transient {
            retry_after: retry_after(headers),
            outcome_unknown: write,
            message: format!("ConnectWise answered {s}: {msg}"),
        },
        s if s == StatusCode::BAD_REQUEST || s == StatusCode::CONFLICT => PsaError::Invalid(msg),
        s => PsaError::Invalid(format!("ConnectWise answered {s}: {msg}")),
    }
}

/// A ConnectWise agreement as our contract: in force when its `agreementStatus` says Active
/// (older versions without the field: not cancelled and not past its `endDate`, unless it
/// has no ending date). `today` is `YYYY-MM-DD`.
fn contract_of(v: &Value, today: &str) -> Option<Contract> {
    let active = match v.get("agreementStatus").and_then(Value::as_str) {
        Some(status) => status.eq_ignore_ascii_case("Active"),
        None => {
            let ended = !flag(v, "noEndingDateFlag")
                && v.get("endDate")
                    .and_then(Value::as_str)
                    .and_then(|d| d.get(..10))
                    .is_some_and(|end| end < today);
            !flag(v, "cancelledFlag") && !ended
        }
    };
    Some(Contract {
        id: v.get("id").and_then(text)?,
        name: str_of(v, "name"),
        active,
    })
}

/// A contact of ConnectWise's JSON. `wanted` picks the e-mail item to report (else the
/// default one, else the first).
fn contact_of(v: &Value, wanted: Option<&str>) -> Option<Contact> {
    let emails: Vec<&Value> = v
        .get("communicationItems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("communicationType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("email"))
        })
        .collect();
    let value = |i: &&Value| i.get("value").and_then(Value::as_str).map(str::to_string);
    let email = match wanted {
        Some(w) => emails
            .iter()
            .filter_map(value)
            .find(|e| e.trim().eq_ignore_ascii_case(w.trim())),
        None => emails
            .iter()
            .find(|i| flag(i, "defaultFlag"))
            .or(emails.first())
            .and_then(value),
    };
    Some(Contact {
        id: v.get("id").and_then(text)?,
        company_id: ref_id(v, "company").unwrap_or_default(),
        name: format!("{} {}", str_of(v, "firstName"), str_of(v, "lastName"))
            .trim()
            .to_string(),
        email,
        active: !flag(v, "inactiveFlag"),
    })
}

/// A list item of ConnectWise's JSON; `inactive_key` names the record's inactive flag.
fn item_of(v: &Value, inactive_key: Option<&str>, parent: Option<String>) -> Option<ListItem> {
    Some(ListItem {
        id: v.get("id").and_then(text)?,
        label: str_of(v, "name"),
        active: !inactive_key.is_some_and(|k| flag(v, k)),
        parent,
    })
}

/// One answer of the API.
struct Answer {
    body: Value,
    /// `Some(next)` when the answer had a `Link` header (`next` is `None` on the last page).
    link_next: Option<Option<u32>>,
}

/// What companyinfo told us.
#[derive(Debug, Clone)]
struct Site {
    codebase: String,
    version: Option<String>,
}

/// Lists and what they say about statuses.
#[derive(Clone)]
struct Cached {
    lists: PsaLists,
    /// Closed, active statuses of each board, in board order.
    closed_by_board: BTreeMap<String, Vec<String>>,
    closed: BTreeSet<String>,
    at: Instant,
}

/// The ConnectWise connector.
pub struct ConnectWiseConnector {
    http: reqwest::Client,
    creds: ConnectWiseCredentials,
    opts: ConnectWiseOptions,
    site: RwLock<Option<Site>>,
    lists: Mutex<Option<Cached>>,
    bucket: TokenBucket,
    meter: CallMeter,
    /// Callback signing keys by their `key_url`: a callback's key does not change, so it is
    /// fetched once, not once per callback.
    signing_keys: std::sync::Mutex<BTreeMap<String, String>>,
    /// When a signing key was last fetched: anyone can post a callout naming a key URL on our
    /// host, so unknown keys are fetched at most once per [`KEY_FETCH_GAP`], never spending
    /// more than a sliver of the budget on strangers' callouts.
    last_key_fetch: std::sync::Mutex<Option<Instant>>,
    /// Where each (agreement, product)'s billed units live, as the last billing snapshot or
    /// write found them, so that an update is one PATCH (see `billing`).
    addition_lines: std::sync::Mutex<billing::AdditionLines>,
}

/// The least time between two fetches of callback signing keys not in the cache.
const KEY_FETCH_GAP: Duration = Duration::from_secs(10);

/// What our callbacks are called in ConnectWise, so that "Connect" finds its own again.
pub const CALLBACK_DESCRIPTION: &str = "PSA Bridge: ticket status changes";

/// Does `signature` (`x-content-signature`: base64 of HMAC-SHA256 of the body under the
/// callback's signing key) sign `body`?
pub fn callback_signature_valid(key: &[u8], body: &[u8], signature: &str) -> bool {
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Is `url` on `host` (same scheme, host and port)? A callback names where its signing key
/// is; we fetch it only from the connection's own ConnectWise, never from a URL a stranger
/// put in a payload.
pub fn same_origin(url: &str, host: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(host)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str().map(str::to_ascii_lowercase)
                    == b.host_str().map(str::to_ascii_lowercase)
                && a.port_or_known_default() == b.port_or_known_default()
                && a.username().is_empty()
        }
        _ => false,
    }
}

/// Ticket fields: ours → ConnectWise's.
const TICKET_FIELDS: [(&str, &str); 8] = [
    ("board", "board"),
    ("status", "status"),
    ("type", "type"),
    ("subtype", "subType"),
    ("item", "item"),
    ("team", "team"),
    ("priority", "priority"),
    ("source", "source"),
];

const CONTACT_FIELDS: &str = "id,firstName,lastName,company,inactiveFlag,communicationItems";

impl ConnectWiseConnector {
    pub fn new(
        http: reqwest::Client,
        credentials: ConnectWiseCredentials,
        options: ConnectWiseOptions,
    ) -> Self {
        let site = options.codebase.clone().map(|codebase| Site {
            codebase,
            version: None,
        });
        ConnectWiseConnector {
            http,
            bucket: TokenBucket::per_hour(options.requests_per_hour),
            creds: credentials,
            opts: options,
            site: RwLock::new(site),
            lists: Mutex::new(None),
            meter: CallMeter::new(),
            signing_keys: std::sync::Mutex::new(BTreeMap::new()),
            last_key_fetch: std::sync::Mutex::new(None),
            addition_lines: std::sync::Mutex::new(billing::AdditionLines::default()),
        }
    }

    /// Forget cached lists.
    pub async fn flush_lists(&self) {
        *self.lists.lock().await = None;
    }

    fn page_size(&self) -> u32 {
        self.opts.page_size.clamp(1, MAX_PAGE)
    }

    /// The codebase, asking companyinfo on first use.
    async fn site(&self) -> Result<Site, PsaError> {
        if let Some(s) = self.site.read().await.clone() {
            return Ok(s);
        }
        let mut slot = self.site.write().await;
        if let Some(s) = slot.clone() {
            return Ok(s);
        }
        let host = &self.creds.host;
        let company = &self.creds.company;
        let url = format!("{host}/login/companyinfo/{company}");
        self.bucket.acquire().await;
        self.meter
            .admit(
                "",
                self.opts.requests_per_hour,
                std::time::Duration::from_secs(3600),
            )
            .await;
        let mut metered = self.meter.request("GET", "login/companyinfo/{company}");
        let resp = self
            .http
            .get(&url)
            .header("Accept", "application/json")
            .timeout(self.opts.request_timeout)
            .send()
            .await
            .map_err(|e| {
                metered.failed(&e);
                if e.is_timeout() {
                    PsaError::Transient {
                        retry_after: None,
                        outcome_unknown: false,
                        message: format!("{host} did not answer companyinfo in time"),
                    }
                } else {
                    PsaError::Unreachable(format!("{host}: {}", root_cause(&e)))
                }
            })?;
        let status = resp.status();
        metered.answered(status.as_u16());
        drop(metered);
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(classify(status, &headers, &body, false, company));
        }
        if !status.is_success() {
            return Err(PsaError::Unreachable(format!(
                "{host} answered companyinfo with {status}: is site_url the ConnectWise site?"
            )));
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| {
            PsaError::Unreachable(format!(
                "{host} answered companyinfo without JSON: is site_url the ConnectWise site?"
            ))
        })?;
        if v.is_null() {
            return Err(PsaError::Auth(format!(
                "ConnectWise at {host} knows no company id '{company}' — check company (the id you log in with)"
            )));
        }
        let codebase = v
            .get("Codebase")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty())
            .map_or_else(|| "v4_6_release/".to_string(), normalise_codebase);
        let site = Site {
            codebase,
            version: v
                .get("VersionCode")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        *slot = Some(site.clone());
        Ok(site)
    }

    /// `{host}/{codebase}apis/3.0`
    async fn base(&self) -> Result<String, PsaError> {
        Ok(format!(
            "{}/{}apis/3.0",
            self.creds.host,
            self.site().await?.codebase
        ))
    }

    /// One API call. `path` is below `apis/3.0/`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        write: bool,
    ) -> Result<Answer, PsaError> {
        let base = self.base().await?;
        self.bucket.acquire().await;
        self.meter
            .admit(
                "",
                self.opts.requests_per_hour,
                std::time::Duration::from_secs(3600),
            )
            .await;
        let mut metered = self.meter.request(method.as_str(), path);
        let mut req = self
            .http
            .request(method.clone(), format!("{base}/{path}"))
            .basic_auth(
                format!("{}+{}", self.creds.company, self.creds.public_key),
                Some(self.creds.private_key.expose()),
            )
            .header("clientId", &self.creds.client_id)
            .header("Accept", "application/json")
            .timeout(self.opts.request_timeout);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metered.failed(&e);
                tracing::debug!(path, %method, error = %root_cause(&e), "ConnectWise request failed");
                let call = format!("{method} {path}");
                return Err(unanswered(
                    &e,
                    &self.creds.host,
                    &call,
                    write,
                    "timed out on",
                ));
            }
        };
        let status = resp.status();
        metered.answered(status.as_u16());
        let headers = resp.headers().clone();
        let body = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Err(lost_answer(&e, &format!("{method} {path}"), write)),
        };
        drop(metered);
        tracing::debug!(path, %method, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "ConnectWise");
        if !status.is_success() {
            return Err(classify(
                status,
                &headers,
                &body,
                write,
                &self.creds.company,
            ));
        }
        let parsed = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).map_err(|_| PsaError::Transient {
                retry_after: None,
                outcome_unknown: write,
                message: format!("ConnectWise answered {status} without JSON for {method} {path}"),
            })?
        };
        Ok(Answer {
            body: parsed,
            link_next: next_page(&headers),
        })
    }

    /// The signing key a callback names in `Metadata.key_url` (on our host only), cached.
    async fn signing_key(&self, key_url: &str) -> Result<String, PushError> {
        if !same_origin(key_url, &self.creds.host) {
            return Err(PushError::Unauthenticated(
                "the callback's key_url is not on the connection's ConnectWise host".into(),
            ));
        }
        if let Some(k) = self
            .signing_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_url)
        {
            return Ok(k.clone());
        }
        {
            let mut last = self
                .last_key_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < KEY_FETCH_GAP) {
                return Err(PushError::Unauthenticated(
                    "another unknown signing key was fetched moments ago".into(),
                ));
            }
            *last = Some(Instant::now());
        }
        self.bucket.acquire().await;
        self.meter
            .admit(
                "",
                self.opts.requests_per_hour,
                std::time::Duration::from_secs(3600),
            )
            .await;
        self.meter.record();
        let resp = self
            .http
            .get(key_url)
            .basic_auth(
                format!("{}+{}", self.creds.company, self.creds.public_key),
                Some(self.creds.private_key.expose()),
            )
            .header("clientId", &self.creds.client_id)
            .header("Accept", "application/json")
            .timeout(self.opts.request_timeout)
            .send()
            .await
            .map_err(|e| unanswered(&e, &self.creds.host, "GET key_url", false, "timed out on"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(PushError::Unauthenticated(format!(
                "ConnectWise answered {status} for the callback's signing key ({})",
                classify(status, &headers, &body, false, &self.creds.company)
            )));
        }
        let key = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("signing_key")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                PushError::Unauthenticated("ConnectWise answered no signing_key".into())
            })?;
        let mut keys = self.signing_keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > 64 {
            keys.clear();
        }
        keys.insert(key_url.to_string(), key.clone());
        Ok(key)
    }

    /// One page of a list (1-based); the records and the next page's number.
    async fn page(
        &self,
        path: &str,
        query: &[(&str, String)],
        page: u32,
        size: u32,
    ) -> Result<(Vec<Value>, Option<u32>), PsaError> {
        let mut q = query.to_vec();
        q.push(("pageSize", size.to_string()));
        q.push(("page", page.to_string()));
        let a = self.call(Method::GET, path, &q, None, false).await?;
        let items = match a.body {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                return Err(PsaError::Transient {
                    retry_after: None,
                    outcome_unknown: false,
                    message: format!(
                        "ConnectWise answered a list with {}",
                        truncate(&other.to_string(), 100)
                    ),
                });
            }
        };
        let next = match a.link_next {
            Some(next) => next.filter(|n| *n > page),
            None => (items.len() as u32 >= size).then_some(page + 1),
        };
        Ok((items, next))
    }

    /// Every record of a list, page after page, at most `limit`.
    async fn get_all(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: usize,
    ) -> Result<Vec<Value>, PsaError> {
        let size = self
            .page_size()
            .min(limit.clamp(1, MAX_PAGE as usize) as u32);
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let (items, next) = self.page(path, query, page, size).await?;
            let empty = items.is_empty();
            out.extend(items);
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match next {
                Some(n) if !empty => page = n,
                _ => return Ok(out),
            }
        }
    }

    /// The lists, from the cache when fresh.
    async fn cached(&self) -> Result<Cached, PsaError> {
        let mut slot = self.lists.lock().await;
        if let Some(c) = slot.as_ref()
            && c.at.elapsed() < LISTS_FOR
        {
            return Ok(c.clone());
        }
        let c = self.read_lists().await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn read_lists(&self) -> Result<Cached, PsaError> {
        let all = usize::MAX;
        let boards = self
            .get_all(
                "service/boards",
                &[
                    ("conditions", "projectFlag=false".to_string()),
                    ("fields", "id,name,inactiveFlag".to_string()),
                    ("orderBy", "name asc".to_string()),
                ],
                all,
            )
            .await?;
        let mut lists = PsaLists::new();
        let mut closed_by_board = BTreeMap::new();
        let mut closed = BTreeSet::new();
        let mut board_items = Vec::new();
        for b in &boards {
            let Some(item) = item_of(b, Some("inactiveFlag"), None) else {
                continue;
            };
            let active = item.active;
            let id = item.id.clone();
            board_items.push(item);
            if !active {
                continue;
            }
            let root = format!("service/boards/{id}");
            let spec = |child: &str, fields: &str, order: &str| {
                (
                    format!("{root}/{child}"),
                    vec![
                        ("fields", fields.to_string()),
                        ("orderBy", order.to_string()),
                    ],
                )
            };
            let q = [
                spec(
                    "statuses",
                    "id,name,sortOrder,closedStatus,inactive",
                    "sortOrder asc",
                ),
                spec("types", "id,name,inactiveFlag", "name asc"),
                spec(
                    "subtypes",
                    "id,name,inactiveFlag,typeAssociationIds",
                    "name asc",
                ),
                spec("items", "id,name,inactiveFlag", "name asc"),
                spec("teams", "id,name", "name asc"),
            ];
            let (statuses, types, subtypes, items, teams) = tokio::try_join!(
                self.get_all(&q[0].0, &q[0].1, all),
                self.get_all(&q[1].0, &q[1].1, all),
                self.get_all(&q[2].0, &q[2].1, all),
                self.get_all(&q[3].0, &q[3].1, all),
                self.get_all(&q[4].0, &q[4].1, all),
            )?;
            let parent = Some(id.clone());
            let mut board_closed = Vec::new();
            for s in &statuses {
                if let Some(i) = item_of(s, Some("inactive"), parent.clone()) {
                    if flag(s, "closedStatus") {
                        closed.insert(i.id.clone());
                        if i.active {
                            board_closed.push(i.id.clone());
                        }
                    }
                    lists.entry("status".into()).or_default().push(i);
                }
            }
            closed_by_board.insert(id.clone(), board_closed);
            for (key, rows, inactive) in [
                ("type", &types, Some("inactiveFlag")),
                ("item", &items, Some("inactiveFlag")),
                ("team", &teams, None),
            ] {
                let entry = lists.entry(key.into()).or_default();
                entry.extend(
                    rows.iter()
                        .filter_map(|r| item_of(r, inactive, parent.clone())),
                );
            }
            let entry = lists.entry("subtype".into()).or_default();
            for st in &subtypes {
                let types: Vec<String> = st
                    .get("typeAssociationIds")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                    .collect();
                if types.is_empty() {
                    entry.extend(item_of(st, Some("inactiveFlag"), None));
                }
                for t in types {
                    entry.extend(item_of(st, Some("inactiveFlag"), Some(t)));
                }
            }
        }
        lists.insert("board".into(), board_items);
        let pq = [
            ("fields", "id,name,sortOrder".to_string()),
            ("orderBy", "sortOrder asc".to_string()),
        ];
        let sq = [
            ("fields", "id,name".to_string()),
            ("orderBy", "name asc".to_string()),
        ];
        let (priorities, sources) = tokio::try_join!(
            self.get_all("service/priorities", &pq, all),
            self.get_all("service/sources", &sq, all),
        )?;
        lists.insert(
            "priority".into(),
            priorities
                .iter()
                .filter_map(|p| item_of(p, None, None))
                .collect(),
        );
        lists.insert(
            "source".into(),
            sources
                .iter()
                .filter_map(|p| item_of(p, None, None))
                .collect(),
        );
        for key in ["status", "type", "subtype", "item", "team"] {
            lists.entry(key.into()).or_default();
        }
        Ok(Cached {
            lists,
            closed_by_board,
            closed,
            at: Instant::now(),
        })
    }

    /// The board's first closed status (by sort order), for a close without a status.
    async fn default_close_status(&self, ticket_id: &str) -> Result<String, PsaError> {
        self.first_board_status(ticket_id, true).await
    }

    /// The first active status (by sort order) of the ticket's board that is closed
    /// (`closed`) or open (for a reopen without a status).
    async fn first_board_status(&self, ticket_id: &str, closed: bool) -> Result<String, PsaError> {
        let t = self
            .call(
                Method::GET,
                &format!("service/tickets/{}", num("ticket", ticket_id)?),
                &[("fields", "id,board,status".to_string())],
                None,
                false,
            )
            .await?
            .body;
        let what = if closed { "close" } else { "reopen" };
        let board = ref_id(&t, "board").ok_or_else(|| {
            PsaError::Invalid(format!("ticket {ticket_id} has no board to {what} it on"))
        })?;
        if closed {
            let cached = self.lists.try_lock().ok().and_then(|c| {
                c.as_ref().and_then(|c| {
                    c.closed_by_board
                        .get(&board)
                        .and_then(|v| v.first())
                        .cloned()
                })
            });
            if let Some(first) = cached {
                return Ok(first);
            }
        }
        let statuses = self
            .get_all(
                &format!("service/boards/{board}/statuses"),
                &[
                    (
                        "conditions",
                        format!("closedStatus={closed} and inactive=false"),
                    ),
                    ("fields", "id,name,sortOrder,closedStatus,inactive".into()),
                    ("orderBy", "sortOrder asc".into()),
                ],
                MAX_PAGE as usize,
            )
            .await?;
        statuses
            .iter()
            .filter(|s| flag(s, "closedStatus") == closed && !flag(s, "inactive"))
            .min_by_key(|s| {
                s.get("sortOrder")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX)
            })
            .and_then(|s| s.get("id").and_then(text))
            .ok_or_else(|| {
                let kind = if closed { "closed" } else { "open" };
                PsaError::Invalid(format!(
                    "board {board} has no active {kind} status; set a {what} status"
                ))
            })
    }

    fn note_text(note: &NewNote) -> String {
        let t = note.title.trim();
        let body = if t.is_empty() || note.text.starts_with(t) {
            note.text.clone()
        } else {
            format!("{t}\n\n{}", note.text)
        };
        truncate(&body, TEXT_MAX)
    }
}

#[async_trait]
impl Connector for ConnectWiseConnector {
    async fn ticket_url(&self, ticket_id: &str) -> Option<String> {
        ticket_page(&self.creds.host, &self.creds.company, ticket_id)
    }

    async fn check(&self) -> Result<ConnectionCheck, PsaError> {
        if self.opts.codebase.is_none() {
            *self.site.write().await = None;
        }
        let site = self.site().await?;
        // A cheap authenticated read proves the keys, the client id and read permission.
        self.call(
            Method::GET,
            "company/companies",
            &[("fields", "id".to_string()), ("pageSize", "1".to_string())],
            None,
            false,
        )
        .await?;
        let api_url = self.base().await?;
        Ok(ConnectionCheck {
            description: format!(
                "ConnectWise PSA{} at {} for company {} (codebase {})",
                site.version.map(|v| format!(" {v}")).unwrap_or_default(),
                self.creds.host,
                self.creds.company,
                site.codebase.trim_end_matches('/'),
            ),
            api_url,
        })
    }

    async fn lists(&self) -> Result<PsaLists, PsaError> {
        Ok(self.cached().await?.lists)
    }

    async fn companies(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<CompanyPage, PsaError> {
        let mut conditions = ACTIVE_COMPANIES.to_string();
        if let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) {
            conditions.push_str(&format!(" and name contains {}", quoted(s)));
        }
        let page = match cursor {
            None => 1,
            Some(c) => c.parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                PsaError::Invalid(format!("cursor '{c}' is not one this API gave"))
            })?,
        };
        let (items, next) = self
            .page(
                "company/companies",
                &[
                    ("conditions", conditions),
                    ("fields", "id,name,status,deletedFlag".to_string()),
                    ("orderBy", "name asc".to_string()),
                ],
                page,
                self.page_size(),
            )
            .await?;
        let companies: Vec<Company> = items
            .iter()
            .filter_map(|c| {
                Some(Company {
                    id: c.get("id").and_then(text)?,
                    name: str_of(c, "name"),
                    active: !flag(c, "deletedFlag"),
                })
            })
            .collect();
        let next = if companies.is_empty() { None } else { next };
        Ok(CompanyPage {
            companies,
            next: next.map(|n| n.to_string()),
        })
    }

    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError> {
        let conditions = if company_id.trim().is_empty() {
            "inactiveFlag=false".to_string()
        } else {
            format!(
                "company/id={} and inactiveFlag=false",
                num("company", company_id)?
            )
        };
        Ok(self
            .get_all(
                "company/contacts",
                &[
                    ("conditions", conditions),
                    ("fields", CONTACT_FIELDS.to_string()),
                    ("orderBy", "lastName asc, firstName asc".to_string()),
                ],
                20_000,
            )
            .await?
            .iter()
            .filter_map(|c| contact_of(c, None))
            .filter(|c| c.active)
            .collect())
    }

    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError> {
        let email = email.trim();
        if email.is_empty() {
            return Ok(Vec::new());
        }
        let conditions = format!(
            "company/id={} and inactiveFlag=false",
            num("company", company_id)?
        );
        let child = format!(
            "communicationItems/value={} AND communicationItems/communicationType=\"Email\"",
            quoted(email)
        );
        Ok(self
            .get_all(
                "company/contacts",
                &[
                    ("conditions", conditions),
                    ("childConditions", child),
                    ("fields", CONTACT_FIELDS.to_string()),
                ],
                MAX_PAGE as usize,
            )
            .await?
            .iter()
            .filter_map(|c| contact_of(c, Some(email)))
            .filter(|c| c.active && c.email.is_some())
            .collect())
    }

    async fn primary_contact(&self, company_id: &str) -> Result<Option<String>, PsaError> {
        let v = self
            .call(
                Method::GET,
                &format!("company/companies/{}", num("company", company_id)?),
                &[("fields", "id,defaultContact".to_string())],
                None,
                false,
            )
            .await?;
        Ok(v.body
            .get("defaultContact")
            .and_then(|c| c.get("id"))
            .and_then(text))
    }

    async fn create_ticket(&self, t: &NewTicket) -> Result<TicketRef, PsaError> {
        let title = if t.title.trim().is_empty() {
            t.reference.as_str()
        } else {
            t.title.trim()
        };
        let mut body = json!({
            "summary": truncate(title, SUMMARY_MAX),
            "company": {"id": num("company", &t.company_id)?},
            "initialDescription": truncate(&t.description, TEXT_MAX),
            "externalXRef": t.reference,
        });
        if let Some(c) = &t.contact_id {
            body["contact"] = json!({"id": num("contact", c)?});
        }
        if let Some(a) = &t.contract_id {
            body["agreement"] = json!({"id": num("agreement", a)?});
        }
        for (ours, theirs) in TICKET_FIELDS {
            if let Some(v) = t.fields.get(ours) {
                body[theirs] = json!({"id": num(ours, v)?});
            }
        }
        let a = self
            .call(Method::POST, "service/tickets", &[], Some(&body), true)
            .await?;
        let id = a
            .body
            .get("id")
            .and_then(text)
            .ok_or_else(|| PsaError::Transient {
                retry_after: None,
                outcome_unknown: true,
                message: "ConnectWise answered a ticket create without an id".into(),
            })?;
        Ok(TicketRef {
            number: Some(id.clone()),
            id,
        })
    }

    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError> {
        let items = self
            .get_all(
                "service/tickets",
                &[
                    ("conditions", format!("externalXRef={}", quoted(reference))),
                    ("fields", "id,externalXRef".to_string()),
                    ("orderBy", "id asc".to_string()),
                ],
                25,
            )
            .await?;
        Ok(items
            .iter()
            .filter(|i| i.get("externalXRef").and_then(Value::as_str) == Some(reference))
            .filter_map(|i| i.get("id").and_then(Value::as_i64))
            .min()
            .map(|id| TicketRef {
                id: id.to_string(),
                number: Some(id.to_string()),
            }))
    }

    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError> {
        let body = json!({
            "text": Self::note_text(note),
            "detailDescriptionFlag": false,
            "internalAnalysisFlag": true,
            "resolutionFlag": false,
            "customerUpdatedFlag": false,
            "processNotifications": false,
        });
        self.call(
            Method::POST,
            &format!("service/tickets/{}/notes", num("ticket", ticket_id)?),
            &[],
            Some(&body),
            true,
        )
        .await?;
        Ok(())
    }

    async fn find_note_by_reference(
        &self,
        ticket_id: &str,
        reference: &str,
    ) -> Result<bool, PsaError> {
        let notes = self
            .get_all(
                &format!("service/tickets/{}/notes", num("ticket", ticket_id)?),
                &[
                    ("conditions", format!("text contains {}", quoted(reference))),
                    ("fields", "id,text".to_string()),
                ],
                MAX_PAGE as usize,
            )
            .await?;
        Ok(notes
            .iter()
            .any(|n| contains_reference(&str_of(n, "text"), reference)))
    }

    async fn close_ticket(
        &self,
        ticket_id: &str,
        close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let status = match close_status {
            Some(s) => s.to_string(),
            None => self.default_close_status(ticket_id).await?,
        };
        let status = num("close status", &status)?;
        // The note first: a close that fails after it leaves the reason on an open ticket,
        // which a retry then closes; the reverse would leave a closed ticket without reason.
        self.add_note(ticket_id, note).await?;
        let patch = json!([{"op": "replace", "path": "status", "value": {"id": status}}]);
        self.call(
            Method::PATCH,
            &format!("service/tickets/{}", num("ticket", ticket_id)?),
            &[],
            Some(&patch),
            true,
        )
        .await?;
        Ok(())
    }

    async fn reopen_ticket(
        &self,
        ticket_id: &str,
        status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let status = match status {
            Some(s) => s.to_string(),
            None => self.first_board_status(ticket_id, false).await?,
        };
        let status = num("reopen status", &status)?;
        // As for a close: the reason first, then the status (which clears `closedFlag`).
        self.add_note(ticket_id, note).await?;
        let patch = json!([{"op": "replace", "path": "status", "value": {"id": status}}]);
        self.call(
            Method::PATCH,
            &format!("service/tickets/{}", num("ticket", ticket_id)?),
            &[],
            Some(&patch),
            true,
        )
        .await?;
        Ok(())
    }

    async fn contracts(&self, company_id: &str) -> Result<Vec<Contract>, PsaError> {
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        Ok(self
            .get_all(
                "finance/agreements",
                &[
                    (
                        "conditions",
                        format!("company/id={}", num("company", company_id)?),
                    ),
                    (
                        "fields",
                        "id,name,agreementStatus,cancelledFlag,endDate,noEndingDateFlag"
                            .to_string(),
                    ),
                    ("orderBy", "name asc".to_string()),
                ],
                10_000,
            )
            .await?
            .iter()
            .filter_map(|a| contract_of(a, &today))
            .collect())
    }

    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError> {
        // The cached lists' closed statuses, if the lists are at hand (never wait for a read).
        let known_closed = self
            .lists
            .try_lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.closed.clone()))
            .unwrap_or_default();
        let numeric: Vec<i64> = ids.iter().filter_map(|i| i.trim().parse().ok()).collect();
        let mut out = Vec::with_capacity(numeric.len());
        for chunk in numeric.chunks(IDS_PER_QUERY) {
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let rows = self
                .get_all(
                    "service/tickets",
                    &[
                        ("conditions", format!("id in ({list})")),
                        ("fields", "id,status,closedFlag,board".to_string()),
                    ],
                    chunk.len(),
                )
                .await?;
            for t in rows {
                let Some(id) = t.get("id").and_then(text) else {
                    continue;
                };
                let status = ref_id(&t, "status").unwrap_or_default();
                out.push(TicketState {
                    closed: flag(&t, "closedFlag")
                        || known_closed.contains(&status)
                        || self.opts.closed_statuses.contains(&status),
                    number: Some(id.clone()),
                    id,
                    status,
                });
            }
        }
        Ok(out)
    }

    async fn register_status_webhook(
        &self,
        url: &str,
        _secret: &str,
    ) -> Result<Option<WebhookRegistration>, PsaError> {
        // Ours already? (A reconnect, or a save whose answer was lost, must not register twice.)
        let found = self
            .get_all(
                "system/callbacks",
                &[(
                    "conditions",
                    format!("url={} and type=\"Ticket\"", quoted(url)),
                )],
                MAX_PAGE as usize,
            )
            .await?;
        if let Some(id) = found
            .iter()
            .filter(|c| !flag(c, "inactiveFlag"))
            .find_map(|c| c.get("id").and_then(text))
        {
            return Ok(Some(WebhookRegistration { id, guid: None }));
        }
        // Owner level: every ticket of the company; ConnectWise signs each callback itself.
        let body = json!({
            "url": url,
            "objectId": 1,
            "type": "Ticket",
            "level": "owner",
            "description": CALLBACK_DESCRIPTION,
            "inactiveFlag": false,
        });
        let a = self
            .call(Method::POST, "system/callbacks", &[], Some(&body), true)
            .await;
        let a = match a {
            Err(PsaError::Auth(_)) => return Ok(None),
            other => other?,
        };
        let id = a.body.get("id").and_then(text).ok_or_else(|| {
            PsaError::Invalid("ConnectWise answered a callback create without an id".into())
        })?;
        Ok(Some(WebhookRegistration { id, guid: None }))
    }

    async fn read_push(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        _secret: &str,
    ) -> Result<Option<Pushed>, PushError> {
        let signature = headers
            .get("x-content-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Unauthenticated("no x-content-signature".into()))?;
        let payload: Value = serde_json::from_slice(body)
            .map_err(|_| PushError::Unauthenticated("the callback is not JSON".into()))?;
        let key_url = payload
            .get("Metadata")
            .and_then(|m| m.get("key_url"))
            .and_then(Value::as_str)
            .ok_or_else(|| PushError::Unauthenticated("no Metadata.key_url".into()))?;
        let key = self.signing_key(key_url).await?;
        if !callback_signature_valid(key.as_bytes(), body, signature) {
            return Err(PushError::Unauthenticated(
                "the signature does not verify".into(),
            ));
        }
        // ConnectWise's API hosts serve many companies: only ours may speak for this connection.
        if let Some(company) = payload.get("CompanyId").and_then(Value::as_str)
            && !company.eq_ignore_ascii_case(&self.creds.company)
        {
            return Err(PushError::Unauthenticated(
                "the callback is another company's".into(),
            ));
        }
        let kind = payload.get("Type").and_then(Value::as_str).unwrap_or("");
        if !kind.eq_ignore_ascii_case("ticket") {
            return Ok(None);
        }
        let Some(id) = payload.get("ID").and_then(text) else {
            return Err(PushError::Malformed("no ID".into()));
        };
        let action = payload.get("Action").and_then(Value::as_str).unwrap_or("");
        if action.eq_ignore_ascii_case("deleted") {
            return Ok(Some(Pushed {
                ticket_id: id,
                closed: Some(true),
                deleted: true,
                number: None,
            }));
        }
        // `Entity` is the ticket as the API shows it, itself JSON in a string.
        let entity = match payload.get("Entity") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let closed = if entity.is_object() {
            let known_closed = self
                .lists
                .try_lock()
                .ok()
                .and_then(|c| c.as_ref().map(|c| c.closed.clone()))
                .unwrap_or_default();
            let status = ref_id(&entity, "status").unwrap_or_default();
            Some(
                flag(&entity, "closedFlag")
                    || known_closed.contains(&status)
                    || self.opts.closed_statuses.contains(&status),
            )
        } else {
            None
        };
        Ok(Some(Pushed {
            number: Some(id.clone()),
            ticket_id: id,
            closed,
            deleted: false,
        }))
    }

    fn ready_in(&self) -> Duration {
        self.bucket.ready_in().max(self.meter.shared_ready_in())
    }

    fn meter(&self) -> &CallMeter {
        &self.meter
    }

    fn contract_billing(&self) -> Option<&dyn crate::billing::ContractBilling> {
        Some(self)
    }

    fn asset_sync(&self) -> Option<&dyn crate::assets::AssetSync> {
        Some(self)
    }

    fn sweep_cost(&self) -> crate::SweepCost {
        crate::SweepCost {
            requests_per_hour: self.opts.requests_per_hour,
            tickets_per_request: IDS_PER_QUERY,
        }
    }
}

/// Every pure reader of a ConnectWise answer applied to one: as an error, its message, the next
/// page from the `Link` header, and, for a JSON body (an array or one record), the records as one
/// agreement addition line, and each record as a recurring agreement or not, a contract, a contact
/// and a list item. For [`crate::answers`] (fuzzing).
pub(crate) fn read_answer(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", classify(status, headers, body, true, "company")),
        error_message(body),
        format!("{:?}", next_page(headers)),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let list = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        out.push(format!("{:?}", billing::line_of(&list)));
        for r in &list {
            out.push(format!("{:?}", billing::recurring(r)));
            out.push(format!("{:?}", contract_of(r, "2026-12-05")));
            out.push(format!("{:?}", contact_of(r, Some("a@b.example"))));
            out.push(format!("{:?}", item_of(r, Some("inactiveFlag"), None)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticket_pages_are_on_the_site_host() {
        assert_eq!(
            super::ticket_page("https://api-na.myconnectwise.net", "Acme IT", "9").unwrap(),
            "https://na.myconnectwise.net/v4_6_release/services/system_io/Service/fv_sr100_request.rsp?companyName=Acme+IT&service_recid=9"
        );
    }

    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn agreements_are_in_force_by_status_else_by_dates() {
        let today = "2026-11-28";
        let c = |v: Value| contract_of(&v, today).unwrap();
        assert!(c(json!({"id": 44, "name": "MSA", "agreementStatus": "Active"})).active);
        for s in ["Cancelled", "Expired", "Inactive"] {
            assert!(!c(json!({"id": 1, "agreementStatus": s})).active, "{s}");
        }
        assert!(
            c(json!({"id": 1, "cancelledFlag": false, "endDate": "2026-12-31T00:00:00Z"})).active
        );
        assert!(!c(json!({"id": 1, "cancelledFlag": true})).active);
        assert!(!c(json!({"id": 1, "endDate": "2026-01-31T00:00:00Z"})).active);
        assert!(
            c(json!({"id": 1, "endDate": "2026-01-31T00:00:00Z", "noEndingDateFlag": true})).active
        );
        assert_eq!(c(json!({"id": 9, "name": "Gold"})).name, "Gold");
        assert!(contract_of(&json!({"name": "no id"}), today).is_none());
    }

    #[test]
    fn sites_name_their_api_host() {
        let h = |s: &str| api_host(s).unwrap();
        assert_eq!(
            h("na.myconnectwise.net"),
            "https://api-na.myconnectwise.net"
        );
        assert_eq!(
            h("https://eu.myconnectwise.net/"),
            "https://api-eu.myconnectwise.net"
        );
        assert_eq!(
            h("AU.myconnectwise.net"),
            "https://api-au.myconnectwise.net"
        );
        assert_eq!(
            h("aus.myconnectwise.net"),
            "https://api-aus.myconnectwise.net"
        );
        assert_eq!(
            h("za.myconnectwise.net"),
            "https://api-za.myconnectwise.net"
        );
        assert_eq!(
            h("staging.connectwisedev.com"),
            "https://api-staging.connectwisedev.com"
        );
        assert_eq!(
            h("api-na.myconnectwise.net"),
            "https://api-na.myconnectwise.net"
        );
        assert_eq!(h("cw.example-msp.com"), "https://cw.example-msp.com");
        assert_eq!(
            h("https://cw.example-msp.com/v4_6_release/apis/3.0/"),
            "https://cw.example-msp.com"
        );
        assert_eq!(h("http://127.0.0.1:8089"), "http://127.0.0.1:8089");
        assert_eq!(h(" http://127.0.0.1:8089/ "), "http://127.0.0.1:8089");
        assert!(api_host("").is_err());
        assert!(api_host("ftp://x.example").is_err());
        assert!(api_host("https://").is_err());
    }

    #[test]
    fn codebases_end_in_a_slash() {
        assert_eq!(normalise_codebase("v2025_1"), "v2025_1/");
        assert_eq!(normalise_codebase("/v4_6_release/"), "v4_6_release/");
    }

    #[test]
    fn strings_are_quoted_for_conditions() {
        assert_eq!(quoted("ALERT-1"), "\"ALERT-1\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let mut h = HeaderMap::new();
        assert_eq!(next_page(&h), None, "no Link header");
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "<https://h/v4_6_release/apis/3.0/company/companies?pageSize=50&page=1>; rel=\"first\", <https://h/x?conditions=a&pageSize=50&page=3>; rel=\"next\", <https://h/x?pageSize=50&page=5>; rel=\"last\"",
            ),
        );
        assert_eq!(next_page(&h), Some(Some(3)));
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "<https://h/x?pageSize=50&page=1>; rel=\"first\", <https://h/x?pageSize=50&page=4>; rel=\"prev\"",
            ),
        );
        assert_eq!(next_page(&h), Some(None), "the last page has no next");
    }

    #[test]
    fn errors_are_classified_by_what_connectwise_meant() {
        let h = HeaderMap::new();
        let c = |s: u16, b: &str, w: bool| {
            classify(StatusCode::from_u16(s).unwrap(), &h, b, w, "demomsp")
        };
        assert!(
            matches!(c(401, r#"{"code":"Unauthorized","message":"Authentication failed."}"#, false), PsaError::Auth(m) if m.contains("public_key"))
        );
        assert!(
            matches!(c(401, r#"{"code":"Unauthorized","message":"The clientId header is required."}"#, false), PsaError::Auth(m) if m.contains("client_id"))
        );
        assert!(matches!(c(403, "{}", false), PsaError::Auth(m) if m.contains("security role")));
        assert!(
            matches!(c(400, r#"{"code":"InvalidObject","message":"ticket object is invalid","errors":[{"code":"NullValue","message":"The summary field is required.","resource":"ticket","field":"summary"}]}"#, true), PsaError::Invalid(m) if m.contains("summary field is required") && m.contains("ticket object is invalid"))
        );
        assert!(
            matches!(c(404, r#"{"code":"NotFound","message":"Ticket 9 not found"}"#, false), PsaError::NotFound(m) if m.contains("Ticket 9"))
        );
        assert!(matches!(
            c(500, "<html>oops</html>", true),
            PsaError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
        assert!(matches!(
            c(503, "", false),
            PsaError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        assert!(matches!(c(409, "{}", true), PsaError::Invalid(_)));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        match classify(StatusCode::TOO_MANY_REQUESTS, &h, "{}", true, "x") {
            PsaError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&later).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(80) && d <= Duration::from_secs(90),
            "{d:?}"
        );
    }

    #[test]
    fn contacts_report_the_matching_email() {
        let v = json!({
            "id": 57, "firstName": "Sam", "lastName": "Shared", "inactiveFlag": false,
            "company": {"id": 12, "name": "Acme Ltd"},
            "communicationItems": [
                {"value": "555", "communicationType": "Phone", "defaultFlag": true},
                {"value": "sam@acme.test", "communicationType": "Email", "defaultFlag": true},
                {"value": "Shared@Acme.test", "communicationType": "Email", "defaultFlag": false}
            ]
        });
        let c = contact_of(&v, None).unwrap();
        assert_eq!(c.email.as_deref(), Some("sam@acme.test"));
        assert_eq!(c.company_id, "12");
        assert_eq!(c.name, "Sam Shared");
        let c = contact_of(&v, Some("shared@acme.test")).unwrap();
        assert_eq!(c.email.as_deref(), Some("Shared@Acme.test"));
        assert_eq!(
            contact_of(&v, Some("nobody@acme.test")).unwrap().email,
            None
        );
    }

    #[test]
    fn settings_are_checked() {
        let http = reqwest::Client::new();
        let mut secrets = BTreeMap::new();
        secrets.insert("private_key".to_string(), Secret::new("p"));
        let s = |v: Value| v.as_object().cloned().unwrap();
        let ok = s(
            json!({"site_url": "na.myconnectwise.net", "company": "acme",
            "public_key": "pub", "client_id": "abc", "page_size": 50}),
        );
        assert!(from_settings(http.clone(), &ok, &secrets).is_ok());
        let mut big = ok.clone();
        big.insert("page_size".into(), json!(5000));
        assert!(matches!(
            from_settings(http.clone(), &big, &secrets).err(),
            Some(SettingsError::Bad {
                field: "page_size",
                ..
            })
        ));
        let mut no_client = ok.clone();
        no_client.remove("client_id");
        assert_eq!(
            from_settings(http.clone(), &no_client, &secrets).err(),
            Some(SettingsError::Missing("client_id"))
        );
        assert_eq!(
            from_settings(http, &ok, &BTreeMap::new()).err(),
            Some(SettingsError::Missing("private_key"))
        );
    }

    #[test]
    fn error_bodies_read_well() {
        assert_eq!(
            error_message(r#"{"code":"NotFound","message":"Ticket 9 not found"}"#),
            "Ticket 9 not found"
        );
        assert_eq!(error_message("<html/>"), "an HTML error page");
        assert_eq!(error_message("plain"), "a non-JSON answer (5 bytes)");
        assert_eq!(
            error_message(r#"{"internal":"secret page"}"#),
            "a JSON answer without the PSA's error fields (26 bytes)"
        );
    }
}
