//! Contract billing in a PSA: where the period's usage becomes billed units.
//!
//! A sync reads everything it needs for many clients in a few paged reads
//! ([`ContractBilling::billing_snapshot`]), lets `core::billing::decide` say what differs, and
//! writes only that. Writes that *add* units (Autotask adjustments are deltas) are never
//! re-sent blindly: after a write whose outcome is unknown the next sync reads the line again
//! and computes the change from what the PSA holds, so a crash or a lost answer cannot bill a
//! client twice.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psabridge_core::billing::{ContractState, ServiceLine};
use rust_decimal::Decimal;

use crate::PsaError;

/// A catalogue service of the PSA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub id: String,
    pub name: String,
}

/// A service to create in the PSA's catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub unit_cost: Decimal,
    pub unit_price: Decimal,
}

/// A contract as billing sees it: whose it is and whether it can carry the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingContract {
    pub company_id: String,
    pub state: ContractState,
}

/// What the PSA holds for a set of contracts and one service, in the current period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingSnapshot {
    /// By contract id; a contract the PSA does not have is absent.
    pub contracts: HashMap<String, BillingContract>,
    /// By contract id: the service's line, where the service is on the contract.
    pub lines: HashMap<String, ServiceLine>,
}

/// A PSA's contract billing. Connectors that have it return it from
/// [`crate::Connector::contract_billing`].
#[async_trait]
pub trait ContractBilling: Send + Sync {
    /// The catalogue service with exactly this name (case-insensitive), if any.
    async fn find_service(&self, name: &str) -> Result<Option<ServiceRef>, PsaError>;

    /// Create a catalogue service. Callers look it up by name first, so a second sync finds it.
    async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceRef, PsaError>;

    /// The contracts and the service's lines on them for the period holding `at`, in as few
    /// paged reads as the PSA allows.
    async fn billing_snapshot(
        &self,
        contract_ids: &[String],
        service_id: &str,
        at: DateTime<Utc>,
    ) -> Result<BillingSnapshot, PsaError>;

    /// Put the service on the contract with `units` from the period holding `at`.
    async fn add_service_to_contract(
        &self,
        contract_id: &str,
        service_id: &str,
        units: u64,
        unit_cost: Decimal,
        unit_price: Decimal,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError>;

    /// Change the service's line on the contract: units from `from` to `to` (when given) and
    /// the unit cost (when given), from the period holding `at`.
    async fn update_service_line(
        &self,
        contract_id: &str,
        service_id: &str,
        units: Option<(u64, u64)>,
        unit_cost: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError>;
}

/// A money amount as a PSA answers it (a JSON number or a decimal string), exactly; anything
/// else is zero.
pub(crate) fn decimal(v: Option<&serde_json::Value>) -> Decimal {
    use serde_json::Value;
    use std::str::FromStr;
    v.and_then(|v| match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    })
    .unwrap_or_default()
    .normalize()
}

/// A money amount as the PSAs take it: a JSON number.
pub(crate) fn money(d: Decimal) -> serde_json::Value {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64()
        .map_or(serde_json::Value::Null, serde_json::Value::from)
}
