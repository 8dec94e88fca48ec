//! The Kaseya BMS connector, written from BMS's REST API v2 (its Swagger document at
//! `https://api.bms.kaseya.com/swagger/v2/swagger.json` and the vendor's help pages).
//!
//! - **Host.** Users type the UI host (`bms.kaseya.com`, `bmsemea…`, `bmsapac…`) or the API
//!   host; the API is always `https://api.<UI host>`. Without `base_url`, `region` picks it.
//! - **Authentication.** `POST /v2/security/authenticate` with a form (`GrantType=password`,
//!   `UserName`, `Password`, `Tenant`) gives a bearer token, kept until a minute before its
//!   `accessTokenExpireOn`, then renewed with `/v2/security/refreshtoken` (or by logging in
//!   again). A call answered 401 logs in again once and is sent once more — the only retry
//!   this connector makes.
//! - **Envelope.** Every answer is `{success, error, result, totalRecords?}`; `success:false`
//!   is a failure whatever the HTTP status, and `error.message` (with `subErrors`) is what we
//!   report. Property names are read case-insensitively (the Swagger says PascalCase, the wire
//!   is camelCase).
//! - **Limits.** BMS allows 1500 calls an hour per endpoint; we keep a token bucket per
//!   endpoint (method and path template) holding our share (`requests_per_hour`, 1200).
//! - **Companies** are CRM accounts. Our company id is the account id (`12`), or an account
//!   and one of its locations (`12/34`): a ticket needs a `LocationId`, which is the account's
//!   main location unless the company id names one.
//! - **Reference.** `TicketInputDto` has no external-reference field, so the reference goes at
//!   the end of the ticket's `Details` (`PSA Bridge reference: <ref>`), and
//!   `GET /v2/servicedesk/tickets?Filter.Details=<ref>` (a contains-match on the details) finds
//!   the ticket again; candidates are checked on our side.
//! - **Lists.** Dedicated v2 lookups for queues, statuses, priorities, issue types (and the
//!   sub-issue types of each), SLAs. Ticket types, sources and note types have no dedicated
//!   lookup: they are read from `GET /v2/system/lookup/{tableName}` with configurable table
//!   names (defaults `TicketType`, `TicketSource`, `NoteType`, **unverified** on a real
//!   tenant); an empty source table falls back to BMS's fixed source ids (0 Client Portal …
//!   9 Recurring).
//! - **Closed** means a status in `closed_statuses` (default: the statuses whose name says
//!   completed/closed/resolved/cancelled) or a non-null `completedDate`. BMS has no batch
//!   read by ids, so [`Connector::ticket_states`] reads each ticket.
//! - **Contract billing** (`billing`): catalogue services, Recurring Services contracts, and
//!   units changed as new effective-dated service entries (v2 cannot update an entry's units).

mod billing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use psabridge_core::render::truncate;
use psabridge_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::building::{SettingsError, count, id_list, required, secret, string};
use crate::http::{
    contains_reference, id_number, lost_answer, plain_message, retry_after, root_cause, text,
    unanswered,
};
use crate::limits::TokenBucket;
use crate::{
    CallMeter, Company, CompanyPage, ConnectionCheck, Connector, Contact, Contract, ListItem,
    NewNote, NewTicket, PsaError, PsaLists, TicketRef, TicketState, WebhookRegistration,
};

/// What a BMS API user gives us.
#[derive(Debug, Clone)]
pub struct KaseyaBmsCredentials {
    /// The API's base URL (`https://api.bms.kaseya.com`), normalised.
    pub api_url: String,
    /// The tenant: the MSP's company name in BMS.
    pub tenant: String,
    pub username: String,
    pub password: Secret,
}

/// How the connector behaves.
#[derive(Debug, Clone)]
pub struct KaseyaBmsOptions {
    /// Our share of the 1500 calls an hour BMS allows per endpoint.
    pub requests_per_hour: u32,
    /// Records per list page.
    pub page_size: u32,
    /// The note type of our notes; default the first active one of the note-type table, else 1.
    pub note_type_id: Option<String>,
    /// Status ids that count as closed; default the closed-sounding statuses of the lookup.
    /// A ticket with a `completedDate` is closed whatever its status.
    pub closed_statuses: Option<Vec<String>>,
    /// Generic lookup tables holding ticket types, sources and note types. [unverified]
    pub ticket_type_table: String,
    pub source_table: String,
    pub note_type_table: String,
    pub request_timeout: Duration,
    /// Longest title sent. [unverified: the Swagger gives no maximum]
    pub title_max: usize,
    /// Longest details sent (our reference line included). [unverified]
    pub details_max: usize,
}

impl Default for KaseyaBmsOptions {
    fn default() -> Self {
        KaseyaBmsOptions {
            requests_per_hour: 1200,
            page_size: 100,
            note_type_id: None,
            closed_statuses: None,
            ticket_type_table: "TicketType".into(),
            source_table: "TicketSource".into(),
            note_type_table: "NoteType".into(),
            request_timeout: Duration::from_secs(30),
            title_max: 255,
            details_max: 8000,
        }
    }
}

/// The Kaseya BMS settings a connection may carry, with their meaning.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "base_url",
        "the BMS host: the UI host you log in at (bms.kaseya.com, bmsemea.kaseya.com, bmsapac.kaseya.com) or its API host (api.bms…); https is assumed",
    ),
    (
        "region",
        "us, emea or apac: picks the host when base_url is not given",
    ),
    (
        "tenant",
        "the company name you log in to BMS with (required)",
    ),
    ("username", "the API user's user name (required)"),
    (
        "requests_per_hour",
        "our share of BMS's 1500 calls an hour per endpoint (default 1200)",
    ),
    ("page_size", "records per list page (default 100)"),
    (
        "note_type_id",
        "the note type of PSA Bridge's notes (default: the first active note type of the lookup, else 1)",
    ),
    (
        "closed_statuses",
        "status ids that count as closed (default: the lookup's completed/closed/resolved/cancelled statuses; a completed date always counts)",
    ),
    (
        "ticket_type_table",
        "the lookup table of ticket types (default TicketType; unverified)",
    ),
    (
        "source_table",
        "the lookup table of ticket sources (default TicketSource; unverified; empty → BMS's fixed source ids)",
    ),
    (
        "note_type_table",
        "the lookup table of note types (default NoteType; unverified)",
    ),
];

/// The settings a connection cannot do without (the API asks for each by name; the builder
/// refuses a connection that lacks one). The host comes from `base_url` or `region`, either.
pub const REQUIRED: &[&str] = &["tenant", "username"];

/// The Kaseya BMS secret fields.
pub const SECRETS: &[&str] = &["password"];

/// Build a Kaseya BMS connector from a connection's settings and secrets.
pub fn from_settings(
    http: reqwest::Client,
    s: &serde_json::Map<String, Value>,
    secrets: &std::collections::BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, SettingsError> {
    let api_url = match (string(s, "base_url")?, string(s, "region")?) {
        (Some(u), _) => normalise_base_url(&u).map_err(|problem| SettingsError::Bad {
            field: "base_url",
            problem,
        })?,
        (None, Some(r)) => region_url(&r).ok_or(SettingsError::Bad {
            field: "region",
            problem: format!("'{r}' is not a BMS region (us, emea or apac)"),
        })?,
        (None, None) => return Err(SettingsError::Missing("base_url")),
    };
    let credentials = KaseyaBmsCredentials {
        api_url,
        tenant: required(s, "tenant")?,
        username: required(s, "username")?,
        password: secret(secrets, "password")?,
    };
    let mut o = KaseyaBmsOptions::default();
    if let Some(n) = count(s, "requests_per_hour")? {
        o.requests_per_hour = n;
    }
    if let Some(n) = count(s, "page_size")? {
        o.page_size = n;
    }
    if let Some(v) = id_list(s, "closed_statuses")? {
        o.closed_statuses = Some(v);
    }
    o.note_type_id = match s.get("note_type_id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => string(s, "note_type_id")?,
    };
    for (field, slot) in [
        ("ticket_type_table", &mut o.ticket_type_table),
        ("source_table", &mut o.source_table),
        ("note_type_table", &mut o.note_type_table),
    ] {
        if let Some(t) = string(s, field)? {
            if !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(SettingsError::Bad {
                    field,
                    problem: "a table name has only letters, digits and underscores".into(),
                });
            }
            *slot = t;
        }
    }
    Ok(Arc::new(KaseyaBmsConnector::new(http, credentials, o)))
}

/// The API host of a region.
pub fn region_url(region: &str) -> Option<String> {
    let host = match region.trim().to_ascii_lowercase().as_str() {
        "us" | "na" | "americas" => "api.bms.kaseya.com",
        "emea" | "eu" | "europe" | "uk" => "api.bmsemea.kaseya.com",
        "apac" | "au" | "asia" => "api.bmsapac.kaseya.com",
        _ => return None,
    };
    Some(format!("https://{host}"))
}

/// The API base URL from what a user typed: a scheme added when missing (https), the UI hosts
/// mapped to their API hosts (and any path after them dropped), a trailing `/v2` and slashes
/// stripped.
pub fn normalise_base_url(input: &str) -> Result<String, String> {
    let t = input.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    let with_scheme = if t.contains("://") {
        t.to_string()
    } else {
        format!("https://{t}")
    };
    let mut u = url::Url::parse(&with_scheme).map_err(|e| format!("'{t}' is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("'{t}' is not an http(s) URL"));
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("'{t}' names no host"))?
        .to_ascii_lowercase();
    let kaseya = host.ends_with(".kaseya.com") || host == "api.vorexlogin.com";
    if kaseya {
        if host.starts_with("bms") {
            u.set_host(Some(&format!("api.{host}")))
                .map_err(|e| e.to_string())?;
        }
        if u.scheme() == "http" {
            u.set_scheme("https")
                .map_err(|()| "cannot use https".to_string())?;
        }
        u.set_path("");
    }
    u.set_query(None);
    u.set_fragment(None);
    let mut s = u.to_string();
    while s.ends_with('/') {
        s.pop();
    }
    if let Some(stripped) = s.strip_suffix("/v2") {
        s = stripped.trim_end_matches('/').to_string();
    }
    Ok(s)
}

/// How long the lists stay cached.
const LISTS_FOR: Duration = Duration::from_secs(6 * 3600);
/// At most this many pages are read for one list (a guard against a server that never ends).
const MAX_PAGES: u32 = 200;
/// BMS's fixed ticket sources (legacy v1 ids), used when the source table answers nothing.
const LEGACY_SOURCES: [&str; 10] = [
    "Client Portal",
    "Phone",
    "In Person",
    "On Site",
    "Email",
    "Monitoring System",
    "Voice Mail",
    "Verbal",
    "Other",
    "Recurring",
];
/// What precedes our reference in a ticket's details.
const REFERENCE_MARK: &str = "PSA Bridge reference:";

/// Ticket fields: ours (`TicketDefaults` names) → the `TicketInputDto` property.
const TICKET_FIELDS: [(&str, &str); 8] = [
    ("queue", "QueueId"),
    ("status", "StatusId"),
    ("priority", "PriorityId"),
    ("ticket_type", "TypeId"),
    ("issue_type", "IssueTypeId"),
    ("sub_issue_type", "SubIssueTypeId"),
    ("source", "SourceId"),
    ("sla", "SLAId"),
];
/// Fields `TicketInputDto` requires that come from our defaults.
const REQUIRED_FIELDS: [(&str, &str); 4] = [
    ("status", "StatusId"),
    ("priority", "PriorityId"),
    ("ticket_type", "TypeId"),
    ("source", "SourceId"),
];

struct Token {
    access: Secret,
    refresh: Option<Secret>,
    /// When we stop using it (a minute before it expires).
    use_until: Instant,
}

/// One request: what it is and where it goes (`endpoint` is the path template that names
/// its budget).
struct Req<'a> {
    method: Method,
    endpoint: &'a str,
    path: &'a str,
    query: &'a [(&'a str, String)],
    /// May it change something in BMS?
    write: bool,
}

/// What to send.
enum Payload<'a> {
    Empty,
    Json(&'a Value),
    Form(String),
}

/// The Kaseya BMS connector.
pub struct KaseyaBmsConnector {
    http: reqwest::Client,
    creds: KaseyaBmsCredentials,
    opts: KaseyaBmsOptions,
    token: Mutex<Option<Token>>,
    buckets: std::sync::Mutex<HashMap<String, Arc<TokenBucket>>>,
    lists: Mutex<Option<(PsaLists, Instant)>>,
    /// Closed status ids read from the status lookup (when not configured).
    closed: Mutex<Option<Vec<String>>>,
    /// The status a reopened ticket takes when none is given, read from the status lookup.
    open_status: Mutex<Option<String>>,
    note_type: Mutex<Option<String>>,
    /// Main location per account.
    main_locations: Mutex<HashMap<i64, i64>>,
    /// By (contract, service): the service entry in force the last snapshot or write saw, whose
    /// id and price an update needs.
    billing_entries: std::sync::Mutex<HashMap<(String, String), billing::CurrentEntry>>,
    meter: CallMeter,
}

/// A property of a vendor object, whatever its casing.
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(name)
        .or_else(|| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn text_of(v: &Value, name: &str) -> Option<String> {
    field(v, name).and_then(text)
}

fn bool_of(v: &Value, name: &str) -> Option<bool> {
    match field(v, name)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// The records of an envelope's `result`.
fn records(envelope: &Value) -> Vec<Value> {
    field(envelope, "result")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An id as the JSON number BMS expects (ours are strings).
fn num(what: &str, id: &str) -> Result<i64, PsaError> {
    id_number(what, id, "a Kaseya BMS")
}

/// Our company id: an account id, or `account/location`.
pub fn parse_company(id: &str) -> Result<(i64, Option<i64>), PsaError> {
    match id.split_once('/') {
        Some((a, l)) => Ok((num("company", a)?, Some(num("location", l)?))),
        None => Ok((num("company", id)?, None)),
    }
}

/// The opaque cursor of a company page: the next page number.
fn cursor_of(page: u32) -> String {
    format!("page:{page}")
}

fn page_of_cursor(cursor: Option<&str>) -> Result<u32, PsaError> {
    match cursor {
        None => Ok(1),
        Some(c) => c
            .strip_prefix("page:")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| PsaError::Invalid(format!("cursor '{c}' is not one this API gave"))),
    }
}

/// Is there a page after page `page` of `size` records that held `got` of `total`?
fn has_next(page: u32, size: u32, got: usize, total: Option<u64>) -> bool {
    if got == 0 {
        return false;
    }
    match total {
        Some(t) => u64::from(page) * u64::from(size) < t,
        None => got >= size as usize,
    }
}

/// The message of a failure body: the envelope's `error.message` with its `subErrors`, an
/// ASP.NET problem document's title and errors, or the text itself.
fn error_message(body: &str) -> String {
    crate::http::excerpt(&error_message_of(body))
}

fn error_message_of(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return plain_message(body, "an empty answer");
    };
    if let Some(e) = field(&v, "error") {
        let mut msg = text_of(e, "message").unwrap_or_default();
        let subs: Vec<String> = field(e, "subErrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(text)
            .filter(|s| !msg.contains(s.as_str()))
            .collect();
        if !subs.is_empty() {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&subs.join("; "));
        }
        if !msg.is_empty() {
            return msg;
        }
    }
    if let Some(title) = text_of(&v, "title") {
        let errors: Vec<String> = field(&v, "errors")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(k, msgs)| {
                msgs.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                    .map(move |m| format!("{k}: {m}"))
            })
            .collect();
        return if errors.is_empty() {
            title
        } else {
            format!("{title} {}", errors.join("; "))
        };
    }
    crate::http::undocumented_json(body)
}

/// Classify a failure: the HTTP status (or, for a `success:false` envelope answered 200, the
/// envelope's `error.code`). `write` is true when the call may have changed something.
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    write: bool,
) -> PsaError {
    let msg = error_message(body);
    match status.as_u16() {
        429 => PsaError::RateLimited {
            retry_after: retry_after(headers),
            message: msg,
        },
        401 => PsaError::Auth(format!("Kaseya BMS refused the access token (401): {msg}")),
        403 => PsaError::Auth(format!(
            "the Kaseya BMS API user lacks a permission this needs (403): {msg}"
        )),
        404 => PsaError::NotFound(msg),
        408 => PsaError::Transient {
            retry_after: retry_after(headers),
            outcome_unknown: write,
            message: format!("Kaseya BMS timed out (408): {msg}"),
        },
        s if s >= 500 => PsaError::Transient {
            retry_after: retry_after(headers),
            outcome_unknown: write,
            message: format!("Kaseya BMS answered {s}: {msg}"),
        },
        _ => PsaError::Invalid(msg),
    }
}

/// A `success:false` envelope answered with a 2xx status.
fn classify_envelope(
    envelope: &Value,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    write: bool,
) -> PsaError {
    let code = field(envelope, "error")
        .and_then(|e| field(e, "code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|c| c.is_client_error() || c.is_server_error())
        .unwrap_or(StatusCode::BAD_REQUEST);
    classify(code, headers, body, write)
}

/// What a refused login means, from BMS's message.
fn login_refused(message: &str, tenant: &str, username: &str) -> PsaError {
    let lower = message.to_lowercase();
    if lower.contains("tenant") || lower.contains("company") {
        PsaError::Auth(format!(
            "Kaseya BMS does not know the tenant (company name) '{tenant}' — check it: {message}"
        ))
    } else if lower.contains("mfa") || lower.contains("two-factor") || lower.contains("2fa") {
        PsaError::Auth(format!(
            "the BMS user '{username}' needs an MFA code; use an API user without MFA: {message}"
        ))
    } else if lower.contains("password") || lower.contains("user") {
        PsaError::Auth(format!(
            "Kaseya BMS refused the user name '{username}' or its password — check both: {message}"
        ))
    } else if lower.contains("locked") || lower.contains("disabled") || lower.contains("inactive") {
        PsaError::Auth(format!(
            "the BMS user '{username}' cannot log in: {message}"
        ))
    } else {
        PsaError::Auth(format!("Kaseya BMS refused the login: {message}"))
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Does a status name say the ticket is done?
fn closed_sounding(name: &str) -> bool {
    let n = name.to_lowercase();
    ["complete", "closed", "resolved", "cancel"]
        .iter()
        .any(|w| n.contains(w))
}

/// The status a reopened ticket takes by default, from the status lookup: the active status
/// named "New", else the first active one (by `statusOrder`) whose name does not say done.
fn default_open_status(statuses: &[Value]) -> Option<String> {
    let active: Vec<&Value> = statuses
        .iter()
        .filter(|s| bool_of(s, "isActive") != Some(false))
        .collect();
    active
        .iter()
        .find(|s| text_of(s, "name").is_some_and(|n| n.trim().eq_ignore_ascii_case("new")))
        .or_else(|| {
            active
                .iter()
                .filter(|s| !text_of(s, "name").is_some_and(|n| closed_sounding(&n)))
                .min_by_key(|s| {
                    field(s, "statusOrder")
                        .and_then(Value::as_i64)
                        .unwrap_or(i64::MAX)
                })
        })
        .and_then(|s| text_of(s, "id"))
}

/// A BMS `ContractLookupOutputDto` as our contract: in force when `isActive` and its
/// `endDate` (if any) is not before `today` (`YYYY-MM-DD`).
fn contract_of(v: &Value, today: &str) -> Option<Contract> {
    let ended = text_of(v, "endDate")
        .and_then(|d| d.get(..10).map(str::to_string))
        .is_some_and(|end| end.as_str() < today);
    Some(Contract {
        id: text_of(v, "id")?,
        name: text_of(v, "name").unwrap_or_default(),
        active: bool_of(v, "isActive").unwrap_or(true) && !ended,
    })
}

/// A ticket's details with our reference at the end, within `max` characters.
fn details_with_reference(description: &str, reference: &str, max: usize) -> String {
    // In brackets, so that a search for `[…:1]` cannot find `[…:12]` (the search is a
    // contains-match over the details).
    let tail = format!("\n\n{REFERENCE_MARK} [{reference}]");
    let room = max.saturating_sub(tail.chars().count()).max(1);
    let body = if description.trim().is_empty() {
        "(no description)".to_string()
    } else {
        truncate(description, room)
    };
    format!("{body}{tail}")
}

fn list_item(v: &Value, parent: Option<&str>) -> Option<ListItem> {
    Some(ListItem {
        id: text_of(v, "id")?,
        label: text_of(v, "name").unwrap_or_default(),
        active: bool_of(v, "isActive").unwrap_or(true),
        parent: parent.map(str::to_string),
    })
}

impl KaseyaBmsConnector {
    pub fn new(
        http: reqwest::Client,
        credentials: KaseyaBmsCredentials,
        options: KaseyaBmsOptions,
    ) -> Self {
        KaseyaBmsConnector {
            http,
            creds: credentials,
            opts: options,
            token: Mutex::new(None),
            buckets: std::sync::Mutex::new(HashMap::new()),
            lists: Mutex::new(None),
            closed: Mutex::new(None),
            open_status: Mutex::new(None),
            note_type: Mutex::new(None),
            main_locations: Mutex::new(HashMap::new()),
            billing_entries: std::sync::Mutex::new(HashMap::new()),
            meter: CallMeter::new(),
        }
    }

    /// Forget cached lists (after an "unknown id" error, or on demand).
    pub async fn flush_lists(&self) {
        *self.lists.lock().await = None;
        *self.closed.lock().await = None;
    }

    fn bucket(&self, endpoint: &str) -> Arc<TokenBucket> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        b.entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(TokenBucket::per_hour(self.opts.requests_per_hour)))
            .clone()
    }

    /// One HTTP exchange: a token of the endpoint's budget, counted, timed out. Transport
    /// failures are classified here; the answer is returned whatever its status.
    async fn send(
        &self,
        r: &Req<'_>,
        payload: Payload<'_>,
        bearer: Option<&Secret>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, String), PsaError> {
        let Req {
            method,
            endpoint,
            path,
            query,
            write,
        } = r;
        let (method, endpoint, path, query, write) =
            (method.clone(), *endpoint, *path, *query, *write);
        let scope = format!("{method} {endpoint}");
        self.bucket(&scope).acquire().await;
        self.meter
            .admit(
                &scope,
                self.opts.requests_per_hour,
                std::time::Duration::from_secs(3600),
            )
            .await;
        let mut metered = self.meter.request(method.as_str(), endpoint);
        let url = format!("{}{path}", self.creds.api_url);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.opts.request_timeout);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t.expose());
        }
        req = match payload {
            Payload::Empty => req,
            Payload::Json(v) => req.json(v),
            Payload::Form(f) => req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(f),
        };
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metered.failed(&e);
                tracing::debug!(endpoint, %method, error = %root_cause(&e), "Kaseya BMS request failed");
                let call = format!("{method} {endpoint}");
                return Err(unanswered(
                    &e,
                    &self.creds.api_url,
                    &call,
                    write,
                    "timed out calling",
                ));
            }
        };
        let status = resp.status();
        metered.answered(status.as_u16());
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| lost_answer(&e, &format!("{method} {endpoint}"), write))?;
        drop(metered);
        tracing::debug!(endpoint, %method, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "Kaseya BMS");
        Ok((status, headers, body))
    }

    /// Log in (`POST /v2/security/authenticate`) or refresh, and keep the token.
    async fn login(&self, refresh: Option<(&Secret, &Secret)>) -> Result<Token, PsaError> {
        let (path, form) = match refresh {
            Some((access, refresh)) => (
                "/v2/security/refreshtoken",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("AccessToken", access.expose())
                    .append_pair("RefreshToken", refresh.expose())
                    .finish(),
            ),
            None => (
                "/v2/security/authenticate",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("GrantType", "password")
                    .append_pair("UserName", &self.creds.username)
                    .append_pair("Password", self.creds.password.expose())
                    .append_pair("Tenant", &self.creds.tenant)
                    .finish(),
            ),
        };
        let (status, headers, body) = self
            .send(
                &Req {
                    method: Method::POST,
                    endpoint: path,
                    path,
                    query: &[],
                    write: false,
                },
                Payload::Form(form),
                None,
            )
            .await?;
        let parsed = serde_json::from_str::<Value>(&body).ok();
        let envelope_ok = parsed
            .as_ref()
            .and_then(|v| bool_of(v, "success"))
            .unwrap_or(false);
        if status.is_success() && envelope_ok {
            let v = parsed.unwrap_or_default();
            let result = field(&v, "result").cloned().unwrap_or_default();
            let access = text_of(&result, "accessToken").ok_or_else(|| PsaError::Transient {
                retry_after: None,
                outcome_unknown: false,
                message: "Kaseya BMS answered a login without an access token".into(),
            })?;
            let lifetime = text_of(&result, "accessTokenExpireOn")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .and_then(|t| {
                    (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                        .to_std()
                        .ok()
                })
                .unwrap_or(Duration::from_secs(20 * 60));
            return Ok(Token {
                access: Secret::new(access),
                refresh: text_of(&result, "refreshToken").map(Secret::new),
                use_until: Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)),
            });
        }
        if status == StatusCode::NOT_FOUND || (parsed.is_none() && status.is_success()) {
            return Err(PsaError::Unreachable(format!(
                "{} does not answer like the Kaseya BMS API ({status} at {path}) — check base_url (the API host is api.<your BMS host>)",
                self.creds.api_url
            )));
        }
        if matches!(status.as_u16(), 429 | 408) || status.is_server_error() {
            return Err(classify(status, &headers, &body, false));
        }
        let msg = error_message(&body);
        if refresh.is_some() {
            return Err(PsaError::Auth(format!(
                "the refresh token was refused: {msg}"
            )));
        }
        Err(login_refused(
            &msg,
            &self.creds.tenant,
            &self.creds.username,
        ))
    }

    /// The bearer token: the kept one while it lasts, else a refreshed one, else a new login.
    /// `fresh` forces a new login (after a 401).
    async fn bearer(&self, fresh: bool) -> Result<Secret, PsaError> {
        let mut slot = self.token.lock().await;
        if !fresh
            && let Some(t) = slot.as_ref()
            && t.use_until > Instant::now()
        {
            return Ok(t.access.clone());
        }
        let old = slot.take();
        let mut token = None;
        if !fresh
            && let Some(old) = &old
            && let Some(refresh) = &old.refresh
        {
            match self.login(Some((&old.access, refresh))).await {
                Ok(t) => token = Some(t),
                Err(e @ (PsaError::RateLimited { .. } | PsaError::Unreachable(_))) => {
                    return Err(e);
                }
                Err(_) => {}
            }
        }
        let token = match token {
            Some(t) => t,
            None => self.login(None).await?,
        };
        let access = token.access.clone();
        *slot = Some(token);
        Ok(access)
    }

    /// One API call: the envelope of a successful answer, or the classified failure. A 401 logs
    /// in again once and sends the call once more (the call was refused, so nothing was done).
    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        write: bool,
    ) -> Result<Value, PsaError> {
        let mut fresh = false;
        loop {
            let token = self.bearer(fresh).await?;
            let payload = body.map_or(Payload::Empty, Payload::Json);
            let (status, headers, text) = self
                .send(
                    &Req {
                        method: method.clone(),
                        endpoint,
                        path,
                        query,
                        write,
                    },
                    payload,
                    Some(&token),
                )
                .await?;
            if status == StatusCode::UNAUTHORIZED && !fresh {
                fresh = true;
                continue;
            }
            if !status.is_success() {
                return Err(classify(status, &headers, &text, write));
            }
            let v: Value = serde_json::from_str(&text).map_err(|_| PsaError::Transient {
                retry_after: None,
                outcome_unknown: write,
                message: format!(
                    "Kaseya BMS answered {status} without JSON for {method} {endpoint}"
                ),
            })?;
            if bool_of(&v, "success") == Some(false) {
                return Err(classify_envelope(&v, &headers, &text, write));
            }
            return Ok(v);
        }
    }

    async fn get(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, PsaError> {
        self.call(Method::GET, endpoint, path, query, None, false)
            .await
    }

    /// Every record of a paged GET, page after page, until a short page (or `totalRecords`).
    async fn get_all(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, PsaError> {
        let size = self.opts.page_size.max(1);
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("PageSize", size.to_string()));
            q.push(("PageNumber", page.to_string()));
            let v = self.get(endpoint, path, &q).await?;
            let items = records(&v);
            let got = items.len();
            out.extend(items);
            let total = field(&v, "totalRecords").and_then(Value::as_u64);
            if !has_next(page, size, got, total) {
                break;
            }
        }
        Ok(out)
    }

    /// A generic lookup table; a table the tenant does not have is an empty list.
    async fn table(&self, table: &str) -> Result<Vec<Value>, PsaError> {
        match self
            .get(
                "/v2/system/lookup/{tableName}",
                &format!("/v2/system/lookup/{table}"),
                &[],
            )
            .await
        {
            Ok(v) => Ok(records(&v)),
            Err(PsaError::NotFound(m) | PsaError::Invalid(m)) => {
                tracing::warn!(table, message = %m, "Kaseya BMS has no such lookup table");
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Closed status ids: configured, else read from the status lookup once.
    async fn closed_statuses(&self) -> Result<Vec<String>, PsaError> {
        if let Some(c) = &self.opts.closed_statuses {
            return Ok(c.clone());
        }
        let mut cached = self.closed.lock().await;
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let v = self
            .get(
                "/v2/system/statuses/lookup",
                "/v2/system/statuses/lookup",
                &[],
            )
            .await?;
        let closed: Vec<String> = records(&v)
            .iter()
            .filter(|s| text_of(s, "name").is_some_and(|n| closed_sounding(&n)))
            .filter_map(|s| text_of(s, "id"))
            .collect();
        *cached = Some(closed.clone());
        Ok(closed)
    }

    /// The note type of our notes.
    async fn note_type(&self) -> Result<String, PsaError> {
        if let Some(t) = &self.opts.note_type_id {
            return Ok(t.clone());
        }
        let mut cached = self.note_type.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let known = self
            .lists
            .lock()
            .await
            .as_ref()
            .and_then(|(l, _)| l.get("note_type").cloned());
        let items = match known {
            Some(items) => items,
            None => self
                .table(&self.opts.note_type_table)
                .await?
                .iter()
                .filter_map(|v| list_item(v, None))
                .collect(),
        };
        let t = items
            .iter()
            .find(|i| i.active)
            .map_or_else(|| "1".to_string(), |i| i.id.clone());
        *cached = Some(t.clone());
        Ok(t)
    }

    /// The location of a new ticket: the one the company id names, else the account's main one.
    async fn location_of(&self, account: i64, named: Option<i64>) -> Result<i64, PsaError> {
        if let Some(l) = named {
            return Ok(l);
        }
        if let Some(l) = self.main_locations.lock().await.get(&account) {
            return Ok(*l);
        }
        let v = self
            .get(
                "/v2/crm/accounts/{accountId}/locations/lookup",
                &format!("/v2/crm/accounts/{account}/locations/lookup"),
                &[],
            )
            .await
            .map_err(|e| match e {
                PsaError::NotFound(m) => {
                    PsaError::Invalid(format!("Kaseya BMS has no account {account}: {m}"))
                }
                e => e,
            })?;
        let locations = records(&v);
        let id = locations
            .iter()
            .find(|l| bool_of(l, "isMain") == Some(true))
            .or_else(|| locations.first())
            .and_then(|l| field(l, "id"))
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                PsaError::Invalid(format!(
                    "the Kaseya BMS account {account} has no location; a ticket needs one"
                ))
            })?;
        self.main_locations.lock().await.insert(account, id);
        Ok(id)
    }

    fn contact_of(v: &Value) -> Option<Contact> {
        let name = format!(
            "{} {}",
            text_of(v, "firstName").unwrap_or_default(),
            text_of(v, "lastName").unwrap_or_default()
        );
        Some(Contact {
            id: text_of(v, "id")?,
            company_id: text_of(v, "accountId").unwrap_or_default(),
            name: name.trim().to_string(),
            email: text_of(v, "emailAddress"),
            active: bool_of(v, "isActive").unwrap_or(true),
        })
    }

    async fn search_contacts(
        &self,
        account: i64,
        email: Option<&str>,
    ) -> Result<Vec<Contact>, PsaError> {
        let mut q = vec![
            ("Filter.AccountIds", account.to_string()),
            ("Filter.IsActive", "true".to_string()),
        ];
        if let Some(e) = email {
            q.push(("Filter.EmailAddress", e.to_string()));
        }
        Ok(self
            .get_all("/v2/crm/contacts/search", "/v2/crm/contacts/search", &q)
            .await?
            .iter()
            .filter_map(Self::contact_of)
            .filter(|c| c.active && c.company_id == account.to_string())
            .collect())
    }

    async fn read_lists(&self) -> Result<PsaLists, PsaError> {
        let mut lists = PsaLists::new();
        let simple = |v: &Value| -> Vec<ListItem> {
            records(v)
                .iter()
                .filter_map(|i| list_item(i, None))
                .collect()
        };
        let queues = self
            .get("/v2/system/queues/lookup", "/v2/system/queues/lookup", &[])
            .await?;
        lists.insert("queue".into(), simple(&queues));
        let statuses = self
            .get(
                "/v2/system/statuses/lookup",
                "/v2/system/statuses/lookup",
                &[],
            )
            .await?;
        lists.insert("status".into(), simple(&statuses));
        if self.opts.closed_statuses.is_none() {
            *self.closed.lock().await = Some(
                records(&statuses)
                    .iter()
                    .filter(|s| text_of(s, "name").is_some_and(|n| closed_sounding(&n)))
                    .filter_map(|s| text_of(s, "id"))
                    .collect(),
            );
        }
        let priorities = self
            .get(
                "/v2/system/priorities/lookup",
                "/v2/system/priorities/lookup",
                &[],
            )
            .await?;
        lists.insert("priority".into(), simple(&priorities));
        let issue_types = simple(
            &self
                .get(
                    "/v2/system/issuetypes/lookup",
                    "/v2/system/issuetypes/lookup",
                    &[],
                )
                .await?,
        );
        let mut subs = Vec::new();
        for it in &issue_types {
            let v = self
                .get(
                    "/v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup",
                    &format!(
                        "/v2/system/issuetypes/{}/issuesubtypes/lookup",
                        num("issue type", &it.id)?
                    ),
                    &[],
                )
                .await?;
            subs.extend(
                records(&v)
                    .iter()
                    .filter_map(|s| list_item(s, Some(&it.id))),
            );
        }
        lists.insert("issue_type".into(), issue_types);
        lists.insert("sub_issue_type".into(), subs);
        let slas = self
            .get("/v2/system/slas/lookup", "/v2/system/slas/lookup", &[])
            .await?;
        lists.insert("sla".into(), simple(&slas));
        let types: Vec<ListItem> = self
            .table(&self.opts.ticket_type_table)
            .await?
            .iter()
            .filter_map(|i| list_item(i, None))
            .collect();
        lists.insert("ticket_type".into(), types);
        let mut sources: Vec<ListItem> = self
            .table(&self.opts.source_table)
            .await?
            .iter()
            .filter_map(|i| list_item(i, None))
            .collect();
        if sources.is_empty() {
            sources = LEGACY_SOURCES
                .iter()
                .enumerate()
                .map(|(i, name)| ListItem {
                    id: i.to_string(),
                    label: (*name).to_string(),
                    active: true,
                    parent: None,
                })
                .collect();
        }
        lists.insert("source".into(), sources);
        let note_types: Vec<ListItem> = self
            .table(&self.opts.note_type_table)
            .await?
            .iter()
            .filter_map(|i| list_item(i, None))
            .collect();
        lists.insert("note_type".into(), note_types);
        Ok(lists)
    }

    /// `POST …/tickets/{id}/notes`, optionally changing the ticket's status with the note
    /// (`StatusId`), which BMS does in the same call.
    async fn post_note(
        &self,
        ticket_id: &str,
        note: &NewNote,
        status: Option<i64>,
    ) -> Result<(), PsaError> {
        let id = num("ticket", ticket_id)?;
        let note_type = self.note_type().await?;
        let mut details = if !note.title.trim().is_empty() && !note.text.contains(note.title.trim())
        {
            format!("{}\n\n{}", note.title.trim(), note.text)
        } else {
            note.text.clone()
        };
        if !details.contains(&note.reference) {
            details = details_with_reference(&details, &note.reference, 32_000);
        }
        let mut body = json!({
            "Details": details,
            "IsInternal": true,
            "TypeId": num("note type", &note_type)?,
            "NoteDate": now_text(),
        });
        if let Some(s) = status {
            body["StatusId"] = json!(s);
        }
        self.call(
            Method::POST,
            "/v2/servicedesk/tickets/{ticketId}/notes",
            &format!("/v2/servicedesk/tickets/{id}/notes"),
            &[],
            Some(&body),
            true,
        )
        .await?;
        Ok(())
    }

    /// The status of a reopened ticket when none is configured, read once.
    async fn open_status(&self) -> Result<String, PsaError> {
        let mut cached = self.open_status.lock().await;
        if let Some(s) = cached.as_ref() {
            return Ok(s.clone());
        }
        let v = self
            .get(
                "/v2/system/statuses/lookup",
                "/v2/system/statuses/lookup",
                &[],
            )
            .await?;
        let s = default_open_status(&records(&v)).ok_or_else(|| {
            PsaError::Invalid(
                "Kaseya BMS lists no active open status to reopen a ticket with; set one".into(),
            )
        })?;
        *cached = Some(s.clone());
        Ok(s)
    }

    /// The body of a new ticket, checked before anything is sent.
    async fn ticket_body(&self, t: &NewTicket) -> Result<Value, PsaError> {
        let (account, named_location) = parse_company(&t.company_id)?;
        for (ours, theirs) in REQUIRED_FIELDS {
            if t.fields.get(ours).is_none_or(|v| v.trim().is_empty()) {
                return Err(PsaError::Invalid(format!(
                    "Kaseya BMS requires {theirs} on a ticket: the ticket defaults have no {}",
                    ours.replace('_', " ")
                )));
            }
        }
        if t.title.trim().is_empty() {
            return Err(PsaError::Invalid(
                "Kaseya BMS requires a ticket title (Title)".into(),
            ));
        }
        let mut body = json!({
            "Title": truncate(t.title.trim(), self.opts.title_max),
            "Details": details_with_reference(&t.description, &t.reference, self.opts.details_max),
            "AccountId": account,
            "OpenDate": now_text(),
            "UseDefaultContract": false,
        });
        if let Some(c) = &t.contact_id {
            body["ContactId"] = json!(num("contact", c)?);
        }
        if let Some(c) = &t.contract_id {
            body["ContractId"] = json!(num("contract", c)?);
        }
        for (ours, theirs) in TICKET_FIELDS {
            if let Some(v) = t.fields.get(ours).filter(|v| !v.trim().is_empty()) {
                body[theirs] = json!(num(ours, v)?);
            }
        }
        body["LocationId"] = json!(self.location_of(account, named_location).await?);
        Ok(body)
    }
}

#[async_trait]
impl Connector for KaseyaBmsConnector {
    async fn check(&self) -> Result<ConnectionCheck, PsaError> {
        self.bearer(true).await?;
        let v = self
            .get("/v2/security/userinfo", "/v2/security/userinfo", &[])
            .await?;
        let who = field(&v, "result")
            .and_then(|r| text_of(r, "fullName"))
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        Ok(ConnectionCheck {
            api_url: self.creds.api_url.clone(),
            description: format!(
                "Kaseya BMS API at {}, tenant {}, as {}{who}",
                self.creds.api_url, self.creds.tenant, self.creds.username
            ),
        })
    }

    async fn lists(&self) -> Result<PsaLists, PsaError> {
        let mut cached = self.lists.lock().await;
        if let Some((l, at)) = cached.as_ref()
            && at.elapsed() < LISTS_FOR
        {
            return Ok(l.clone());
        }
        let lists = self.read_lists().await?;
        *cached = Some((lists.clone(), Instant::now()));
        Ok(lists)
    }

    async fn companies(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<CompanyPage, PsaError> {
        let page = page_of_cursor(cursor)?;
        let size = self.opts.page_size.max(1);
        let mut q = vec![
            ("Filter.IsActive", "true".to_string()),
            ("PageSize", size.to_string()),
            ("PageNumber", page.to_string()),
        ];
        if let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) {
            q.push(("Filter.AccountName", s.to_string()));
        }
        let v = self
            .get("/v2/crm/accounts/summary", "/v2/crm/accounts/summary", &q)
            .await?;
        let items = records(&v);
        let companies: Vec<Company> = items
            .iter()
            .filter_map(|a| {
                Some(Company {
                    id: text_of(a, "id")?,
                    name: text_of(a, "accountName").unwrap_or_default(),
                    active: bool_of(a, "isActive").unwrap_or(true),
                })
            })
            .collect();
        let total = field(&v, "totalRecords").and_then(Value::as_u64);
        let next = has_next(page, size, items.len(), total).then(|| cursor_of(page + 1));
        Ok(CompanyPage { companies, next })
    }

    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError> {
        let (account, _) = parse_company(company_id)?;
        self.search_contacts(account, None).await
    }

    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError> {
        let (account, _) = parse_company(company_id)?;
        let wanted = email.trim().to_lowercase();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .search_contacts(account, Some(email.trim()))
            .await?
            .into_iter()
            .filter(|c| c.email.as_deref().map(|e| e.trim().to_lowercase()) == Some(wanted.clone()))
            .collect())
    }

    async fn primary_contact(&self, _company_id: &str) -> Result<Option<String>, PsaError> {
        // Kaseya BMS names no primary contact of an account.
        Ok(None)
    }

    fn tickets_need_contact(&self) -> bool {
        true
    }

    async fn create_ticket(&self, t: &NewTicket) -> Result<TicketRef, PsaError> {
        let body = self.ticket_body(t).await?;
        let v = self
            .call(
                Method::POST,
                "/v2/servicedesk/tickets",
                "/v2/servicedesk/tickets",
                &[],
                Some(&body),
                true,
            )
            .await?;
        let result = field(&v, "result").cloned().unwrap_or_default();
        let id = text_of(&result, "id").ok_or_else(|| PsaError::Transient {
            retry_after: None,
            outcome_unknown: true,
            message: "Kaseya BMS answered a ticket create without an id".into(),
        })?;
        Ok(TicketRef {
            id,
            number: text_of(&result, "ticketNumber"),
        })
    }

    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError> {
        let reference = reference.trim();
        if reference.is_empty() {
            return Ok(None);
        }
        let v = self
            .get(
                "/v2/servicedesk/tickets",
                "/v2/servicedesk/tickets",
                &[
                    ("Filter.Details", format!("[{reference}]")),
                    ("PageSize", "50".to_string()),
                    ("PageNumber", "1".to_string()),
                ],
            )
            .await?;
        let mark = format!("{REFERENCE_MARK} [{reference}]");
        Ok(records(&v)
            .iter()
            .filter(|t| text_of(t, "details").is_some_and(|d| d.contains(&mark)))
            .filter_map(|t| Some((field(t, "id")?.as_i64()?, t)))
            .min_by_key(|(id, _)| *id)
            .map(|(id, t)| TicketRef {
                id: id.to_string(),
                number: text_of(t, "ticketNumber"),
            }))
    }

    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError> {
        self.post_note(ticket_id, note, None).await
    }

    async fn find_note_by_reference(
        &self,
        ticket_id: &str,
        reference: &str,
    ) -> Result<bool, PsaError> {
        let id = num("ticket", ticket_id)?;
        let notes = self
            .get_all(
                "/v2/servicedesk/tickets/{ticketId}/notes",
                &format!("/v2/servicedesk/tickets/{id}/notes"),
                &[],
            )
            .await?;
        Ok(notes
            .iter()
            .any(|n| text_of(n, "details").is_some_and(|d| contains_reference(&d, reference))))
    }

    async fn close_ticket(
        &self,
        ticket_id: &str,
        close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let id = num("ticket", ticket_id)?;
        // The note first: a resolve that fails after it leaves the reason on an open ticket,
        // which a retry then closes; the reverse would leave a closed ticket without reason.
        self.add_note(ticket_id, note).await?;
        let comment = if note.title.trim().is_empty() {
            "Closed by PSA Bridge".to_string()
        } else {
            truncate(note.title.trim(), 250)
        };
        let mut body = json!({
            "Comment": comment,
            "IsInternal": true,
            "IsPublishToKnowledgeBase": false,
        });
        // Without a status, BMS resolves with the tenant's own completed status.
        if let Some(s) = close_status.filter(|s| !s.trim().is_empty()) {
            body["StatusId"] = json!(num("close status", s)?);
        }
        self.call(
            Method::POST,
            "/v2/servicedesk/tickets/{ticketId}/resolve",
            &format!("/v2/servicedesk/tickets/{id}/resolve"),
            &[],
            Some(&body),
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
        let status = match status.filter(|s| !s.trim().is_empty()) {
            Some(s) => s.to_string(),
            None => self.open_status().await?,
        };
        // One call: a note that sets the status (which clears `completedDate`).
        self.post_note(ticket_id, note, Some(num("reopen status", &status)?))
            .await
    }

    async fn contracts(&self, company_id: &str) -> Result<Vec<Contract>, PsaError> {
        let (account, _) = parse_company(company_id)?;
        // A lookup: one unpaged answer per account.
        let v = self
            .get(
                "/v2/finance/contracts/lookup",
                "/v2/finance/contracts/lookup",
                &[
                    ("AccountId", account.to_string()),
                    ("ExcludeExpiredContracts", "false".to_string()),
                ],
            )
            .await?;
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        Ok(records(&v)
            .iter()
            .filter_map(|c| contract_of(c, &today))
            .collect())
    }

    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let closed = self.closed_statuses().await?;
        let mut out = Vec::with_capacity(ids.len());
        for raw in ids {
            let Ok(id) = raw.trim().parse::<i64>() else {
                continue;
            };
            let v = match self
                .get(
                    "/v2/servicedesk/tickets/{ticketId}",
                    &format!("/v2/servicedesk/tickets/{id}"),
                    &[],
                )
                .await
            {
                Ok(v) => v,
                Err(PsaError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(t) = field(&v, "result") else {
                continue;
            };
            let status = text_of(t, "statusId").unwrap_or_default();
            out.push(TicketState {
                closed: field(t, "completedDate").is_some() || closed.contains(&status),
                id: id.to_string(),
                status,
                number: text_of(t, "ticketNumber"),
            });
        }
        Ok(out)
    }

    async fn register_status_webhook(
        &self,
        _url: &str,
        _secret: &str,
    ) -> Result<Option<WebhookRegistration>, PsaError> {
        // BMS v2 offers no ticket webhooks to register through the API: the engine polls.
        Ok(None)
    }

    fn ready_in(&self) -> Duration {
        // The longest wait of any endpoint: a delivery uses several, and one spent budget
        // would hold its worker.
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|b| b.ready_in())
            .max()
            .unwrap_or(Duration::ZERO)
            .max(self.meter.shared_ready_in())
    }

    fn contract_billing(&self) -> Option<&dyn crate::billing::ContractBilling> {
        Some(self)
    }

    fn meter(&self) -> &CallMeter {
        &self.meter
    }

    fn sweep_cost(&self) -> crate::SweepCost {
        // One GET per ticket, against that endpoint's own hourly share.
        crate::SweepCost {
            requests_per_hour: self.opts.requests_per_hour,
            tickets_per_request: 1,
        }
    }
}

/// Every pure reader of a Kaseya BMS answer applied to one: as an error (status and envelope),
/// its message, and, for a JSON envelope, its records as contracts and as the status list a
/// reopen reads. For [`crate::answers`] (fuzzing).
pub(crate) fn read_answer(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", classify(status, headers, body, true)),
        error_message(body),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        out.push(format!("{:?}", classify_envelope(&v, headers, body, false)));
        let list = records(&v);
        for r in &list {
            out.push(format!("{:?}", contract_of(r, "2026-12-05")));
        }
        out.push(format!("{:?}", default_open_status(&list)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn a_reopened_ticket_goes_to_new_else_the_first_open_status() {
        let statuses = json!([
            {"id": 5, "name": "Completed", "statusOrder": 0, "isActive": true},
            {"id": 3, "name": "In Progress", "statusOrder": 2, "isActive": true},
            {"id": 2, "name": "Waiting", "statusOrder": 1, "isActive": false},
            {"id": 1, "name": "New", "statusOrder": 3, "isActive": true},
        ]);
        let all = statuses.as_array().unwrap().clone();
        assert_eq!(default_open_status(&all).as_deref(), Some("1"));
        let without_new: Vec<Value> = all.iter().filter(|s| s["id"] != 1).cloned().collect();
        assert_eq!(default_open_status(&without_new).as_deref(), Some("3"));
        assert_eq!(default_open_status(&all[..1]), None);
    }

    #[test]
    fn contracts_are_in_force_when_active_and_not_ended() {
        let today = "2026-11-28";
        let c = |v: Value| contract_of(&v, today).unwrap();
        assert!(c(json!({"Id": 44, "Name": "MSA", "IsActive": true, "EndDate": null})).active);
        assert_eq!(
            c(json!({"id": 44, "name": "MSA", "isActive": true})).name,
            "MSA"
        );
        assert!(!c(json!({"id": 1, "isActive": false})).active);
        assert!(!c(json!({"id": 1, "isActive": true, "endDate": "2026-01-31T00:00:00"})).active);
        assert!(c(json!({"id": 1, "isActive": true, "endDate": "2026-11-28T00:00:00"})).active);
        assert!(contract_of(&json!({"name": "no id"}), today).is_none());
    }

    #[test]
    fn hosts_normalise_to_the_api_host() {
        let n = |s: &str| normalise_base_url(s).unwrap();
        assert_eq!(n("bms.kaseya.com"), "https://api.bms.kaseya.com");
        assert_eq!(
            n("https://bmsemea.kaseya.com/"),
            "https://api.bmsemea.kaseya.com"
        );
        assert_eq!(
            n("http://bmsapac.kaseya.com/MSP/Login.aspx?x=1"),
            "https://api.bmsapac.kaseya.com"
        );
        assert_eq!(n("api.bms.kaseya.com///"), "https://api.bms.kaseya.com");
        assert_eq!(
            n("https://api.bms.kaseya.com/v2/"),
            "https://api.bms.kaseya.com"
        );
        assert_eq!(n("http://127.0.0.1:8089/"), "http://127.0.0.1:8089");
        assert_eq!(
            n("http://127.0.0.1:8089/bms/v2"),
            "http://127.0.0.1:8089/bms"
        );
        assert!(normalise_base_url("ftp://bms.kaseya.com").is_err());
        assert!(normalise_base_url("  ").is_err());
        assert_eq!(
            region_url("EMEA").as_deref(),
            Some("https://api.bmsemea.kaseya.com")
        );
        assert_eq!(region_url("mars"), None);
    }

    #[test]
    fn settings_build_and_name_what_is_wrong() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert("password".to_string(), Secret::new("pw"));
        let http = reqwest::Client::new();
        let ok = from_settings(
            http.clone(),
            &m(json!({"region": "apac", "tenant": "t", "username": "u", "page_size": 5})),
            &secrets,
        );
        assert!(ok.is_ok());
        let err = |v: Value, s: &std::collections::BTreeMap<String, Secret>| {
            from_settings(http.clone(), &m(v), s).err().unwrap()
        };
        assert_eq!(
            err(json!({"tenant": "t", "username": "u"}), &secrets),
            SettingsError::Missing("base_url")
        );
        assert!(matches!(
            err(
                json!({"region": "mars", "tenant": "t", "username": "u"}),
                &secrets
            ),
            SettingsError::Bad {
                field: "region",
                ..
            }
        ));
        assert_eq!(
            err(
                json!({"base_url": "bms.kaseya.com", "username": "u"}),
                &secrets
            ),
            SettingsError::Missing("tenant")
        );
        assert_eq!(
            err(
                json!({"base_url": "bms.kaseya.com", "tenant": "t", "username": "u"}),
                &Default::default()
            ),
            SettingsError::Missing("password")
        );
        assert!(matches!(
            err(
                json!({"base_url": "bms.kaseya.com", "tenant": "t", "username": "u", "source_table": "x/../y"}),
                &secrets
            ),
            SettingsError::Bad {
                field: "source_table",
                ..
            }
        ));
        for (name, _) in SETTINGS {
            assert!(!name.is_empty());
        }
    }

    #[test]
    fn failures_are_classified() {
        let h = HeaderMap::new();
        let env = |code: u16, msg: &str| {
            json!({"success": false, "error": {"code": code, "message": msg, "subErrors": ["The TypeId field is required."]}, "result": null}).to_string()
        };
        let c = |s: u16, b: &str, w: bool| classify(StatusCode::from_u16(s).unwrap(), &h, b, w);
        assert!(
            matches!(c(400, &env(400, "One or more validation errors occurred."), true), PsaError::Invalid(m) if m.contains("TypeId"))
        );
        assert!(matches!(c(401, "", false), PsaError::Auth(_)));
        assert!(matches!(c(403, "", false), PsaError::Auth(m) if m.contains("permission")));
        assert!(
            matches!(c(404, &env(404, "Ticket with id 9 was not found."), false), PsaError::NotFound(m) if m.contains("Ticket"))
        );
        assert!(matches!(
            c(503, "<html>down</html>", true),
            PsaError::Transient {
                outcome_unknown: true,
                ..
            }
        ));
        assert!(matches!(
            c(500, &env(500, "boom"), false),
            PsaError::Transient {
                outcome_unknown: false,
                ..
            }
        ));
        assert!(matches!(
            c(429, &env(429, "slow down"), false),
            PsaError::RateLimited { .. }
        ));
        // success:false answered 200: the envelope's code decides.
        let body = env(400, "Account with id 9 does not exist.");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            matches!(classify_envelope(&v, &h, &body, true), PsaError::Invalid(m) if m.contains("Account with id 9"))
        );
        let body = json!({"success": false, "error": {"message": "no code"}}).to_string();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(matches!(
            classify_envelope(&v, &h, &body, true),
            PsaError::Invalid(_)
        ));
        // An ASP.NET problem document.
        let pd = r#"{"title":"One or more validation errors occurred.","status":400,"errors":{"Title":["The Title field is required."]}}"#;
        assert!(
            matches!(c(400, pd, true), PsaError::Invalid(m) if m.contains("Title: The Title field"))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        h.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(80) && d <= Duration::from_secs(90),
            "{d:?}"
        );
        match classify(StatusCode::TOO_MANY_REQUESTS, &h, "{}", true) {
            PsaError::RateLimited { retry_after, .. } => assert!(retry_after.is_some()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_logins_name_the_credential() {
        assert!(
            matches!(login_refused("Invalid company name: no tenant is named 'x'.", "x", "u"), PsaError::Auth(m) if m.contains("tenant"))
        );
        assert!(
            matches!(login_refused("Invalid username or password.", "x", "u"), PsaError::Auth(m) if m.contains("user name 'u'"))
        );
        assert!(
            matches!(login_refused("MFA code required", "x", "u"), PsaError::Auth(m) if m.contains("MFA"))
        );
    }

    #[test]
    fn cursors_and_pages() {
        assert_eq!(page_of_cursor(None).unwrap(), 1);
        assert_eq!(page_of_cursor(Some(&cursor_of(3))).unwrap(), 3);
        assert!(page_of_cursor(Some("3")).is_err());
        assert!(page_of_cursor(Some("page:0")).is_err());
        assert!(has_next(1, 50, 50, Some(140)));
        assert!(has_next(2, 50, 50, Some(140)));
        assert!(!has_next(3, 50, 40, Some(140)));
        assert!(!has_next(2, 50, 50, Some(100)));
        assert!(has_next(1, 50, 50, None));
        assert!(!has_next(1, 50, 49, None));
        assert!(!has_next(1, 50, 0, Some(500)));
    }

    #[test]
    fn company_ids_name_an_account_and_maybe_a_location() {
        assert_eq!(parse_company("12").unwrap(), (12, None));
        assert_eq!(parse_company(" 12/34").unwrap(), (12, Some(34)));
        assert!(matches!(parse_company("acme"), Err(PsaError::Invalid(_))));
        assert!(
            matches!(parse_company("12/x"), Err(PsaError::Invalid(m)) if m.contains("location"))
        );
    }

    #[test]
    fn vendor_json_is_read_in_any_case() {
        let v = json!({"Success": true, "Result": [{"Id": 3, "Name": "Security", "IsActive": false}], "TotalRecords": 1});
        assert_eq!(bool_of(&v, "success"), Some(true));
        let items = records(&v);
        let item = list_item(&items[0], Some("7")).unwrap();
        assert_eq!(
            item,
            ListItem {
                id: "3".into(),
                label: "Security".into(),
                active: false,
                parent: Some("7".into())
            }
        );
        let c =
            KaseyaBmsConnector::contact_of(&json!({"id": 56, "accountId": 12, "firstName": "Bob",
            "lastName": "Smith", "emailAddress": "bob@acme.test", "isActive": true}))
            .unwrap();
        assert_eq!(
            (c.id.as_str(), c.company_id.as_str(), c.name.as_str()),
            ("56", "12", "Bob Smith")
        );
    }

    #[test]
    fn the_reference_always_fits_in_the_details() {
        let d = details_with_reference(&"x".repeat(10_000), "psb-1-abc", 8000);
        assert!(d.chars().count() <= 8000);
        assert!(d.ends_with("PSA Bridge reference: [psb-1-abc]"));
        assert!(details_with_reference("", "r", 100).contains("(no description)"));
        assert!(closed_sounding("Closed - No Action") && closed_sounding("Completed"));
        assert!(!closed_sounding("In Progress"));
    }
}
