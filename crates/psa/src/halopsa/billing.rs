//! HaloPSA contract billing: catalogue `Item`s, billed on a client contract by the lines of its
//! `RecurringInvoice`.
//!
//! A service is an item; it is on a contract when a recurring invoice has a line whose item
//! (`_itemid`) is the service and whose contract (`contract_id`, else the invoice's) is the
//! contract. The line's `qty_order` is the units the next invoice bills (Halo keeps no history
//! per period) and `unit_cost` its cost. Every client contract can carry recurring lines, so
//! the billable kind is any contract; one in force (not inactive, not expired, within its
//! dates) can be billed.
//!
//! Economy: the snapshot reads contracts in pages ordered by id, stopping once past the highest
//! wanted id (Halo has no filter by a list of contract ids), then the recurring invoices with
//! their lines of every client concerned at once (`client_ids`, comma separated). A write first
//! reads the contract's recurring invoice, then posts it with all its lines (Halo's way to
//! change lines: `updatelines` is reported to misbehave); adding a service whose line is
//! already there (an earlier answer lost) sets that line instead of adding a second one.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psabridge_core::billing::{ContractState, ServiceLine};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::{
    HaloConnector, SiteMap, company_of_contract, contract_of, field_id, field_str, num, records,
    saved, text,
};
use crate::PsaError;
use crate::billing::{BillingContract, BillingSnapshot, ContractBilling, ServiceRef, ServiceSpec};
use crate::billing::{decimal, money};

/// Clients per `client_ids` filter, so that a query string stays short.
const CLIENTS_PER_QUERY: usize = 100;

/// A line's quantity as whole units (Halo types it as a double).
fn units_of(line: &Value) -> u64 {
    line.get("qty_order")
        .and_then(Value::as_f64)
        .filter(|q| q.is_finite() && *q > 0.0)
        .map_or(0, |q| q.round() as u64)
}

/// The contract a recurring invoice line bills on: its own, else its invoice's.
fn line_contract(invoice: &Value, line: &Value) -> Option<i64> {
    field_id(line, "contract_id")
        .filter(|c| *c > 0)
        .or_else(|| field_id(invoice, "contract_id").filter(|c| *c > 0))
}

/// Is the contract in force on `at`'s day: not inactive or expired, started, not ended.
/// Halo's dates are compared by their day (`2030-12-31T00:00:00` covers that whole day).
fn in_force(contract: &Value, at: DateTime<Utc>) -> bool {
    let today = at.format("%Y-%m-%d").to_string();
    let day = |k: &str| {
        let d = field_str(contract, k);
        (d.len() >= 10).then(|| d[..10].to_string())
    };
    contract_of(contract).is_some_and(|c| c.active)
        && day("start_date").is_none_or(|d| d <= today)
        && day("end_date").is_none_or(|d| d >= today)
}

/// The first line of `invoices` that bills `service` on `contract`: (invoice index, line index).
fn find_line(invoices: &[Value], contract: i64, service: i64) -> Option<(usize, usize)> {
    invoices.iter().enumerate().find_map(|(i, inv)| {
        inv.get("lines")
            .and_then(Value::as_array)?
            .iter()
            .position(|l| {
                field_id(l, "_itemid") == Some(service) && line_contract(inv, l) == Some(contract)
            })
            .map(|l| (i, l))
    })
}

/// A recurring invoice's lines, for resending.
fn lines_of(invoice: &Value) -> Vec<Value> {
    invoice
        .get("lines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl HaloConnector {
    /// The wanted contracts, from pages of every contract ordered by id, stopping after the
    /// page that reaches the highest wanted id.
    async fn contracts_by_id(&self, wanted: &BTreeSet<i64>) -> Result<Vec<Value>, PsaError> {
        let Some(highest) = wanted.last().copied() else {
            return Ok(Vec::new());
        };
        let size = self.opts.page_size.max(1);
        let mut found = Vec::new();
        let mut seen = 0usize;
        for page_no in 1u32.. {
            let q = [
                ("includeinactive", "true".to_string()),
                ("order", "id".into()),
                ("pageinate", "true".into()),
                ("page_size", size.to_string()),
                ("page_no", page_no.to_string()),
            ];
            let answer = self.get("ClientContract", &q).await?;
            let page = records(&answer, "contracts");
            seen += page.len();
            let past = page
                .iter()
                .filter_map(|c| field_id(c, "id"))
                .any(|id| id >= highest);
            found.extend(
                page.iter()
                    .filter(|c| field_id(c, "id").is_some_and(|id| wanted.contains(&id)))
                    .cloned(),
            );
            let total = answer.get("record_count").and_then(super::id_of);
            let more = match total {
                Some(t) => (seen as i64) < t && !page.is_empty(),
                None => page.len() as u32 >= size,
            };
            if past || !more {
                break;
            }
        }
        Ok(found)
    }

    /// Every recurring invoice of these clients, with its lines.
    async fn invoices_of_clients(&self, clients: &BTreeSet<i64>) -> Result<Vec<Value>, PsaError> {
        let ids: Vec<String> = clients.iter().map(i64::to_string).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(CLIENTS_PER_QUERY) {
            let q = [
                ("client_ids", chunk.join(",")),
                ("includelines", "true".to_string()),
            ];
            out.extend(
                self.get_all("RecurringInvoice", "invoices", &q, usize::MAX)
                    .await?,
            );
        }
        Ok(out)
    }

    /// The recurring invoices of a contract, with their lines.
    async fn invoices_of_contract(&self, contract: i64) -> Result<Vec<Value>, PsaError> {
        let q = [
            ("contract_id", contract.to_string()),
            ("includelines", "true".to_string()),
        ];
        self.get_all("RecurringInvoice", "invoices", &q, usize::MAX)
            .await
    }

    /// Save a recurring invoice (one element of Halo's array body).
    async fn save_invoice(&self, invoice: Value) -> Result<(), PsaError> {
        self.call(
            Method::POST,
            "RecurringInvoice",
            &[],
            Some(&Value::Array(vec![invoice])),
            true,
        )
        .await?;
        Ok(())
    }
}

/// A number id of ours, or the refusal naming what it should be.
fn id_number(what: &str, id: &str) -> Result<i64, PsaError> {
    num(what, id)?
        .as_i64()
        .ok_or_else(|| PsaError::Invalid(format!("{what} '{id}' is not a HaloPSA id")))
}

#[async_trait]
impl ContractBilling for HaloConnector {
    async fn find_service(&self, name: &str) -> Result<Option<ServiceRef>, PsaError> {
        let wanted = name.trim();
        let items = self
            .get_all(
                "Item",
                "items",
                &[("search", wanted.to_string())],
                usize::MAX,
            )
            .await?;
        Ok(items
            .iter()
            .filter(|i| field_str(i, "name").trim().eq_ignore_ascii_case(wanted))
            .filter_map(|i| {
                Some(ServiceRef {
                    id: i.get("id").and_then(text)?,
                    name: field_str(i, "name").to_string(),
                })
            })
            .min_by_key(|s| s.id.parse::<i64>().unwrap_or(i64::MAX)))
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceRef, PsaError> {
        let item = json!([{"name": spec.name, "isrecurringitem": true,
            "recurringprice": money(spec.unit_price), "recurringcost": money(spec.unit_cost),
            "baseprice": money(spec.unit_price), "costprice": money(spec.unit_cost)}]);
        let answer = self
            .call(Method::POST, "Item", &[], Some(&item), true)
            .await?;
        let id = saved(&answer)
            .and_then(|i| i.get("id"))
            .and_then(text)
            .ok_or_else(|| PsaError::Invalid("HaloPSA saved the item without an id".into()))?;
        Ok(ServiceRef {
            id,
            name: spec.name.clone(),
        })
    }

    async fn billing_snapshot(
        &self,
        contract_ids: &[String],
        service_id: &str,
        at: DateTime<Utc>,
    ) -> Result<BillingSnapshot, PsaError> {
        let mut snapshot = BillingSnapshot::default();
        // An id that is not a number is no Halo contract: it stays absent, like a missing one.
        let wanted: BTreeSet<i64> = contract_ids
            .iter()
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        if wanted.is_empty() {
            return Ok(snapshot);
        }
        let service = id_number("service", service_id)?;
        let contracts = self.contracts_by_id(&wanted).await?;
        let sites = if contracts
            .iter()
            .any(|c| field_id(c, "site_id").is_some_and(|s| s > 0))
        {
            self.site_map().await?
        } else {
            SiteMap::new()
        };
        let mut billable_clients = BTreeSet::new();
        for c in &contracts {
            let (Some(id), Some(company)) = (field_id(c, "id"), company_of_contract(c, &sites))
            else {
                continue;
            };
            let active = in_force(c, at);
            if active && let Some(client) = field_id(c, "client_id") {
                billable_clients.insert(client);
            }
            snapshot.contracts.insert(
                id.to_string(),
                BillingContract {
                    company_id: company,
                    state: ContractState::Found {
                        active,
                        billable_type: true,
                    },
                },
            );
        }
        if billable_clients.is_empty() {
            return Ok(snapshot);
        }
        let invoices = self.invoices_of_clients(&billable_clients).await?;
        // The lowest line id wins where a contract bills the service on several lines.
        let mut lines: HashMap<i64, (i64, ServiceLine)> = HashMap::new();
        for invoice in &invoices {
            for line in invoice
                .get("lines")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(contract) = line_contract(invoice, line) else {
                    continue;
                };
                if field_id(line, "_itemid") != Some(service) || !wanted.contains(&contract) {
                    continue;
                }
                let line_id = field_id(line, "id").unwrap_or(i64::MAX);
                let found = ServiceLine {
                    units: units_of(line),
                    unit_cost: decimal(line.get("unit_cost")),
                };
                match lines.get(&contract) {
                    Some((kept, _)) if *kept <= line_id => {}
                    _ => {
                        lines.insert(contract, (line_id, found));
                    }
                }
            }
        }
        snapshot.lines = lines
            .into_iter()
            .map(|(contract, (_, line))| (contract.to_string(), line))
            .collect();
        Ok(snapshot)
    }

    async fn add_service_to_contract(
        &self,
        contract_id: &str,
        service_id: &str,
        units: u64,
        unit_cost: Decimal,
        unit_price: Decimal,
        _at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        let contract = id_number("contract", contract_id)?;
        let service = id_number("service", service_id)?;
        let invoices = self.invoices_of_contract(contract).await?;
        let billed = |line: &mut Map<String, Value>| {
            line.insert("qty_order".into(), json!(units));
            line.insert("unit_cost".into(), money(unit_cost));
            line.insert("unit_price".into(), money(unit_price));
        };
        if let Some((i, l)) = find_line(&invoices, contract, service) {
            // Already there (an earlier answer was lost): set it, never add a second line.
            let mut all = lines_of(&invoices[i]);
            if let Some(line) = all[l].as_object_mut() {
                billed(line);
            }
            return self
                .save_invoice(json!({"id": invoices[i]["id"], "lines": all}))
                .await;
        }
        let mut line = Map::new();
        line.insert("_itemid".into(), json!(service));
        line.insert("contract_id".into(), json!(contract));
        billed(&mut line);
        let own = invoices
            .iter()
            .filter(|inv| field_id(inv, "contract_id") == Some(contract))
            .min_by_key(|inv| field_id(inv, "id").unwrap_or(i64::MAX));
        match own {
            Some(invoice) => {
                let mut all = lines_of(invoice);
                all.push(Value::Object(line));
                self.save_invoice(json!({"id": invoice["id"], "lines": all}))
                    .await
            }
            None => {
                // The contract has no recurring invoice yet: one for its client, with the line.
                let header = self.get(&format!("ClientContract/{contract}"), &[]).await?;
                let client = field_id(&header, "client_id").ok_or_else(|| {
                    PsaError::Invalid(format!("HaloPSA contract {contract} names no client"))
                })?;
                self.save_invoice(json!({"client_id": client, "contract_id": contract,
                    "lines": [Value::Object(line)]}))
                    .await
            }
        }
    }

    async fn update_service_line(
        &self,
        contract_id: &str,
        service_id: &str,
        units: Option<(u64, u64)>,
        unit_cost: Option<Decimal>,
        _at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        if units.is_none() && unit_cost.is_none() {
            return Ok(());
        }
        let contract = id_number("contract", contract_id)?;
        let service = id_number("service", service_id)?;
        let invoices = self.invoices_of_contract(contract).await?;
        let (i, l) = find_line(&invoices, contract, service).ok_or_else(|| {
            PsaError::Invalid(format!(
                "item {service} is not on a recurring invoice of HaloPSA contract {contract}"
            ))
        })?;
        let mut all = lines_of(&invoices[i]);
        if let Some(line) = all[l].as_object_mut() {
            // Units are absolute in Halo: the target count, whatever the line held.
            if let Some((_, to)) = units {
                line.insert("qty_order".into(), json!(to));
            }
            if let Some(cost) = unit_cost {
                line.insert("unit_cost".into(), money(cost));
            }
        }
        self.save_invoice(json!({"id": invoices[i]["id"], "lines": all}))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{day}T12:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_contract_is_in_force_between_its_days_unless_inactive_or_expired() {
        let c = json!({"id": 44, "active": true, "expired": false,
            "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-12-31T00:00:00"});
        assert!(in_force(&c, at("2026-12-31")));
        assert!(in_force(&c, at("2026-01-01")));
        assert!(!in_force(&c, at("2027-01-01")));
        assert!(!in_force(&c, at("2025-12-31")));
        let expired = json!({"id": 45, "expired": true});
        assert!(!in_force(&expired, at("2026-06-01")));
        assert!(in_force(&json!({"id": 46}), at("2026-06-01")));
    }

    #[test]
    fn a_line_bills_on_its_own_contract_else_its_invoices() {
        let invoice = json!({"id": 900, "contract_id": 44, "lines": [
            {"id": 1, "_itemid": 32, "qty_order": 2.0},
            {"id": 2, "_itemid": 31, "qty_order": 24.6, "contract_id": 47},
            {"id": 3, "_itemid": 31, "qty_order": 5.0, "contract_id": 0},
        ]});
        let invoices = [invoice];
        assert_eq!(find_line(&invoices, 47, 31), Some((0, 1)));
        assert_eq!(find_line(&invoices, 44, 31), Some((0, 2)));
        assert_eq!(find_line(&invoices, 44, 99), None);
        assert_eq!(units_of(&invoices[0]["lines"][1]), 25);
        assert_eq!(units_of(&json!({"qty_order": -3.0})), 0);
    }
}
