//! The Autotask PSA connector, written from Autotask's REST API documentation.
//!
//! - Zone discovery (`zoneInformation?user=`) finds the API's host; the answer is kept for the
//!   connector's life and asked again once if the zone stops answering.
//! - Every call carries `ApiIntegrationCode`, `UserName` and `Secret` (and
//!   `ImpersonationResourceId` on writes when configured).
//! - Queries are `POST <Entity>/query` with a `filter` array; further pages follow Autotask's
//!   `nextPageUrl` (re-POSTing the body, as a POST-started query requires), and only links on
//!   the zone's own host are followed. The company list our API pages through uses an id
//!   cursor instead (`id gt <last id>`), which stays valid however long a user waits.
//! - Lists (queues, statuses, …) are picklists of `Tickets/entityInformation/fields`.
//! - Every request first takes a token of our hourly share and one of the three slots of its
//!   entity ([`crate::limits`]), and is counted in the [`CallMeter`].
//! - A create carries our reference in `externalID`; a ticket's number is not read back after
//!   a create (that would double the calls); the sweep and webhooks bring it.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use psabridge_core::render::truncate;
use psabridge_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};

use crate::building::{SettingsError, count, id_list, int, required, secret, string};
// Autotask's own reading of a `Retry-After` date already past is "none given".
use crate::http::{
    contains_reference, id_number, lost_answer, plain_message,
    retry_after_unless_past as retry_after, root_cause, text, unanswered,
};
use crate::limits::{EndpointSlots, TokenBucket};
use crate::{
    CallMeter, Company, CompanyPage, ConnectionCheck, Connector, Contact, Contract, ListItem,
    NewNote, NewTicket, PsaError, PsaLists, TicketRef, TicketState, WebhookRegistration,
};

mod assets;
mod billing;

/// What an Autotask API user gives us.
#[derive(Debug, Clone)]
pub struct AutotaskCredentials {
    pub username: String,
    pub secret: Secret,
    /// The API tracking identifier of the integration.
    pub integration_code: Secret,
    /// Where zone discovery is asked; normally `https://webservices.autotask.net`.
    pub zone_discovery_url: String,
    /// A resource to act as on writes (optional).
    pub impersonation_resource_id: Option<i64>,
}

/// How the connector behaves.
#[derive(Debug, Clone)]
pub struct AutotaskOptions {
    /// Ticket status ids that count as closed (5 = Complete is a system status).
    pub closed_statuses: Vec<String>,
    /// Note type and publish values; read from the TicketNotes picklists when unset.
    pub note_type: Option<String>,
    pub note_publish: Option<String>,
    /// The TicketWebhookFields `fieldID` of the ticket's status. The public documentation does
    /// not list field ids, so this is configurable.
    pub status_webhook_field_id: i64,
    pub request_timeout: Duration,
    /// Our share of the database's 10,000 requests an hour.
    pub requests_per_hour: u32,
    /// Requests in flight per entity (Autotask allows three per integration code).
    pub threads_per_endpoint: u32,
    /// Due date of new tickets, from now (many tenants require one).
    pub due_in: Duration,
    /// Records per query page (at most 500).
    pub page_size: u32,
    /// The Product configuration items are created as (Autotask requires one); without it,
    /// assets are not pushed.
    pub ci_product_id: Option<i64>,
}

impl Default for AutotaskOptions {
    fn default() -> Self {
        AutotaskOptions {
            closed_statuses: vec!["5".into()],
            note_type: None,
            note_publish: None,
            status_webhook_field_id: 13,
            request_timeout: Duration::from_secs(20),
            requests_per_hour: 5000,
            threads_per_endpoint: 3,
            due_in: Duration::from_secs(24 * 3600),
            page_size: 100,
            ci_product_id: None,
        }
    }
}

/// The Autotask settings a connection may carry, with their meaning (for API validation).
pub const SETTINGS: &[(&str, &str)] = &[
    ("username", "the API user's user name (required)"),
    (
        "zone_discovery_url",
        "where zone discovery is asked (default https://webservices.autotask.net)",
    ),
    (
        "impersonation_resource_id",
        "resource to act as on writes (optional)",
    ),
    (
        "requests_per_hour",
        "our share of the database's 10,000 requests an hour (default 5000)",
    ),
    (
        "closed_statuses",
        "status ids that count as closed (default [\"5\"], Complete)",
    ),
    (
        "status_webhook_field_id",
        "the webhook field id of Tickets.status",
    ),
    (
        "page_size",
        "records per query page (default 100, at most 500)",
    ),
    (
        "ci_product_id",
        "the Product assets become configuration items as (needed to push assets)",
    ),
];

/// The settings a connection cannot do without (the API asks for each by name; the builder
/// refuses a connection that lacks one).
pub const REQUIRED: &[&str] = &["username"];

/// The Autotask secret fields.
pub const SECRETS: &[&str] = &["secret", "integration_code"];

/// Build an Autotask connector from a connection's settings and secrets.
pub fn from_settings(
    http: reqwest::Client,
    s: &serde_json::Map<String, Value>,
    secrets: &std::collections::BTreeMap<String, Secret>,
) -> Result<std::sync::Arc<dyn Connector>, SettingsError> {
    let credentials = AutotaskCredentials {
        username: required(s, "username")?,
        secret: secret(secrets, "secret")?,
        integration_code: secret(secrets, "integration_code")?,
        zone_discovery_url: string(s, "zone_discovery_url")?
            .unwrap_or_else(|| "https://webservices.autotask.net".to_string()),
        impersonation_resource_id: int(s, "impersonation_resource_id")?,
    };
    let mut options = AutotaskOptions::default();
    if let Some(n) = count(s, "requests_per_hour")? {
        options.requests_per_hour = n;
    }
    if let Some(n) = int(s, "status_webhook_field_id")? {
        options.status_webhook_field_id = n;
    }
    if let Some(v) = id_list(s, "closed_statuses")? {
        options.closed_statuses = v;
    }
    if let Some(n) = count(s, "page_size")? {
        options.page_size = n.min(MAX_PAGE as u32);
    }
    options.ci_product_id = int(s, "ci_product_id")?;
    Ok(std::sync::Arc::new(AutotaskConnector::new(
        http,
        credentials,
        options,
    )))
}

/// How long the picklists stay cached.
const LISTS_FOR: Duration = Duration::from_secs(6 * 3600);
/// Autotask answers at most 500 records a page and takes at most 500 values in `in`.
const MAX_PAGE: usize = 500;

/// Where a ticket opens in Autotask's web screens: the documented "execute command" address
/// (`OpenTicketDetail`) on the zone's web host, `wwN.autotask.net` beside the API's
/// `webservicesN.autotask.net` (any other host, e.g. a simulator, is kept as it is).
pub fn ticket_page(zone_api_url: &str, ticket_id: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(zone_api_url).ok()?;
    if let Some(n) = url
        .host_str()
        .and_then(|h| h.strip_prefix("webservices"))
        .and_then(|h| h.strip_suffix(".autotask.net"))
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
    {
        url.set_host(Some(&format!("ww{n}.autotask.net"))).ok()?;
    }
    url.set_path("/Autotask/AutotaskExtend/ExecuteCommand.aspx");
    url.query_pairs_mut()
        .clear()
        .append_pair("Code", "OpenTicketDetail")
        .append_pair("TicketID", ticket_id);
    Some(url.to_string())
}

/// The Autotask connector.
pub struct AutotaskConnector {
    http: reqwest::Client,
    creds: AutotaskCredentials,
    opts: AutotaskOptions,
    /// The zone's API URL (`https://webservicesN.autotask.net/ATServicesRest/`).
    zone: RwLock<Option<String>>,
    lists: Mutex<Option<(PsaLists, Instant)>>,
    /// Note type and publish values, read once (one call) when not configured.
    note_defaults: Mutex<Option<(String, String)>>,
    bucket: TokenBucket,
    slots: EndpointSlots,
    meter: CallMeter,
}

/// Ticket fields as Autotask names them, for our `TicketDefaults` field names.
const TICKET_PICKLISTS: [(&str, &str); 7] = [
    ("queueID", "queue"),
    ("status", "status"),
    ("priority", "priority"),
    ("issueType", "issue_type"),
    ("subIssueType", "sub_issue_type"),
    ("source", "source"),
    ("ticketType", "ticket_type"),
];

/// An id as the JSON number Autotask expects (ours are strings).
fn num(field: &str, id: &str) -> Result<Value, PsaError> {
    id_number(field, id, "an Autotask").map(Value::from)
}

/// The messages of an Autotask error body (`{"errors":["…"]}`), or the raw text.
fn error_messages(body: &str) -> String {
    crate::http::excerpt(&error_messages_of(body))
}

fn error_messages_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            if let Some(list) = v.get("errors").and_then(Value::as_array) {
                list.iter()
                    .map(|e| {
                        text(e)
                            .or_else(|| e.get("message").and_then(text))
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            } else if let Some(m) = v.get("Message").and_then(Value::as_str) {
                m.to_string()
            } else {
                crate::http::undocumented_json(body)
            }
        }
        Err(_) => plain_message(body, ""),
    }
}

/// Classify an HTTP answer that is not 200. `write` is true when the request may have changed
/// something in Autotask (so a lost answer leaves the outcome unknown).
fn classify(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    write: bool,
) -> PsaError {
    let msg = error_messages(body);
    let lower = msg.to_lowercase();
    let is_json = serde_json::from_str::<Value>(body).is_ok();
    if lower.contains("itgenatr005")
        || lower.contains("thread threshold")
        || lower.contains("threshold") && status == StatusCode::TOO_MANY_REQUESTS
    {
        return PsaError::RateLimited {
            retry_after: retry_after(headers).or(Some(Duration::from_secs(1))),
            message: msg,
        };
    }
    if lower.contains("integrationcode is invalid") {
        return PsaError::Auth(
            "Autotask says the integration code (API tracking identifier) is invalid — check it"
                .into(),
        );
    }
    if lower.contains("adequate permission") || status == StatusCode::FORBIDDEN {
        return PsaError::Auth(format!(
            "the Autotask API user lacks a permission this needs (security level API User (system)): {msg}"
        ));
    }
    match status {
        StatusCode::UNAUTHORIZED => PsaError::Auth(
            "Autotask refused the user name or secret (401) — check the API user's credentials"
                .into(),
        ),
        StatusCode::TOO_MANY_REQUESTS => PsaError::RateLimited {
            retry_after: retry_after(headers),
            message: msg,
        },
        StatusCode::NOT_FOUND => PsaError::NotFound(msg),
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => PsaError::Invalid(msg),
        s if s.is_server_error() && is_json && s == StatusCode::INTERNAL_SERVER_ERROR => {
            // Autotask reports validation and business errors as 500 with an errors body: the
            // request was refused and nothing was made. Other 500s with a body are failures of
            // the service: also nothing made, but worth another try.
            if lower.contains("does not reference an existing entity") && lower.contains("ticket") {
                PsaError::NotFound(msg)
            } else if is_validation(&lower) {
                PsaError::Invalid(msg)
            } else {
                PsaError::Transient {
                    retry_after: retry_after(headers),
                    outcome_unknown: false,
                    message: format!("Autotask answered 500: {msg}"),
                }
            }
        }
        s if s.is_server_error() => PsaError::Transient {
            retry_after: retry_after(headers),
            outcome_unknown: write,
            message: format!("Autotask answered {s}: {msg}"),
        },
        s => PsaError::Invalid(format!("Autotask answered {s}: {msg}")),
    }
}

/// Does an Autotask error message say that what we sent is wrong (rather than that the
/// service failed)?
fn is_validation(lower: &str) -> bool {
    [
        "is required",
        "does not reference",
        "invalid",
        "unexpected character",
        "exceeds",
        "must ",
        "not a valid",
        "unable to find",
        "not queryable",
        "inactive",
        "does not belong",
        "already exists",
        "no matching records",
        "when assigning",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

impl AutotaskConnector {
    pub fn new(
        http: reqwest::Client,
        credentials: AutotaskCredentials,
        options: AutotaskOptions,
    ) -> Self {
        AutotaskConnector {
            http,
            bucket: TokenBucket::per_hour(options.requests_per_hour),
            slots: EndpointSlots::new(options.threads_per_endpoint),
            creds: credentials,
            opts: options,
            zone: RwLock::new(None),
            lists: Mutex::new(None),
            note_defaults: Mutex::new(None),
            meter: CallMeter::new(),
        }
    }

    /// Forget cached picklists (after an "unknown value" error, or on demand).
    pub async fn flush_lists(&self) {
        *self.lists.lock().await = None;
    }

    fn discovery_url(&self) -> String {
        format!(
            "{}/atservicesrest/v1.0/zoneInformation",
            self.creds.zone_discovery_url.trim_end_matches('/')
        )
    }

    /// The zone's API URL, discovering it on first use.
    async fn zone(&self) -> Result<String, PsaError> {
        if let Some(z) = self.zone.read().await.clone() {
            return Ok(z);
        }
        let mut slot = self.zone.write().await;
        if let Some(z) = slot.clone() {
            return Ok(z);
        }
        let mut metered = self.meter.request("GET", "zoneInformation");
        let url = self.discovery_url();
        let resp = self
            .http
            .get(&url)
            .query(&[("user", self.creds.username.as_str())])
            .timeout(self.opts.request_timeout)
            .send()
            .await
            .map_err(|e| {
                metered.failed(&e);
                PsaError::Unreachable(format!(
                    "zone discovery at {}: {}",
                    self.creds.zone_discovery_url,
                    root_cause(&e)
                ))
            })?;
        let status = resp.status();
        metered.answered(status.as_u16());
        drop(metered);
        let body = resp.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            let msg = error_messages(&body);
            if msg
                .to_lowercase()
                .contains("zone information could not be determined")
                || status == StatusCode::INTERNAL_SERVER_ERROR
            {
                return Err(PsaError::Auth(format!(
                    "Autotask knows no API user '{}' (zone discovery found no zone) — check the user name",
                    self.creds.username
                )));
            }
            return Err(PsaError::Unreachable(format!(
                "zone discovery answered {status}: {msg}"
            )));
        }
        let v: Value = serde_json::from_str(&body).map_err(|_| {
            PsaError::Unreachable(format!("zone discovery at {url} did not answer JSON"))
        })?;
        let mut zone = v
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| PsaError::Unreachable("zone discovery answered without a url".into()))?
            .to_string();
        if !zone.ends_with('/') {
            zone.push('/');
        }
        if let Err(why) = zone_may_be_called(&url, &zone) {
            return Err(PsaError::Unreachable(format!(
                "zone discovery at {}: {why}",
                self.creds.zone_discovery_url
            )));
        }
        *slot = Some(zone.clone());
        Ok(zone)
    }

    /// One Autotask call. `entity` names the thread-limit bucket; `path` is below `V1.0/`.
    async fn call(
        &self,
        method: Method,
        entity: &str,
        path: &str,
        body: Option<&Value>,
        write: bool,
    ) -> Result<Value, PsaError> {
        let zone = self.zone().await?;
        self.bucket.acquire().await;
        self.meter
            .admit(
                "",
                self.opts.requests_per_hour,
                std::time::Duration::from_secs(3600),
            )
            .await;
        let _slot = self.slots.acquire(entity).await;
        let mut metered = self.meter.request(method.as_str(), path);
        // `path` is below the zone's `V1.0/`, or an absolute page link Autotask gave us, which
        // must point at the zone: credentials never go to a host the answer names.
        let url = if path.starts_with("https://") || path.starts_with("http://") {
            if !path.starts_with(origin(&zone)) {
                return Err(PsaError::Invalid(format!(
                    "Autotask gave a page link to another host: {path}"
                )));
            }
            path.to_string()
        } else {
            format!("{zone}V1.0/{path}")
        };
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("ApiIntegrationCode", self.creds.integration_code.expose())
            .header("UserName", &self.creds.username)
            .header("Secret", self.creds.secret.expose())
            .timeout(self.opts.request_timeout);
        if write && let Some(r) = self.creds.impersonation_resource_id {
            req = req.header("ImpersonationResourceId", r.to_string());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metered.failed(&e);
                tracing::debug!(entity, %method, error = %root_cause(&e), "Autotask request failed");
                if e.is_connect() {
                    // Nothing reached Autotask. The zone may have moved: discover again next time.
                    *self.zone.write().await = None;
                }
                return Err(unanswered(&e, &zone, entity, write, "timed out calling"));
            }
        };
        let status = resp.status();
        metered.answered(status.as_u16());
        let headers = resp.headers().clone();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Err(lost_answer(&e, entity, write)),
        };
        drop(metered);
        tracing::debug!(entity, %method, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "Autotask");
        if status != StatusCode::OK {
            return Err(classify(status, &headers, &text, write));
        }
        serde_json::from_str(&text).map_err(|_| PsaError::Transient {
            retry_after: None,
            outcome_unknown: write,
            message: format!("Autotask answered 200 without JSON for {entity}"),
        })
    }

    /// Every record of a query, page after page by id (`id gt last`), at most `limit`.
    /// Every record of a query (at most `limit`), following Autotask's `nextPageUrl` links.
    /// A query that began as a POST is continued by POSTing its body to each link.
    async fn query_all(
        &self,
        entity: &str,
        filter: Vec<Value>,
        include: &[&str],
        limit: usize,
    ) -> Result<Vec<Value>, PsaError> {
        let body = json!({"filter": filter, "MaxRecords": limit.clamp(1, MAX_PAGE), "IncludeFields": include});
        let mut page = self
            .call(
                Method::POST,
                entity,
                &format!("{entity}/query"),
                Some(&body),
                false,
            )
            .await?;
        let mut out = Vec::new();
        loop {
            out.extend(items_of(&page));
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            let next = page
                .get("pageDetails")
                .and_then(|d| d.get("nextPageUrl"))
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_string);
            match next {
                Some(url) => {
                    page = self
                        .call(Method::POST, entity, &url, Some(&body), false)
                        .await?
                }
                None => return Ok(out),
            }
        }
    }

    async fn picklists(&self, entity: &str, wanted: &[(&str, &str)]) -> Result<PsaLists, PsaError> {
        let v = self
            .call(
                Method::GET,
                entity,
                &format!("{entity}/entityInformation/fields"),
                None,
                false,
            )
            .await?;
        let mut lists = PsaLists::new();
        for f in v
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = f.get("name").and_then(Value::as_str) else {
                continue;
            };
            let Some((_, ours)) = wanted
                .iter()
                .find(|(theirs, _)| theirs.eq_ignore_ascii_case(name))
            else {
                continue;
            };
            let items = f
                .get("picklistValues")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some(ListItem {
                        id: p.get("value").and_then(text)?,
                        label: p
                            .get("label")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        active: p.get("isActive").and_then(Value::as_bool).unwrap_or(true),
                        parent: p
                            .get("parentValue")
                            .and_then(text)
                            .filter(|s| !s.is_empty()),
                    })
                })
                .collect();
            lists.insert(ours.to_string(), items);
        }
        Ok(lists)
    }

    /// The note type and publish values to use.
    async fn note_defaults(&self) -> Result<(String, String), PsaError> {
        if let (Some(t), Some(p)) = (&self.opts.note_type, &self.opts.note_publish) {
            return Ok((t.clone(), p.clone()));
        }
        let mut cached = self.note_defaults.lock().await;
        if let Some(d) = cached.as_ref() {
            return Ok(d.clone());
        }
        let known = self.lists.lock().await.as_ref().map(|(l, _)| l.clone());
        let lists = match known {
            Some(l) => l,
            None => {
                self.picklists(
                    "TicketNotes",
                    &[("noteType", "note_type"), ("publish", "note_publish")],
                )
                .await?
            }
        };
        let first_active = |key: &str, prefer: &str| {
            let items = lists.get(key).map(Vec::as_slice).unwrap_or_default();
            items
                .iter()
                .filter(|i| i.active)
                .find(|i| i.label.to_lowercase().contains(prefer))
                .or_else(|| items.iter().find(|i| i.active))
                .map(|i| i.id.clone())
                .unwrap_or_else(|| "1".to_string())
        };
        let defaults = (
            self.opts
                .note_type
                .clone()
                .unwrap_or_else(|| first_active("note_type", "detail")),
            self.opts
                .note_publish
                .clone()
                .unwrap_or_else(|| first_active("note_publish", "all autotask users")),
        );
        *cached = Some(defaults.clone());
        Ok(defaults)
    }

    fn contact_of(v: &Value) -> Option<Contact> {
        let name = format!(
            "{} {}",
            v.get("firstName")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            v.get("lastName")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        Some(Contact {
            id: v.get("id").and_then(text)?,
            company_id: v.get("companyID").and_then(text).unwrap_or_default(),
            name: name.trim().to_string(),
            email: v
                .get("emailAddress")
                .and_then(Value::as_str)
                .map(str::to_string),
            active: v
                .get("isActive")
                .map(|a| a == &json!(1) || a == &json!(true))
                .unwrap_or(true),
        })
    }
}

/// May the zone URL an answer of zone discovery named be called with the connection's
/// secrets? Autotask's zones are https names (checked by the outbound resolver when they are
/// called); a zone given as an address must be the discovery host itself (addresses skip the
/// resolver), and it never drops to http from https.
fn zone_may_be_called(discovery: &str, zone: &str) -> Result<(), String> {
    let (Ok(d), Ok(z)) = (url::Url::parse(discovery), url::Url::parse(zone)) else {
        return Err("the zone it named is not a URL".into());
    };
    if z.scheme() != "https" && z.scheme() != d.scheme() {
        return Err(format!("the zone it named is not https but {}", z.scheme()));
    }
    let is_address = matches!(z.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
    if is_address
        && (z.host() != d.host() || z.port_or_known_default() != d.port_or_known_default())
    {
        return Err("the zone it named is an address other than the discovery host".into());
    }
    Ok(())
}

/// `scheme://host:port/` of a URL, to check that page links stay on the zone's host.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i + 1],
        None => url,
    }
}

/// Autotask's system status "New" (id 1), where a reopened ticket goes unless told otherwise.
const STATUS_NEW: &str = "1";

/// Is an Autotask contract in force on `today` (`YYYY-MM-DD`)? Its `status` must be 1 (Active)
/// and its `endDate`, when it has one, not before today: Autotask leaves a lapsed contract
/// Active until someone changes it, but no ticket should be billed to it.
fn contract_in_force(contract: &Value, today: &str) -> bool {
    let active = contract
        .get("status")
        .and_then(text)
        .is_some_and(|s| s == "1");
    let ended = contract
        .get("endDate")
        .and_then(Value::as_str)
        .and_then(|d| d.get(..10))
        .is_some_and(|end| end < today);
    active && !ended
}

/// The records of a query answer.
fn items_of(answer: &Value) -> Vec<Value> {
    answer
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

const CONTACT_FIELDS: &[&str] = &[
    "id",
    "companyID",
    "firstName",
    "lastName",
    "emailAddress",
    "isActive",
];

#[async_trait]
impl Connector for AutotaskConnector {
    async fn ticket_url(&self, ticket_id: &str) -> Option<String> {
        ticket_page(&self.zone().await.ok()?, ticket_id)
    }

    async fn check(&self) -> Result<ConnectionCheck, PsaError> {
        *self.zone.write().await = None;
        let zone = self.zone().await?;
        // A cheap authenticated read proves the secret and the integration code.
        self.call(
            Method::GET,
            "Companies",
            "Companies/entityInformation",
            None,
            false,
        )
        .await?;
        Ok(ConnectionCheck {
            api_url: zone.clone(),
            description: format!("Autotask API at {zone} as {}", self.creds.username),
        })
    }

    async fn lists(&self) -> Result<PsaLists, PsaError> {
        let mut cached = self.lists.lock().await;
        if let Some((l, at)) = cached.as_ref()
            && at.elapsed() < LISTS_FOR
        {
            return Ok(l.clone());
        }
        let mut lists = self.picklists("Tickets", &TICKET_PICKLISTS).await?;
        lists.extend(
            self.picklists(
                "TicketNotes",
                &[("noteType", "note_type"), ("publish", "note_publish")],
            )
            .await?,
        );
        *cached = Some((lists.clone(), Instant::now()));
        Ok(lists)
    }

    async fn companies(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<CompanyPage, PsaError> {
        let mut filter = vec![json!({"op": "eq", "field": "isActive", "value": true})];
        if let Some(s) = search.map(str::trim).filter(|s| !s.is_empty()) {
            filter.push(json!({"op": "contains", "field": "companyName", "value": s}));
        }
        if let Some(c) = cursor {
            let last: i64 = c
                .parse()
                .map_err(|_| PsaError::Invalid(format!("cursor '{c}' is not one this API gave")))?;
            filter.push(json!({"op": "gt", "field": "id", "value": last}));
        }
        let page = self.opts.page_size.clamp(1, MAX_PAGE as u32);
        let body = json!({"filter": filter, "MaxRecords": page, "IncludeFields": ["id", "companyName", "isActive"]});
        let v = self
            .call(
                Method::POST,
                "Companies",
                "Companies/query",
                Some(&body),
                false,
            )
            .await?;
        let items = items_of(&v);
        let companies: Vec<Company> = items
            .iter()
            .filter_map(|c| {
                Some(Company {
                    id: c.get("id").and_then(text)?,
                    name: c
                        .get("companyName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    active: c.get("isActive").and_then(Value::as_bool).unwrap_or(true),
                })
            })
            .collect();
        let next = (companies.len() as u32 == page)
            .then(|| {
                items
                    .iter()
                    .filter_map(|i| i.get("id").and_then(Value::as_i64))
                    .max()
            })
            .flatten()
            .map(|id| id.to_string());
        Ok(CompanyPage { companies, next })
    }

    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError> {
        let filter = vec![
            json!({"op": "eq", "field": "companyID", "value": num("company", company_id)?}),
            json!({"op": "eq", "field": "isActive", "value": 1}),
        ];
        Ok(self
            .query_all("Contacts", filter, CONTACT_FIELDS, 5000)
            .await?
            .iter()
            .filter_map(Self::contact_of)
            .collect())
    }

    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError> {
        let filter = vec![
            json!({"op": "eq", "field": "companyID", "value": num("company", company_id)?}),
            json!({"op": "eq", "field": "isActive", "value": 1}),
            json!({"op": "eq", "field": "emailAddress", "value": email}),
        ];
        let wanted = email.to_lowercase();
        Ok(self
            .query_all("Contacts", filter, CONTACT_FIELDS, MAX_PAGE)
            .await?
            .iter()
            .filter_map(Self::contact_of)
            .filter(|c| {
                c.active && c.email.as_deref().map(str::to_lowercase) == Some(wanted.clone())
            })
            .collect())
    }

    async fn primary_contact(&self, company_id: &str) -> Result<Option<String>, PsaError> {
        let filter = vec![
            json!({"op": "eq", "field": "companyID", "value": num("company", company_id)?}),
            json!({"op": "eq", "field": "isActive", "value": 1}),
            json!({"op": "eq", "field": "primaryContact", "value": true}),
        ];
        Ok(crate::oldest_id(
            self.query_all("Contacts", filter, &["id"], MAX_PAGE)
                .await?
                .iter()
                .filter_map(|c| c.get("id").and_then(text)),
        ))
    }

    async fn create_ticket(&self, t: &NewTicket) -> Result<TicketRef, PsaError> {
        let due =
            chrono::Utc::now() + chrono::Duration::from_std(self.opts.due_in).unwrap_or_default();
        let mut body = json!({
            "companyID": num("company", &t.company_id)?,
            "title": truncate(&t.title, 255),
            "description": truncate(&t.description, 8000),
            "externalID": truncate(&t.reference, 50),
            "dueDateTime": due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        if let Some(c) = &t.contact_id {
            body["contactID"] = num("contact", c)?;
        }
        if let Some(c) = &t.contract_id {
            body["contractID"] = num("contract", c)?;
        }
        if let Some(ci) = &t.configuration_item_id {
            body["configurationItemID"] = num("configuration item", ci)?;
        }
        for (theirs, ours) in TICKET_PICKLISTS {
            if let Some(v) = t.fields.get(ours) {
                body[theirs] = num(ours, v)?;
            }
        }
        let v = self
            .call(Method::POST, "Tickets", "Tickets", Some(&body), true)
            .await?;
        let id = v
            .get("itemId")
            .and_then(text)
            .ok_or_else(|| PsaError::Transient {
                retry_after: None,
                outcome_unknown: true,
                message: "Autotask answered a create without an itemId".into(),
            })?;
        Ok(TicketRef { id, number: None })
    }

    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError> {
        let filter =
            vec![json!({"op": "eq", "field": "externalID", "value": truncate(reference, 50)})];
        let items = self
            .query_all("Tickets", filter, &["id", "ticketNumber", "externalID"], 10)
            .await?;
        Ok(items
            .iter()
            .min_by_key(|i| i.get("id").and_then(Value::as_i64))
            .and_then(|i| {
                Some(TicketRef {
                    id: i.get("id").and_then(text)?,
                    number: i
                        .get("ticketNumber")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            }))
    }

    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError> {
        let (note_type, publish) = self.note_defaults().await?;
        let body = json!({
            "ticketID": num("ticket", ticket_id)?,
            "title": truncate(&note.title, 250),
            "description": truncate(&note.text, 32000),
            "noteType": num("note type", &note_type)?,
            "publish": num("publish", &publish)?,
        });
        self.call(
            Method::POST,
            "TicketNotes",
            &format!("Tickets/{ticket_id}/Notes"),
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
        let filter = vec![
            json!({"op": "eq", "field": "ticketID", "value": num("ticket", ticket_id)?}),
            json!({"op": "contains", "field": "description", "value": reference}),
        ];
        // Autotask's `contains` also finds longer references (…:1 in …:12): check each.
        Ok(self
            .query_all("TicketNotes", filter, &["id", "description"], MAX_PAGE)
            .await?
            .iter()
            .any(|n| {
                n.get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| contains_reference(d, reference))
            }))
    }

    async fn close_ticket(
        &self,
        ticket_id: &str,
        close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let status = close_status
            .map(str::to_string)
            .or_else(|| self.opts.closed_statuses.first().cloned())
            .unwrap_or_else(|| "5".into());
        // The note first: a close that fails after it leaves the reason on an open ticket,
        // which a retry then closes; the reverse would leave a closed ticket without reason.
        self.add_note(ticket_id, note).await?;
        let body =
            json!({"id": num("ticket", ticket_id)?, "status": num("close status", &status)?});
        self.call(Method::PATCH, "Tickets", "Tickets", Some(&body), true)
            .await?;
        Ok(())
    }

    async fn reopen_ticket(
        &self,
        ticket_id: &str,
        status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        let status = status.unwrap_or(STATUS_NEW);
        // As for a close: the reason first, then the status.
        self.add_note(ticket_id, note).await?;
        let body =
            json!({"id": num("ticket", ticket_id)?, "status": num("reopen status", status)?});
        self.call(Method::PATCH, "Tickets", "Tickets", Some(&body), true)
            .await?;
        Ok(())
    }

    async fn contracts(&self, company_id: &str) -> Result<Vec<Contract>, PsaError> {
        let filter =
            vec![json!({"op": "eq", "field": "companyID", "value": num("company", company_id)?})];
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        Ok(self
            .query_all(
                "Contracts",
                filter,
                &["id", "contractName", "status", "endDate"],
                10_000,
            )
            .await?
            .iter()
            .filter_map(|c| {
                Some(Contract {
                    id: c.get("id").and_then(text)?,
                    name: c
                        .get("contractName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    active: contract_in_force(c, &today),
                })
            })
            .collect())
    }

    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE) {
            let values: Vec<Value> = chunk
                .iter()
                .map(|i| num("ticket", i))
                .collect::<Result<_, _>>()?;
            let filter = vec![json!({"op": "in", "field": "id", "value": values})];
            for t in self
                .query_all(
                    "Tickets",
                    filter,
                    &["id", "status", "ticketNumber"],
                    MAX_PAGE,
                )
                .await?
            {
                let Some(id) = t.get("id").and_then(text) else {
                    continue;
                };
                let status = t.get("status").and_then(text).unwrap_or_default();
                out.push(TicketState {
                    closed: self.opts.closed_statuses.contains(&status),
                    id,
                    status,
                    number: t
                        .get("ticketNumber")
                        .and_then(Value::as_str)
                        .map(str::to_string),
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
        let body = json!({
            "name": "PSA Bridge ticket status",
            "webhookUrl": url,
            "secretKey": secret,
            "isActive": true,
            "isSubscribedToCreateEvents": false,
            "isSubscribedToUpdateEvents": true,
            "isSubscribedToDeleteEvents": true,
            "sendThresholdExceededNotification": false,
        });
        let created = match self
            .call(
                Method::POST,
                "TicketWebhooks",
                "TicketWebhooks",
                Some(&body),
                true,
            )
            .await
        {
            Ok(v) => v,
            Err(PsaError::Auth(m)) if m.contains("permission") => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = created.get("itemId").and_then(text).ok_or_else(|| {
            PsaError::Invalid("Autotask answered a webhook create without an itemId".into())
        })?;
        let field = json!({
            "webhookID": num("webhook", &id)?,
            "fieldID": self.opts.status_webhook_field_id,
            "isSubscribedField": true,
            "isDisplayAlwaysField": false,
        });
        self.call(
            Method::POST,
            "TicketWebhookFields",
            &format!("TicketWebhooks/{id}/Fields"),
            Some(&field),
            true,
        )
        .await?;
        let read = self
            .call(
                Method::GET,
                "TicketWebhooks",
                &format!("TicketWebhooks/{id}"),
                None,
                false,
            )
            .await?;
        Ok(Some(WebhookRegistration {
            guid: read
                .get("item")
                .and_then(|i| i.get("webhookGUID"))
                .and_then(text),
            id,
        }))
    }

    fn ready_in(&self) -> Duration {
        self.bucket.ready_in().max(self.meter.shared_ready_in())
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
            requests_per_hour: self.opts.requests_per_hour,
            tickets_per_request: MAX_PAGE,
        }
    }
}

/// Every pure reader of an Autotask answer applied to one: its classification as an error and
/// its messages, and, for a JSON body, the records of a query answer read as contracts. For
/// [`crate::answers`] (fuzzing): a malformed answer must come out as words, never a panic.
pub(crate) fn read_answer(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", classify(status, headers, body, true)),
        format!("{:?}", classify(status, headers, body, false)),
        error_messages(body),
    ];
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        for item in items_of(&v) {
            out.push(contract_in_force(&item, "2026-12-05").to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticket_pages_are_on_the_zone_web_host() {
        assert_eq!(
            super::ticket_page("https://webservices5.autotask.net/ATServicesRest/", "42").unwrap(),
            "https://ww5.autotask.net/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail&TicketID=42"
        );
        // Anything else (a simulator, a proxy) keeps its own host and port.
        assert_eq!(
            super::ticket_page("http://127.0.0.1:8081/ATServicesRest/", "7").unwrap(),
            "http://127.0.0.1:8081/Autotask/AutotaskExtend/ExecuteCommand.aspx?Code=OpenTicketDetail&TicketID=7"
        );
    }

    #[test]
    fn a_discovered_zone_never_leads_to_another_address_or_to_http() {
        let d = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation";
        assert!(
            super::zone_may_be_called(d, "https://webservices5.autotask.net/ATServicesRest/")
                .is_ok()
        );
        assert!(super::zone_may_be_called(d, "http://webservices5.autotask.net/").is_err());
        assert!(super::zone_may_be_called(d, "https://10.0.0.1/ATServicesRest/").is_err());
        let local = "http://127.0.0.1:8801/atservicesrest/v1.0/zoneInformation";
        assert!(super::zone_may_be_called(local, "http://127.0.0.1:8801/ATServicesRest/").is_ok());
        assert!(super::zone_may_be_called(local, "http://127.0.0.1:8080/ATServicesRest/").is_err());
    }

    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn errors_are_classified_by_what_autotask_meant() {
        let h = HeaderMap::new();
        let c = |s: u16, b: &str, w: bool| classify(StatusCode::from_u16(s).unwrap(), &h, b, w);
        assert!(matches!(c(401, "", false), PsaError::Auth(_)));
        assert!(
            matches!(c(500, r#"{"errors":["IntegrationCode is invalid."]}"#, false), PsaError::Auth(m) if m.contains("integration code"))
        );
        assert!(matches!(
            c(
                500,
                r#"{"errors":["The logged in Resource does not have the adequate permissions"]}"#,
                true
            ),
            PsaError::Auth(_)
        ));
        assert!(matches!(
            c(
                429,
                r#"{"errors":["Thread Threshold Exceeded ... Itgenatr005"]}"#,
                true
            ),
            PsaError::RateLimited { .. }
        ));
        assert!(
            matches!(c(500, r#"{"errors":["dueDateTime is required.; on record number [0]."]}"#, true), PsaError::Invalid(m) if m.contains("dueDateTime"))
        );
        assert!(matches!(
            c(
                500,
                r#"{"errors":["Value does not reference an existing entity for ticketID"]}"#,
                true
            ),
            PsaError::NotFound(_)
        ));
        assert!(matches!(
            c(500, "<html>IIS</html>", true),
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
        assert!(matches!(c(404, "", false), PsaError::NotFound(_)));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        match classify(StatusCode::TOO_MANY_REQUESTS, &h, "{}", true) {
            PsaError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn page_links_must_stay_on_the_zone() {
        assert_eq!(
            origin("https://webservices3.autotask.net/ATServicesRest/"),
            "https://webservices3.autotask.net/"
        );
        assert_eq!(
            origin("http://127.0.0.1:8081/ATServicesRest/V1.0/x"),
            "http://127.0.0.1:8081/"
        );
        assert!(
            !"https://evil.example/ATServicesRest/"
                .starts_with(origin("https://webservices3.autotask.net/ATServicesRest/"))
        );
    }

    #[test]
    fn a_contract_is_in_force_when_active_and_not_ended() {
        let today = "2026-11-28";
        let c = |status: Value, end: Value| json!({"status": status, "endDate": end});
        assert!(contract_in_force(
            &c(json!(1), json!("2026-12-31T00:00:00Z")),
            today
        ));
        assert!(contract_in_force(
            &c(json!(1), json!("2026-11-28T00:00:00")),
            today
        ));
        assert!(contract_in_force(&c(json!(1), Value::Null), today));
        assert!(!contract_in_force(&c(json!(0), json!("2026-12-31")), today));
        assert!(!contract_in_force(
            &c(json!(1), json!("2026-11-27T23:59:59Z")),
            today
        ));
        assert!(!contract_in_force(&json!({}), today));
    }

    #[test]
    fn ids_must_be_numbers() {
        assert_eq!(num("x", " 42 ").unwrap(), json!(42));
        assert!(matches!(num("queue", "abc"), Err(PsaError::Invalid(m)) if m.contains("queue")));
    }
}
