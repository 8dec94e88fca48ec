//! Autotask contract billing: Services, ContractServices, ContractServiceUnits and
//! ContractServiceAdjustments.
//!
//! Autotask keeps a service's unit count per billing period in read-only ContractServiceUnits;
//! the only way to change it is a ContractServiceAdjustment carrying a signed `unitChange`
//! (create-only). So an update reads the period's units in the snapshot and posts the
//! difference; an adjustment for a service not yet on the contract adds it, which makes
//! "add the service with N units" one request.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psabridge_core::billing::{ContractState, ServiceLine};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{AutotaskConnector, MAX_PAGE, num};
use crate::PsaError;
use crate::billing::{BillingContract, BillingSnapshot, ContractBilling, ServiceRef, ServiceSpec};
use crate::billing::{decimal, money};
use crate::http::text;

/// `contractType` of a Recurring Service contract, the only kind that carries services.
const RECURRING_SERVICE: &str = "7";
/// `useType` of a Recurring Contract allocation (billing) code.
const RECURRING_BILLING_CODE: i64 = 2;
/// Ids per `in` filter, so that a query's body stays small.
const IDS_PER_QUERY: usize = 500;

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl AutotaskConnector {
    /// Every record of `entity` whose `field` is one of `ids` (plus `extra` conditions).
    async fn query_in(
        &self,
        entity: &str,
        field: &str,
        ids: &[String],
        extra: &[Value],
        include: &[&str],
    ) -> Result<Vec<Value>, PsaError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let values = chunk
                .iter()
                .map(|id| num(field, id))
                .collect::<Result<Vec<_>, _>>()?;
            let mut filter = vec![json!({"op": "in", "field": field, "value": values})];
            filter.extend(extra.iter().cloned());
            out.extend(self.query_all(entity, filter, include, usize::MAX).await?);
        }
        Ok(out)
    }

    /// The value of the "Monthly" period type, read from the Services metadata.
    async fn monthly_period_type(&self) -> Result<Value, PsaError> {
        let fields = self
            .call(
                Method::GET,
                "Services",
                "Services/entityInformation/fields",
                None,
                false,
            )
            .await?;
        fields
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.get("name").and_then(Value::as_str) == Some("periodType"))
            .flat_map(|f| {
                f.get("picklistValues")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|p| {
                p.get("label")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.eq_ignore_ascii_case("monthly"))
            })
            .and_then(|p| p.get("value").and_then(text))
            .and_then(|v| v.parse::<i64>().ok())
            .map(Value::from)
            .ok_or_else(|| {
                PsaError::Invalid("Autotask lists no Monthly period type for services".into())
            })
    }
}

#[async_trait]
impl ContractBilling for AutotaskConnector {
    async fn find_service(&self, name: &str) -> Result<Option<ServiceRef>, PsaError> {
        let found = self
            .query_all(
                "Services",
                vec![json!({"op": "eq", "field": "name", "value": name})],
                &["id", "name"],
                MAX_PAGE,
            )
            .await?;
        Ok(found
            .iter()
            .filter(|s| {
                s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .find_map(|s| {
                Some(ServiceRef {
                    id: s.get("id").and_then(text)?,
                    name: s.get("name").and_then(Value::as_str)?.to_string(),
                })
            }))
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceRef, PsaError> {
        let period_type = self.monthly_period_type().await?;
        let code = self
            .query_all(
                "BillingCodes",
                vec![
                    json!({"op": "eq", "field": "useType", "value": RECURRING_BILLING_CODE}),
                    json!({"op": "eq", "field": "isActive", "value": true}),
                ],
                &["id"],
                1,
            )
            .await?
            .first()
            .and_then(|c| c.get("id").cloned())
            .ok_or_else(|| {
                PsaError::Invalid(
                    "Autotask has no active Recurring Contract billing code to bill the service under".into(),
                )
            })?;
        let body = json!({"name": spec.name, "unitPrice": money(spec.unit_price),
            "unitCost": money(spec.unit_cost), "periodType": period_type, "billingCodeID": code,
            "isActive": true});
        let answer = self
            .call(Method::POST, "Services", "Services", Some(&body), true)
            .await?;
        let id = answer.get("itemId").and_then(text).ok_or_else(|| {
            PsaError::Invalid("Autotask created the service without an id".into())
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
        if contract_ids.is_empty() {
            return Ok(snapshot);
        }
        let today = at.format("%Y-%m-%d").to_string();
        let contracts = self
            .query_in(
                "Contracts",
                "id",
                contract_ids,
                &[],
                &["id", "companyID", "status", "contractType", "endDate"],
            )
            .await?;
        for c in &contracts {
            let (Some(id), Some(company)) = (
                c.get("id").and_then(text),
                c.get("companyID").and_then(text),
            ) else {
                continue;
            };
            let billable_type =
                c.get("contractType").and_then(text).as_deref() == Some(RECURRING_SERVICE);
            snapshot.contracts.insert(
                id,
                BillingContract {
                    company_id: company,
                    state: ContractState::Found {
                        active: super::contract_in_force(c, &today),
                        billable_type,
                    },
                },
            );
        }
        let recurring: Vec<String> = snapshot
            .contracts
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.state,
                    ContractState::Found {
                        billable_type: true,
                        ..
                    }
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        let services = self
            .query_in(
                "ContractServices",
                "contractID",
                &recurring,
                &[json!({"op": "eq", "field": "serviceID", "value": num("service", service_id)?})],
                &["id", "contractID", "unitCost"],
            )
            .await?;
        // contract service id → (contract id, unit cost)
        let by_line: HashMap<String, (String, Decimal)> = services
            .iter()
            .filter_map(|cs| {
                Some((
                    cs.get("id").and_then(text)?,
                    (
                        cs.get("contractID").and_then(text)?,
                        decimal(cs.get("unitCost")),
                    ),
                ))
            })
            .collect();
        let line_ids: Vec<String> = by_line.keys().cloned().collect();
        let now = time(at);
        let units = self
            .query_in(
                "ContractServiceUnits",
                "contractServiceID",
                &line_ids,
                &[
                    json!({"op": "lte", "field": "startDate", "value": now}),
                    json!({"op": "gte", "field": "endDate", "value": now}),
                ],
                &["contractServiceID", "units"],
            )
            .await?;
        let mut units_of: HashMap<String, u64> = HashMap::new();
        for u in &units {
            if let Some(cs) = u.get("contractServiceID").and_then(text) {
                let n = u.get("units").and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
                units_of.insert(cs, n);
            }
        }
        for (cs, (contract, unit_cost)) in by_line {
            snapshot.lines.insert(
                contract,
                ServiceLine {
                    units: units_of.get(&cs).copied().unwrap_or(0),
                    unit_cost,
                },
            );
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
        let body = json!({"contractID": num("contract", contract_id)?,
            "serviceID": num("service", service_id)?, "unitChange": units,
            "effectiveDate": time(at), "adjustedUnitCost": money(unit_cost),
            "adjustedUnitPrice": money(unit_price)});
        self.call(
            Method::POST,
            "ContractServiceAdjustments",
            &format!("Contracts/{contract_id}/ServiceAdjustments"),
            Some(&body),
            true,
        )
        .await?;
        Ok(())
    }

    async fn update_service_line(
        &self,
        contract_id: &str,
        service_id: &str,
        units: Option<(u64, u64)>,
        unit_cost: Option<Decimal>,
        at: DateTime<Utc>,
    ) -> Result<(), PsaError> {
        let change = units.map_or(0, |(from, to)| to as i64 - from as i64);
        let mut body = json!({"contractID": num("contract", contract_id)?,
            "serviceID": num("service", service_id)?, "unitChange": change,
            "effectiveDate": time(at)});
        if let Some(cost) = unit_cost {
            body["adjustedUnitCost"] = money(cost);
        }
        self.call(
            Method::POST,
            "ContractServiceAdjustments",
            &format!("Contracts/{contract_id}/ServiceAdjustments"),
            Some(&body),
            true,
        )
        .await?;
        Ok(())
    }
}
