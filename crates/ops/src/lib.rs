//! Configuration changes as operations, below every interface that makes them.
//!
//! Each change is one method of [`Ops`] taking the acting principal ([`Acting`]) and a typed
//! request (a serde struct), and doing, in this order: the permission check (a principal of
//! another partner is told the partner does not exist), validation that names every bad field
//! by its path, checks of what the request names against the partner's things and the PSA's
//! lists (a sub-issue type against its issue type, a company and contact against the PSA), the
//! change in the store, and the audit entry. It answers a typed view ([`views`]) or an
//! [`OpsError`]. The HTTP API (`psabridge-web`) only extracts, calls and shapes the answer; the
//! portal and the command line call the same methods, so they cannot disagree with the API.
//!
//! **Invariant: this crate never depends on axum or `psabridge-web`** (nor on HTTP at all):
//! it speaks in requests, views and errors.
//!
//! - [`connections`]: PSA connections (create and "Connect", change with checked credentials,
//!   delete unless still used), their ticket defaults and catch-all.
//! - [`mappings`]: clients and client → company mappings (company, contact and contract
//!   checked in the PSA, re-fire policy).
//! - [`rules`]: a connection's ticket settings per event type.
//! - [`email`]: email on/off and recipients per event type.
//! - [`assets`]: pushing a client's assets to the PSA (per mapping), the assets and their PSA
//!   records, a push on demand.
//! - [`billing`]: the billing calendar and nightly hour, a connection's contract service, billing
//!   per mapping, starting a sync and reading its report.
//! - [`channels`]: Teams, Slack and signed webhook channels, the event types each gets, test messages.
//! - [`profiles`]: event sets, templates, integration rules and "copy settings".
//! - [`ticket_fields`]: the pure checks of ticket fields against a PSA's fields and lists.

pub mod acting;
pub mod assets;
pub mod audit;
pub mod billing;
pub mod channels;
pub mod connections;
pub mod email;
pub mod error;
pub mod input;
pub mod mappings;
pub mod profiles;
mod psa_checks;
pub use psa_checks::psa_error;
pub mod rules;
pub mod ticket_fields;
pub mod time;
pub mod views;

pub use acting::{Acting, Authority, Principal};
pub use error::{OpsError, OpsResult, Reference};

use std::sync::Arc;

use psabridge_core::catalog::Catalog;
use psabridge_engine::Engine;
use psabridge_identity::Permission;
use psabridge_store::Store;

/// What operations reach: the store, the engine (connectors, breakers, the live catalog) and
/// where PSAs can reach this service.
#[derive(Clone)]
pub struct Ops {
    pub store: Store,
    pub engine: Engine,
    /// Where PSAs can reach this service (for their webhooks); `None` when they cannot.
    pub public_url: Option<String>,
}

impl Ops {
    /// The partner, once `acting` may do `permission` there: the first step of most operations
    /// (a caller outside the partner learns nothing: 404, as for a partner that does not exist).
    pub(crate) async fn partner_for(
        &self,
        acting: &Acting,
        partner: &str,
        permission: Permission,
    ) -> Result<(), OpsError> {
        acting.require(partner, permission)?;
        self.store.partner(partner).await?;
        Ok(())
    }

    /// The partner's connection, once `acting` may do `permission` at the partner.
    pub(crate) async fn connection_for(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        permission: Permission,
    ) -> Result<psabridge_store::config::Connection, OpsError> {
        acting.require(partner, permission)?;
        Ok(self.store.connection(partner, connection).await?)
    }

    pub fn new(engine: Engine, public_url: Option<String>) -> Ops {
        Ops {
            store: engine.store.clone(),
            engine,
            public_url,
        }
    }

    /// The event types settings may name: the active ones.
    pub async fn event_catalog(&self) -> Arc<Catalog> {
        self.engine.catalog.fresh().await.accepting.clone()
    }
}
