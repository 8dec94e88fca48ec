//! The pure core of PSA Bridge.
//!
//! Everything here is a decision or a data shape; nothing here performs I/O. The engine asks this
//! crate *what* to do (which connection, company, contact, ticket fields; create, note or skip;
//! when to retry) and then does it. Keeping the decisions free of I/O is what lets them be tested
//! exhaustively, including with property tests.
//!
//! - [`event`]: the vendor's event as accepted by the API, and its validation.
//! - [`catalog`]: the deploying vendor's event types, read from a TOML text.
//! - [`settings`]: the partner's configuration as routing sees it (a snapshot).
//! - [`routing`]: event + settings → which connection, company, group key and ticket fields.
//! - [`plan`]: routed delivery + what we know of its group → create, note or skip.
//! - [`contact`]: which PSA contact a ticket is for.
//! - [`fair`]: how a node's free delivery slots are shared among connections.
//! - [`retry`]: when a failed delivery is tried again, and when it is dead.
//! - [`render`]: ticket titles, descriptions and notes, within each PSA's field limits.
//! - [`channels`]: which chat and webhook channels get an event, their bodies (Teams, Slack,
//!   Standard Webhooks), the webhook signature, and what a receiver's answer means.
//! - [`email`]: which events are emailed, to whom, and the text (from the same templates).
//! - [`assets`]: assets the vendor finds at a client, their validation, and whether a push to
//!   the PSA is needed.
//! - [`billing`]: billing periods, high-water marks of usage, and what a contract sync writes.
//! - [`sweep`]: how many ticket-state reads a sweep may spend (a share of the PSA's budget).
//! - [`import`]: which of a PSA's chosen companies become clients, under which ids.
//! - [`secret`]: a string that never prints.
//! - [`usage`]: usage counts reported by the vendor, and their validation.

pub mod alerts;
pub mod assets;
pub mod billing;
pub mod catalog;
pub mod channels;
pub mod contact;
pub mod email;
pub mod event;
pub mod event_types;
pub mod fair;
pub mod import;
pub mod merge_patch;
pub mod outbound;
pub mod plan;
pub mod render;
pub mod replay;
pub mod retry;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod sweep;
pub mod usage;
