//! PSA connectors: one interface, one implementation per PSA, each written from its vendor's
//! published REST API (never from our simulators' code).
//!
//! The engine sees only [`Connector`]. A connector owns its vendor's wire types, maps them to
//! the small shared types below at its edge, and classifies every failure into a [`PsaError`]
//! whose class drives retries and breakers. Every HTTP request a connector sends is counted in
//! its [`CallMeter`], because PSA calls per delivered event is the product's economy figure.

pub mod answers;
pub mod assets;
pub mod autotask;
pub mod billing;
mod building;
pub mod connectwise;
pub mod halopsa;
mod http;
pub mod kaseya_bms;
pub mod limits;
pub mod meter;
pub mod outbound;

use std::time::Duration;

use async_trait::async_trait;
pub use building::{SettingsError, build, is_location_setting, known_settings, required_settings};
pub use meter::{CallMeter, count_calls};
pub use outbound::{Outbound, OutboundError};
use psabridge_core::settings::TicketDefaults;
use thiserror::Error;

/// A PSA failure, classified by what the caller should do about it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PsaError {
    /// The PSA said "too many requests"; try again no sooner than `retry_after` if given.
    #[error("rate limited by the PSA{}: {message}", fmt_after(.retry_after))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// A failure that may pass (5xx, timeout, connection reset). `outcome_unknown` is true when
    /// the request may have been carried out (we sent it and never heard back): a create must
    /// then look its reference up before trying again.
    #[error("the PSA failed{}: {message}", fmt_after(.retry_after))]
    Transient {
        retry_after: Option<Duration>,
        outcome_unknown: bool,
        message: String,
    },
    /// The credentials are wrong or lack a permission. Retrying will not help.
    #[error("the PSA refused the credentials: {0}")]
    Auth(String),
    /// The PSA rejected what we sent (a required field, a bad picklist value). Not retried.
    #[error("the PSA rejected the request: {0}")]
    Invalid(String),
    /// The thing asked about does not exist (a deleted ticket).
    #[error("not found in the PSA: {0}")]
    NotFound(String),
    /// The host could not be reached or resolved at all (wrong URL, DNS, TLS).
    #[error("the PSA could not be reached: {0}")]
    Unreachable(String),
}

fn fmt_after(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {}s)", d.as_secs()))
        .unwrap_or_default()
}

impl PsaError {
    /// May trying again later succeed?
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PsaError::RateLimited { .. } | PsaError::Transient { .. } | PsaError::Unreachable(_)
        )
    }

    /// The delay the PSA asked for, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PsaError::RateLimited { retry_after, .. } | PsaError::Transient { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Could the request have been carried out although we saw a failure?
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            PsaError::Transient {
                outcome_unknown: true,
                ..
            }
        )
    }

    /// A short class name for logs, metrics and the delivery log.
    pub fn class(&self) -> &'static str {
        match self {
            PsaError::RateLimited { .. } => "rate_limited",
            PsaError::Transient { .. } => "transient",
            PsaError::Auth(_) => "auth",
            PsaError::Invalid(_) => "invalid",
            PsaError::NotFound(_) => "not_found",
            PsaError::Unreachable(_) => "unreachable",
        }
    }
}

/// One value of a PSA list (a queue, a status, …).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListItem {
    pub id: String,
    pub label: String,
    pub active: bool,
    /// For dependent lists (sub-issue types): the parent's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// The lists a ticket needs, keyed by the ticket field names of
/// [`psabridge_core::settings::PsaKind::ticket_fields`] (`queue`, `status`, …), plus
/// `note_type` and `note_publish` where the PSA has them. A dependent list's items name their
/// parent; an item that belongs to several parents appears once per parent.
pub type PsaLists = std::collections::BTreeMap<String, Vec<ListItem>>;

/// A PSA company.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Company {
    pub id: String,
    pub name: String,
    pub active: bool,
}

/// A page of companies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompanyPage {
    pub companies: Vec<Company>,
    /// Opaque cursor for the next page, `None` on the last page.
    pub next: Option<String>,
}

/// A PSA contact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Contact {
    pub id: String,
    pub company_id: String,
    pub name: String,
    pub email: Option<String>,
    pub active: bool,
}

/// A ticket to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub company_id: String,
    pub contact_id: Option<String>,
    pub title: String,
    pub description: String,
    pub fields: TicketDefaults,
    /// Our reference, stored on the ticket (Autotask `externalID`) so that a create whose
    /// outcome we never heard can be found instead of made twice. At most 50 characters.
    pub reference: String,
    /// The PSA contract the ticket is billed against (the client's mapped contract), sent in
    /// the vendor's own field: Autotask `contractID`, HaloPSA `contract_id`, ConnectWise
    /// `agreement`, Kaseya BMS `ContractId`. `None` leaves the PSA's own choice.
    pub contract_id: Option<String>,
    /// The PSA record of the asset the event is about (an asset pushed by PSA Bridge, named
    /// by the event's `data.asset_id`), linked where the PSA's ticket has a field for it
    /// (Autotask `configurationItemID`); `None` links none.
    pub configuration_item_id: Option<String>,
}

/// A PSA contract of a company (ConnectWise calls them agreements), for mapping a client to
/// the contract its tickets carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Contract {
    pub id: String,
    pub name: String,
    /// False when the PSA lists it as inactive, cancelled or expired: still shown, so that a
    /// mapping to a contract that lapsed can be recognised, but not one to choose.
    pub active: bool,
}

/// A ticket as we record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    pub id: String,
    /// The number people read (`T20261122.0001`), when the PSA has one.
    pub number: Option<String>,
}

/// Whether a ticket is still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketState {
    pub id: String,
    pub closed: bool,
    /// The PSA's status id.
    pub status: String,
    /// The number people read, when the PSA has one.
    pub number: Option<String>,
}

/// What reading ticket states costs a connection: the request budget the reads draw from,
/// and how many tickets one request reads. The sweeper keeps its reads within a share of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCost {
    /// Our share of the PSA's requests an hour that the reads count against (for a PSA
    /// limited per endpoint, that endpoint's).
    pub requests_per_hour: u32,
    /// Tickets one [`Connector::ticket_states`] request covers.
    pub tickets_per_request: usize,
}

/// A note to add to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNote {
    pub title: String,
    /// The note's text; it contains `reference`, so that a note whose outcome we never heard
    /// can be found instead of added twice.
    pub text: String,
    pub reference: String,
}

/// What "Connect" learned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionCheck {
    /// Where the API was found (Autotask: the zone's URL).
    pub api_url: String,
    /// A human description (`Autotask zone America East`).
    pub description: String,
}

/// Ticket status pushes the PSA will send us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRegistration {
    /// The PSA's id of the webhook.
    pub id: String,
    /// The value the PSA puts in every callout to identify the webhook (Autotask `Guid`).
    pub guid: Option<String>,
}

/// A ticket change the PSA pushed to us, once its sender is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub ticket_id: String,
    /// Whether the ticket is closed now; `None` when the push does not say.
    pub closed: Option<bool>,
    /// The ticket was deleted.
    pub deleted: bool,
    /// The ticket's number, when the push carries it.
    pub number: Option<String>,
}

/// Why a push was refused.
#[derive(Debug, Error)]
pub enum PushError {
    /// This PSA sends no pushes we read (or not to this route).
    #[error("this PSA sends no ticket pushes here")]
    Unsupported,
    /// The sender could not be authenticated (signature, key location, credentials).
    #[error("the push is not authenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not a payload we can read.
    #[error("the push cannot be read: {0}")]
    Malformed(String),
    /// The PSA failed while we checked the push (fetching a signing key).
    #[error(transparent)]
    Psa(#[from] PsaError),
}

/// The oldest (lowest numeric id, then lexical) of some contact ids: a stable choice.
pub fn oldest_id<I: IntoIterator<Item = String>>(ids: I) -> Option<String> {
    ids.into_iter()
        .min_by_key(|s| (s.parse::<u64>().unwrap_or(u64::MAX), s.clone()))
}

/// The operations the engine needs from any PSA.
///
/// Implementations must be cheap to call concurrently, must not retry on their own beyond a
/// connection that failed before the request was sent (the engine owns retries), and must
/// count every request in their [`CallMeter`].
#[async_trait]
pub trait Connector: Send + Sync {
    /// Validate the credentials and find the API; says precisely what is wrong when it fails.
    async fn check(&self) -> Result<ConnectionCheck, PsaError>;

    /// Read the lists a ticket needs.
    async fn lists(&self) -> Result<PsaLists, PsaError>;

    /// Companies, optionally filtered by a name fragment, a page at a time.
    async fn companies(
        &self,
        search: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<CompanyPage, PsaError>;

    /// Active contacts of all companies, or of one company.
    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError>;

    /// Active contacts of `company_id` whose email is `email` (case-insensitive).
    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError>;

    /// The primary contact of a company as the PSA names it (Autotask `primaryContact`,
    /// HaloPSA the site's main contact, ConnectWise the company's `defaultContact`), for a
    /// ticket of that company whose user is not a contact and whose mapping names none.
    /// `None` when the company has none, or the PSA names no such contact.
    async fn primary_contact(&self, company_id: &str) -> Result<Option<String>, PsaError>;

    /// Whether the PSA refuses a ticket without a contact (Kaseya BMS): then a catch-all or a
    /// mapping must name a contact the PSA would not otherwise name.
    fn tickets_need_contact(&self) -> bool {
        false
    }

    async fn create_ticket(&self, ticket: &NewTicket) -> Result<TicketRef, PsaError>;

    /// Find a ticket by the reference we put on it at creation.
    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError>;

    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError>;

    /// Is there a note on `ticket_id` whose text contains `reference`?
    async fn find_note_by_reference(
        &self,
        ticket_id: &str,
        reference: &str,
    ) -> Result<bool, PsaError>;

    /// Close a ticket with `close_status` (the PSA's own closed status when `None`), leaving
    /// `note` on it to say why.
    async fn close_ticket(
        &self,
        ticket_id: &str,
        close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError>;

    /// Reopen a closed ticket with `status` (the PSA's usual new/open status when `None`),
    /// leaving `note` on it to say why: the mirror image of [`Connector::close_ticket`].
    async fn reopen_ticket(
        &self,
        ticket_id: &str,
        status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError>;

    /// The contracts of a company as the PSA lists them (active and not), every page.
    async fn contracts(&self, company_id: &str) -> Result<Vec<Contract>, PsaError>;

    /// The state of many tickets in as few calls as the PSA allows. Unknown ids are absent.
    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError>;

    /// Ask the PSA to push status changes of tickets to `url`, signed with `secret`.
    /// `Ok(None)` when this PSA or these credentials cannot.
    async fn register_status_webhook(
        &self,
        url: &str,
        secret: &str,
    ) -> Result<Option<WebhookRegistration>, PsaError>;

    /// Authenticate and read a ticket change the PSA pushed to the webhook registered by
    /// [`Connector::register_status_webhook`] with `secret`. `Ok(None)`: authenticated, but
    /// about something other than a ticket's state.
    async fn read_push(
        &self,
        _headers: &reqwest::header::HeaderMap,
        _body: &[u8],
        _secret: &str,
    ) -> Result<Option<Pushed>, PushError> {
        Err(PushError::Unsupported)
    }

    /// How long until this connector may send its next request without exceeding its share
    /// of the PSA's limits. The engine does not claim work for a connection that must wait,
    /// so that a spent budget never holds claims (or workers) while other PSAs could use them.
    fn ready_in(&self) -> Duration;

    /// The request counter of this connector.
    fn meter(&self) -> &CallMeter;

    /// Contract billing, where this connector has it (`None`: usage cannot be synced to this
    /// PSA yet).
    fn contract_billing(&self) -> Option<&dyn billing::ContractBilling> {
        None
    }

    /// Configuration items, where this connector has them (`None`: assets cannot be pushed to
    /// this PSA yet).
    fn asset_sync(&self) -> Option<&dyn assets::AssetSync> {
        None
    }

    /// Where a ticket opens in the PSA's own screens, for links in chat messages: built from
    /// the connection's address without asking the PSA (`None` where the PSA has no such
    /// address, or it is not known yet).
    async fn ticket_url(&self, _ticket_id: &str) -> Option<String> {
        None
    }

    /// What reading ticket states costs (see [`SweepCost`]). Every PSA connector states its
    /// own; the default, for stand-ins in tests, is a generous budget read in large batches.
    fn sweep_cost(&self) -> SweepCost {
        SweepCost {
            requests_per_hour: 10_000,
            tickets_per_request: 500,
        }
    }
}
