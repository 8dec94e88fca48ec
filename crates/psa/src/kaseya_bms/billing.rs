//! Kaseya BMS contract billing: the finance catalogue's services, Recurring Services
//! contracts, and the service entries on them.
//!
//! BMS v2 publishes no read of one contract's services and no update of an entry's units; it
//! only adds services to a recurring contract
//! (`POST /v2/finance/contracts/recurringservices/{contractId}/services`), each with an
//! `EffectiveDate`. So:
//! - **units change** by adding the service again with the new units, effective at the sync:
//!   an entry for the same `ServiceId` that supersedes the earlier one from its date (the
//!   period's units are those of the latest entry effective at or before it). Writes are
//!   absolute, never deltas, and the next sync reads what BMS holds before writing again;
//! - **the lines are read** from the closest published read, a service's related contract
//!   services (`POST /v2/admin/finance/services/{serviceId}/relatedservices/search`, one row
//!   per entry, with its contract, account, effective date, cost and price). [unverified] Its
//!   published DTO names no unit count: we read `units` where BMS answers it and refuse to
//!   guess where it does not;
//! - **a cost-only change** goes through the published bulk update of those rows
//!   (`…/relatedservices/bulkupdate`), on the entry in force.
//!
//! A snapshot costs, for up to 100 contracts: one `contracts/lookup` by `Ids` (existence,
//! `isActive`, `endDate`), the `contracts/summary` pages until every found contract is seen
//! (its `contractType` and `status`: the summary has no id filter), the service's related
//! services pages, and — only when a found contract carries no entry of the service, whose
//! row would name its account — one `crm/accounts/lookup` to turn the summary's
//! `accountName` into the account id (a name shared by two accounts leaves the company
//! unknown, which the sync reports as a contract not found for the client's company).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psabridge_core::billing::{ContractState, ServiceLine};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{KaseyaBmsConnector, MAX_PAGES, bool_of, field, has_next, num, records, text_of};
use crate::PsaError;
use crate::billing::{BillingContract, BillingSnapshot, ContractBilling, ServiceRef, ServiceSpec};
use crate::billing::{decimal, money};

/// `contractType` of the contracts that carry recurring services.
const RECURRING_SERVICES: &str = "Recurring Services";
/// The summary's `status` of a contract in force.
const ACTIVE_STATUS: &str = "Active";
/// Ids per contract lookup, so that the query string stays short.
const IDS_PER_LOOKUP: usize = 100;
/// Records per page of the summary and related-services reads. [unverified] BMS publishes no
/// largest page size.
const BILLING_PAGE: u32 = 500;

/// A service's entry in force on one contract, as billing needs it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CurrentEntry {
    /// The entry's id (`ClientContractServiceId` of the bulk update).
    entry_id: i64,
    account_id: Option<String>,
    units: Option<u64>,
    unit_cost: Decimal,
    unit_price: Decimal,
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn units_of(v: &Value) -> Option<u64> {
    field(v, "units")
        .and_then(Value::as_f64)
        .map(|u| u.max(0.0).round() as u64)
}

fn int_units(units: u64) -> Result<i64, PsaError> {
    i32::try_from(units).map(i64::from).map_err(|_| {
        PsaError::Invalid(format!(
            "{units} units do not fit in Kaseya BMS's Units field"
        ))
    })
}

/// Per contract, the entry of the related-services `rows` in force at `at`: the latest
/// effective at or before it (ties: the higher id, the later entry).
pub(super) fn entries_in_force(rows: &[Value], at: &str) -> HashMap<String, CurrentEntry> {
    let mut best: HashMap<String, (String, i64, CurrentEntry)> = HashMap::new();
    for row in rows {
        let (Some(contract), Some(id), Some(effective)) = (
            text_of(row, "contractId"),
            field(row, "id").and_then(Value::as_i64),
            text_of(row, "effectiveDate").map(|d| normalised_time(&d)),
        ) else {
            continue;
        };
        if effective.as_str() > at {
            continue;
        }
        let newer = best
            .get(&contract)
            .is_none_or(|(date, seen, _)| (effective.as_str(), id) > (date.as_str(), *seen));
        if newer {
            let entry = CurrentEntry {
                entry_id: id,
                account_id: text_of(row, "accountId"),
                units: units_of(row),
                unit_cost: decimal(field(row, "unitCost")),
                unit_price: decimal(field(row, "unitPrice")),
            };
            best.insert(contract, (effective, id, entry));
        }
    }
    best.into_iter().map(|(k, (_, _, e))| (k, e)).collect()
}

/// A BMS date-time as `YYYY-MM-DDTHH:MM:SSZ`, so that dates compare as text.
fn normalised_time(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|d| time(d.with_timezone(&Utc)))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|d| time(d.and_utc()))
        })
        .unwrap_or_else(|_| text.to_string())
}

impl KaseyaBmsConnector {
    /// Every page of a paged POST search whose body is `filter` plus paging.
    async fn search_all(
        &self,
        endpoint: &str,
        path: &str,
        filter: &Value,
    ) -> Result<Vec<Value>, PsaError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let body = json!({"PageSize": BILLING_PAGE, "PageNumber": page, "Filter": filter});
            let v = self
                .call(Method::POST, endpoint, path, &[], Some(&body), false)
                .await?;
            let items = records(&v);
            let got = items.len();
            out.extend(items);
            let total = field(&v, "totalRecords").and_then(Value::as_u64);
            if !has_next(page, BILLING_PAGE, got, total) {
                break;
            }
        }
        Ok(out)
    }

    /// The service's entries in force at `at`, by contract id.
    async fn service_entries(
        &self,
        service_id: &str,
        at: DateTime<Utc>,
    ) -> Result<HashMap<String, CurrentEntry>, PsaError> {
        let service = num("service", service_id)?;
        let rows = self
            .search_all(
                "/v2/admin/finance/services/{serviceId}/relatedservices/search",
                &format!("/v2/admin/finance/services/{service}/relatedservices/search"),
                &json!({"EffectiveDateTo": time(at)}),
            )
            .await?;
        Ok(entries_in_force(&rows, &time(at)))
    }

    /// `isActive` and `endDate` of each contract that exists, by id.
    async fn contracts_by_ids(&self, ids: &[i64]) -> Result<HashMap<String, Value>, PsaError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let query: Vec<(&str, String)> =
                chunk.iter().map(|id| ("Ids", id.to_string())).collect();
            let v = self
                .get(
                    "/v2/finance/contracts/lookup",
                    "/v2/finance/contracts/lookup",
                    &query,
                )
                .await?;
            for c in records(&v) {
                if let Some(id) = text_of(&c, "id") {
                    found.insert(id, c);
                }
            }
        }
        Ok(found)
    }

    /// Summary rows (type, status, account name) of `wanted`, paging until all are seen.
    async fn summaries_of(
        &self,
        wanted: &HashSet<String>,
    ) -> Result<HashMap<String, Value>, PsaError> {
        let mut out = HashMap::new();
        for page in 1..=MAX_PAGES {
            if out.len() == wanted.len() {
                break;
            }
            let v = self
                .get(
                    "/v2/finance/contracts/summary",
                    "/v2/finance/contracts/summary",
                    &[
                        ("PageSize", BILLING_PAGE.to_string()),
                        ("PageNumber", page.to_string()),
                    ],
                )
                .await?;
            let items = records(&v);
            let got = items.len();
            for c in items {
                if let Some(id) = text_of(&c, "id").filter(|id| wanted.contains(id)) {
                    out.insert(id, c);
                }
            }
            let total = field(&v, "totalRecords").and_then(Value::as_u64);
            if !has_next(page, BILLING_PAGE, got, total) {
                break;
            }
        }
        Ok(out)
    }

    /// Account ids by account name, for names held by exactly one account.
    async fn account_ids_by_name(&self) -> Result<HashMap<String, String>, PsaError> {
        let v = self
            .get(
                "/v2/crm/accounts/lookup",
                "/v2/crm/accounts/lookup",
                &[("Filter.WithInactiveAccounts", "true".to_string())],
            )
            .await?;
        let mut by_name: HashMap<String, Option<String>> = HashMap::new();
        for a in records(&v) {
            let (Some(name), Some(id)) = (text_of(&a, "name"), text_of(&a, "id")) else {
                continue;
            };
            by_name
                .entry(name.to_lowercase())
                .and_modify(|seen| *seen = None)
                .or_insert(Some(id));
        }
        Ok(by_name
            .into_iter()
            .filter_map(|(name, id)| Some((name, id?)))
            .collect())
    }

    /// The entry in force of the service on the contract: the one the last snapshot saw, else
    /// read again.
    async fn entry_in_force(
        &self,
        contract_id: &str,
        service_id: &str,
        at: DateTime<Utc>,
    ) -> Result<CurrentEntry, PsaError> {
        let key = (contract_id.to_string(), service_id.to_string());
        if let Some(e) = self.billing_entries().get(&key) {
            return Ok(e.clone());
        }
        let mut entries = self.service_entries(service_id, at).await?;
        let entry = entries.remove(contract_id).ok_or_else(|| {
            PsaError::NotFound(format!(
                "service {service_id} is not on Kaseya BMS contract {contract_id}"
            ))
        })?;
        self.billing_entries().insert(key, entry.clone());
        Ok(entry)
    }

    fn billing_entries(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), CurrentEntry>> {
        self.billing_entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Add the service to the contract as an entry effective at `at`; remember it.
    async fn post_entry(
        &self,
        contract_id: &str,
        service_id: &str,
        units: u64,
        unit_cost: Decimal,
        unit_price: Decimal,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        let contract = num("contract", contract_id)?;
        let body = json!([{"ServiceId": num("service", service_id)?, "Units": int_units(units)?,
            "UnitCost": money(unit_cost), "UnitPrice": money(unit_price),
            "EffectiveDate": time(at)}]);
        let v = self
            .call(
                Method::POST,
                "/v2/finance/contracts/recurringservices/{contractId}/services",
                &format!("/v2/finance/contracts/recurringservices/{contract}/services"),
                &[],
                Some(&body),
                true,
            )
            .await?;
        let key = (contract_id.to_string(), service_id.to_string());
        match field(&v, "result").and_then(|r| field(r, "id").and_then(Value::as_i64)) {
            Some(entry_id) => {
                let account_id = self
                    .billing_entries()
                    .get(&key)
                    .and_then(|e| e.account_id.clone());
                self.billing_entries().insert(
                    key,
                    CurrentEntry {
                        entry_id,
                        account_id,
                        units: Some(units),
                        unit_cost,
                        unit_price,
                    },
                );
            }
            None => {
                self.billing_entries().remove(&key);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ContractBilling for KaseyaBmsConnector {
    async fn find_service(&self, name: &str) -> Result<Option<ServiceRef>, PsaError> {
        let found = self
            .get_all(
                "/v2/admin/finance/services/lookup",
                "/v2/admin/finance/services/lookup",
                &[("Filter.Name", name.trim().to_string())],
            )
            .await?;
        Ok(found
            .iter()
            .filter(|s| {
                text_of(s, "name").is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            })
            .find_map(|s| {
                Some(ServiceRef {
                    id: text_of(s, "id")?,
                    name: text_of(s, "name")?,
                })
            }))
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceRef, PsaError> {
        let body = json!({"Name": spec.name, "UnitCost": money(spec.unit_cost),
            "UnitPrice": money(spec.unit_price), "IsActive": true, "IsTaxable": false});
        let v = self
            .call(
                Method::POST,
                "/v2/admin/finance/services/services",
                "/v2/admin/finance/services/services",
                &[],
                Some(&body),
                true,
            )
            .await?;
        let id = field(&v, "result")
            .and_then(|r| text_of(r, "id"))
            .ok_or_else(|| {
                PsaError::Invalid("Kaseya BMS created the service without an id".into())
            })?;
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
        // An id that is not a number names no BMS contract: it stays absent (not found).
        let mut ids: Vec<i64> = contract_ids
            .iter()
            .filter_map(|k| k.trim().parse().ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(snapshot);
        }
        let found = self.contracts_by_ids(&ids).await?;
        if found.is_empty() {
            return Ok(snapshot);
        }
        let wanted: HashSet<String> = found.keys().cloned().collect();
        let summaries = self.summaries_of(&wanted).await?;
        let recurring = |id: &str| {
            summaries
                .get(id)
                .and_then(|s| text_of(s, "contractType"))
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(RECURRING_SERVICES))
        };
        let mut entries = if found.keys().any(|id| recurring(id)) {
            self.service_entries(service_id, at).await?
        } else {
            HashMap::new()
        };
        entries.retain(|k, _| wanted.contains(k) && recurring(k));
        let needs_names = found
            .keys()
            .any(|k| entries.get(k).and_then(|e| e.account_id.as_ref()).is_none());
        let accounts = if needs_names {
            self.account_ids_by_name().await?
        } else {
            HashMap::new()
        };
        let today = at.format("%Y-%m-%d").to_string();
        for (id, lookup) in &found {
            let summary = summaries.get(id);
            let ended = text_of(lookup, "endDate")
                .and_then(|d| d.get(..10).map(str::to_string))
                .is_some_and(|end| end < today);
            let in_force_by_status = summary
                .and_then(|s| text_of(s, "status"))
                .is_none_or(|s| s.trim().eq_ignore_ascii_case(ACTIVE_STATUS));
            let active =
                bool_of(lookup, "isActive").unwrap_or(true) && !ended && in_force_by_status;
            let company_id = entries
                .get(id)
                .and_then(|e| e.account_id.clone())
                .or_else(|| {
                    summary
                        .and_then(|s| text_of(s, "accountName"))
                        .and_then(|n| accounts.get(&n.to_lowercase()).cloned())
                })
                .unwrap_or_default();
            snapshot.contracts.insert(
                id.clone(),
                BillingContract {
                    company_id,
                    state: ContractState::Found {
                        active,
                        billable_type: recurring(id),
                    },
                },
            );
        }
        for (contract, entry) in &entries {
            let units = entry.units.ok_or_else(|| {
                PsaError::Invalid(format!(
                    "Kaseya BMS did not say how many units contract service {} (contract {contract}) has, so billing cannot compare",
                    entry.entry_id
                ))
            })?;
            snapshot.lines.insert(
                contract.clone(),
                ServiceLine {
                    units,
                    unit_cost: entry.unit_cost,
                },
            );
        }
        let mut cache = self.billing_entries();
        for id in &wanted {
            cache.remove(&(id.clone(), service_id.to_string()));
        }
        for (contract, entry) in entries {
            cache.insert((contract, service_id.to_string()), entry);
        }
        Ok(snapshot)
    }

    async fn add_service_to_contract(
        &self,
        contract_id: &str,
        service_id: &str,
        units: u64,
        unit_cost: Decimal,
        unit_price: Decimal,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        self.post_entry(contract_id, service_id, units, unit_cost, unit_price, at)
            .await
    }

    async fn update_service_line(
        &self,
        contract_id: &str,
        service_id: &str,
        units: Option<(u64, u64)>,
        unit_cost: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        if units.is_none() && unit_cost.is_none() {
            return Ok(());
        }
        let current = self.entry_in_force(contract_id, service_id, at).await?;
        if let Some((_, to)) = units {
            // A new entry carries the units (and the new cost, if any) from `at` on.
            let cost = unit_cost.unwrap_or(current.unit_cost);
            return self
                .post_entry(contract_id, service_id, to, cost, current.unit_price, at)
                .await;
        }
        let Some(cost) = unit_cost else {
            return Ok(());
        };
        let service = num("service", service_id)?;
        let body = json!({
            "SelectedClientContractServices": [{
                "ClientContractId": num("contract", contract_id)?,
                "ClientContractServiceId": current.entry_id,
            }],
            "Values": {"UnitCost": money(cost)},
        });
        self.call(
            Method::POST,
            "/v2/admin/finance/services/{serviceId}/relatedservices/bulkupdate",
            &format!("/v2/admin/finance/services/{service}/relatedservices/bulkupdate"),
            &[],
            Some(&body),
            true,
        )
        .await?;
        let key = (contract_id.to_string(), service_id.to_string());
        if let Some(e) = self.billing_entries().get_mut(&key) {
            e.unit_cost = cost;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_entry_effective_by_then_is_in_force() {
        let row = |id: i64, contract: i64, date: &str, units: u64| {
            json!({"id": id, "contractId": contract, "accountId": 12, "effectiveDate": date,
                   "unitCost": 1.5, "unitPrice": 3, "units": units})
        };
        let rows = [
            row(1, 44, "2026-01-01T00:00:00Z", 5),
            row(3, 44, "2026-02-01T00:00:00", 9),
            row(2, 44, "2026-02-01T00:00:00Z", 7),
            row(4, 44, "2099-01-01T00:00:00Z", 1),
            row(5, 46, "2026-03-01T00:00:00Z", 2),
        ];
        let found = entries_in_force(&rows, "2026-02-15T00:00:00Z");
        assert_eq!(found["44"].entry_id, 3);
        assert_eq!(found["44"].units, Some(9));
        assert_eq!(found["44"].unit_cost, Decimal::new(15, 1));
        assert_eq!(found["44"].account_id.as_deref(), Some("12"));
        assert!(!found.contains_key("46"));
    }

    #[test]
    fn units_must_fit_bms_int32() {
        assert_eq!(int_units(25).unwrap(), 25);
        assert!(matches!(
            int_units(u64::from(u32::MAX)),
            Err(PsaError::Invalid(_))
        ));
    }
}
