//! Storage of PSA Bridge, at the level of domain operations, on SQLite or PostgreSQL.
//!
//! One [`Store`] type serves both engines. The engine is chosen once, from the database URL,
//! and most SQL text is shared: both dialects take `$N` placeholders, `RETURNING` and
//! `ON CONFLICT`, and every time is an integer of milliseconds since the epoch, bound from
//! Rust (never `now()` in SQL), so comparisons mean the same on both. Where the engines
//! differ (claiming work under concurrency, write transactions), the code says so.
//!
//! Why not a trait with two implementations? The operations are the same SQL on both engines
//! nearly everywhere; an enum over two concrete pools keeps one copy of each query while
//! still compiling it against each driver's own types (no `sqlx::Any`, which loses types).
//!
//! Modules:
//! - [`config`]: partners, API tokens, clients, PSA connections, event rules, mappings.
//! - [`ingest`]: durable acceptance of events, batched into group commits.
//! - [`outbox`]: routing accepted events into deliveries; claiming, finishing and retrying them.
//! - [`queues`]: the head of each group's queue, and fair claims across connections.
//! - [`profiles`]: event sets, templates, integration rules, copy settings, references.
//! - [`groups`]: the group → open ticket table.
//! - [`email`]: email settings per partner and event type.
//! - [`channels`]: chat and webhook channels (Teams, Slack, signed webhook), URLs sealed.
//! - [`seal`]: encryption of secrets at rest.
//! - [`identity`]: people who log in, roles per partner, sessions, TOTP and login failures.
//! - [`invitations`]: how a person joins a partner (invited, then accepted by the person).
//! - [`sso`]: each partner's OpenID provider, exemptions, logins in flight, logout tokens seen.
//! - [`scim`]: SCIM tokens and provisioned members; `deprovision`, the identity provider's off switch.

pub mod assets;
pub mod audit;
pub mod billing;
pub mod channels;
pub mod client_pages;
pub mod cluster;
pub mod config;
mod db;
pub mod email;
mod error;
pub mod event_types;
pub mod groups;
pub mod identity;
pub mod ingest;
pub mod invitations;
pub mod outbox;
pub mod overview;
pub mod profiles;
pub mod queues;
pub mod scim;
pub mod seal;
pub mod sso;
pub mod testing;
pub mod usage;

pub use db::{Engine, Store, StoreOptions, Synchronous, redact_url};
pub use error::StoreError;

/// Milliseconds since the Unix epoch: the one time representation in the database.
pub type Millis = i64;

/// `chrono` time → [`Millis`].
pub fn millis(t: chrono::DateTime<chrono::Utc>) -> Millis {
    t.timestamp_millis()
}

/// [`Millis`] → `chrono` time.
pub fn from_millis(ms: Millis) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
