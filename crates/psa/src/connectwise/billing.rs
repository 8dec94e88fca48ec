//! ConnectWise contract billing: catalogue items (`procurement/catalog`) billed on agreements
//! as agreement additions (`finance/agreements/{id}/additions`).
//!
//! - **The service** is a catalogue item, named by its `identifier` (the product ID): it is
//!   unique in a tenant, so a look-up by name finds one item, and it is the only name an
//!   addition carries (`product{id, identifier}`). A new item gets the name as identifier and
//!   customer description, the name cut to 60 characters as description, and the product type
//!   and subcategory (and category) of the newest active recurring item of the catalogue —
//!   the published API has no list of product types or subcategories to choose from, and both
//!   are required. A catalogue without any active item cannot take a new service: the error
//!   says to create it in ConnectWise.
//! - **Billable agreements** are those that bill every cycle: an agreement with a
//!   `billingCycle` that is not billed once (`billOneTimeFlag`). An agreement is active as
//!   [`super::contract_of`] says (its `agreementStatus`, else its cancellation and dates).
//! - **The line** is the product's additions in force on the agreement (no `cancelledDate`, or
//!   one still ahead): ConnectWise allows a product twice on an agreement and bills both, so
//!   the units are their sum and the unit cost the oldest one's. A change of units moves the
//!   oldest addition so that the sum is the target.
//! - **Requests per snapshot**: the agreements in one read per 100 ids (`id in (…)`, pages of
//!   1000), then one read of additions per active billable agreement — the API has no read of
//!   additions across agreements (only `finance/agreements/{parentId}/additions`). Writes:
//!   one POST to add, one PATCH to update (JSON Patch `replace` of absolute values, so a
//!   repeated update changes nothing and a lost answer cannot bill twice).
//! - The snapshot remembers each line's addition id, so an update needs no read; without it
//!   (or when the addition is gone) the line is read first.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use psabridge_core::billing::{ContractState, ServiceLine};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    ConnectWiseConnector, IDS_PER_QUERY, MAX_PAGE, contract_of, flag, num, quoted, ref_id,
};
use crate::PsaError;
use crate::billing::{BillingContract, BillingSnapshot, ContractBilling, ServiceRef, ServiceSpec};
use crate::billing::{decimal, money};
use crate::http::text;

const AGREEMENT_FIELDS: &str = "id,company,agreementStatus,cancelledFlag,endDate,noEndingDateFlag,billingCycle,billOneTimeFlag";
const ADDITION_FIELDS: &str = "id,product,quantity,unitCost,cancelledDate";
const CATALOG_FIELDS: &str = "id,identifier";
/// `description` of a catalogue item holds at most 60 characters.
const DESCRIPTION_MAX: usize = 60;
/// Remembered lines beyond which the memory starts afresh (a snapshot fills it again).
const LINES_KEPT: usize = 50_000;

/// Where the billed units of (agreement, product) live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdditionLine {
    /// The oldest addition in force: the one an update changes.
    addition_id: i64,
    /// Units on the product's other additions in force on the agreement.
    other_units: u64,
}

/// Lines by (agreement id, product id).
pub type AdditionLines = HashMap<(String, String), AdditionLine>;

fn units_of(addition: &Value) -> u64 {
    addition
        .get("quantity")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        .max(0.0)
        .round() as u64
}

/// ConnectWise's date literal in conditions.
fn condition_time(at: DateTime<Utc>) -> String {
    format!("[{}]", at.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// Bills every cycle: has a billing cycle and is not billed once.
pub(super) fn recurring(agreement: &Value) -> bool {
    agreement
        .get("billingCycle")
        .is_some_and(|c| c.get("id").is_some_and(|id| !id.is_null()))
        && !flag(agreement, "billOneTimeFlag")
}

/// The product's additions in force (oldest first) as one line and where it lives.
pub(super) fn line_of(additions: &[Value]) -> Option<(ServiceLine, AdditionLine)> {
    let mut ordered: Vec<(i64, &Value)> = additions
        .iter()
        .filter_map(|a| Some((a.get("id").and_then(Value::as_i64)?, a)))
        .collect();
    ordered.sort_by_key(|(id, _)| *id);
    let (&(first_id, first), rest) = ordered.split_first()?;
    let other_units: u64 = rest.iter().map(|(_, a)| units_of(a)).sum();
    Some((
        ServiceLine {
            units: units_of(first) + other_units,
            unit_cost: decimal(first.get("unitCost")),
        },
        AdditionLine {
            addition_id: first_id,
            other_units,
        },
    ))
}

impl ConnectWiseConnector {
    /// Every record of a list in pages of ConnectWise's largest size, whatever page size the
    /// connection reads its other lists with.
    async fn all_pages(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, PsaError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let (items, next) = self.page(path, query, page, MAX_PAGE).await?;
            let empty = items.is_empty();
            out.extend(items);
            match next {
                Some(n) if !empty => page = n,
                _ => return Ok(out),
            }
        }
    }

    fn remember_line(&self, agreement: &str, product: &str, line: Option<AdditionLine>) {
        let mut lines = self
            .addition_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = (agreement.to_string(), product.to_string());
        match line {
            Some(line) => {
                if lines.len() >= LINES_KEPT {
                    lines.clear();
                }
                lines.insert(key, line);
            }
            None => {
                lines.remove(&key);
            }
        }
    }

    fn remembered_line(&self, agreement: &str, product: &str) -> Option<AdditionLine> {
        self.addition_lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(agreement.to_string(), product.to_string()))
            .copied()
    }

    /// The product's additions in force on the agreement at `at`, read in one request (and
    /// remembered).
    async fn read_line(
        &self,
        agreement: i64,
        product: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<(ServiceLine, AdditionLine)>, PsaError> {
        let additions = self
            .all_pages(
                &format!("finance/agreements/{agreement}/additions"),
                &[
                    (
                        "conditions",
                        format!(
                            "product/id={product} and (cancelledDate=null or cancelledDate>{})",
                            condition_time(at)
                        ),
                    ),
                    ("fields", ADDITION_FIELDS.to_string()),
                    ("orderBy", "id asc".to_string()),
                ],
            )
            .await?;
        let line = line_of(&additions);
        self.remember_line(
            &agreement.to_string(),
            &product.to_string(),
            line.as_ref().map(|(_, l)| *l),
        );
        Ok(line)
    }

    /// Type, subcategory and category a new catalogue item takes: the newest active recurring
    /// item's, else the newest active item's.
    async fn catalog_template(&self) -> Result<Value, PsaError> {
        for conditions in [
            "inactiveFlag=false and recurringFlag=true",
            "inactiveFlag=false",
        ] {
            let found = self
                .get_all(
                    "procurement/catalog",
                    &[
                        ("conditions", conditions.to_string()),
                        ("fields", "id,type,subcategory,category".to_string()),
                        ("orderBy", "id desc".to_string()),
                    ],
                    1,
                )
                .await?;
            if let Some(item) = found.into_iter().next() {
                return Ok(item);
            }
        }
        Err(PsaError::Invalid(
            "ConnectWise's catalogue has no active item whose product type and subcategory a new service could take; create the service in ConnectWise (Procurement > Product Catalog)".into(),
        ))
    }

    /// `PATCH` the addition with `ops`.
    async fn patch_addition(
        &self,
        agreement: i64,
        addition: i64,
        ops: &Value,
    ) -> Result<(), PsaError> {
        self.call(
            Method::PATCH,
            &format!("finance/agreements/{agreement}/additions/{addition}"),
            &[],
            Some(ops),
            true,
        )
        .await?;
        Ok(())
    }
}

/// The JSON Patch that makes the line hold `units` (when given) at `unit_cost` (when given).
fn line_patch(
    agreement: &str,
    line: AdditionLine,
    units: Option<(u64, u64)>,
    unit_cost: Option<Decimal>,
) -> Result<Value, PsaError> {
    let mut ops = Vec::new();
    if let Some((_, to)) = units {
        let quantity = to.checked_sub(line.other_units).ok_or_else(|| {
            PsaError::Invalid(format!(
                "agreement {agreement} has the product on other additions with {} units, more than the {to} to bill; cancel them in ConnectWise",
                line.other_units
            ))
        })?;
        ops.push(json!({"op": "replace", "path": "quantity", "value": quantity}));
    }
    if let Some(cost) = unit_cost {
        ops.push(json!({"op": "replace", "path": "unitCost", "value": money(cost)}));
    }
    Ok(Value::Array(ops))
}

#[async_trait]
impl ContractBilling for ConnectWiseConnector {
    async fn find_service(&self, name: &str) -> Result<Option<ServiceRef>, PsaError> {
        let found = self
            .get_all(
                "procurement/catalog",
                &[
                    ("conditions", format!("identifier={}", quoted(name))),
                    ("fields", CATALOG_FIELDS.to_string()),
                    ("orderBy", "id asc".to_string()),
                ],
                MAX_PAGE as usize,
            )
            .await?;
        Ok(found
            .iter()
            .filter(|i| {
                i.get("identifier")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .find_map(|i| {
                Some(ServiceRef {
                    id: i.get("id").and_then(text)?,
                    name: i.get("identifier").and_then(Value::as_str)?.to_string(),
                })
            }))
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceRef, PsaError> {
        let template = self.catalog_template().await?;
        let reference = |key: &str| {
            ref_id(&template, key)
                .and_then(|id| id.parse::<i64>().ok())
                .map_or(Value::Null, |id| json!({"id": id}))
        };
        let mut body = json!({
            "identifier": spec.name,
            "description": spec.name.chars().take(DESCRIPTION_MAX).collect::<String>(),
            "customerDescription": spec.name,
            "type": reference("type"),
            "subcategory": reference("subcategory"),
            "productClass": "Service",
            "price": money(spec.unit_price),
            "cost": money(spec.unit_cost),
            "recurringFlag": true,
            "recurringRevenue": money(spec.unit_price),
            "recurringCost": money(spec.unit_cost),
            "taxableFlag": false,
        });
        let category = reference("category");
        if !category.is_null() {
            body["category"] = category;
        }
        let answer = self
            .call(Method::POST, "procurement/catalog", &[], Some(&body), true)
            .await?;
        let id = answer.body.get("id").and_then(text).ok_or_else(|| {
            PsaError::Invalid("ConnectWise created the catalogue item without an id".into())
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
        let product = num("service", service_id)?;
        // An id that is not a number names no agreement: it stays absent (missing).
        let mut ids: Vec<i64> = contract_ids
            .iter()
            .filter_map(|id| id.trim().parse::<i64>().ok())
            .filter(|id| *id > 0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let today = at.format("%Y-%m-%d").to_string();
        let mut billable = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let agreements = self
                .all_pages(
                    "finance/agreements",
                    &[
                        ("conditions", format!("id in ({list})")),
                        ("fields", AGREEMENT_FIELDS.to_string()),
                        ("orderBy", "id asc".to_string()),
                    ],
                )
                .await?;
            for a in &agreements {
                let (Some(contract), Some(company)) =
                    (contract_of(a, &today), ref_id(a, "company"))
                else {
                    continue;
                };
                let billable_type = recurring(a);
                if contract.active && billable_type {
                    billable.push(contract.id.clone());
                }
                snapshot.contracts.insert(
                    contract.id,
                    BillingContract {
                        company_id: company,
                        state: ContractState::Found {
                            active: contract.active,
                            billable_type,
                        },
                    },
                );
            }
        }
        for contract in billable {
            let agreement = num("contract", &contract)?;
            if let Some((line, _)) = self.read_line(agreement, product, at).await? {
                snapshot.lines.insert(contract, line);
            }
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
        let agreement = num("contract", contract_id)?;
        let body = json!({
            "product": {"id": num("service", service_id)?},
            "quantity": units,
            "billCustomer": "Billable",
            "unitPrice": money(unit_price),
            "unitCost": money(unit_cost),
            "effectiveDate": at.format("%Y-%m-%dT00:00:00Z").to_string(),
        });
        let answer = self
            .call(
                Method::POST,
                &format!("finance/agreements/{agreement}/additions"),
                &[],
                Some(&body),
                true,
            )
            .await?;
        // A product already on the agreement keeps its older addition as the one to change;
        // the next snapshot finds both.
        if self.remembered_line(contract_id, service_id).is_none()
            && let Some(id) = answer.body.get("id").and_then(Value::as_i64)
        {
            self.remember_line(
                contract_id,
                service_id,
                Some(AdditionLine {
                    addition_id: id,
                    other_units: 0,
                }),
            );
        }
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
        if units.is_none() && unit_cost.is_none() {
            return Ok(());
        }
        let agreement = num("contract", contract_id)?;
        let product = num("service", service_id)?;
        let not_on_agreement = || {
            PsaError::NotFound(format!(
                "product {service_id} is not on ConnectWise agreement {contract_id}"
            ))
        };
        let remembered = self.remembered_line(contract_id, service_id);
        let line = match remembered {
            Some(line) => line,
            None => {
                self.read_line(agreement, product, at)
                    .await?
                    .ok_or_else(not_on_agreement)?
                    .1
            }
        };
        let ops = line_patch(contract_id, line, units, unit_cost)?;
        match self.patch_addition(agreement, line.addition_id, &ops).await {
            // The remembered addition is gone (deleted in ConnectWise): read the line again and
            // set the absolute values there.
            Err(PsaError::NotFound(_)) if remembered.is_some() => {
                let line = self
                    .read_line(agreement, product, at)
                    .await?
                    .ok_or_else(not_on_agreement)?
                    .1;
                let ops = line_patch(contract_id, line, units, unit_cost)?;
                self.patch_addition(agreement, line.addition_id, &ops).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn recurring_agreements_have_a_billing_cycle_and_bill_more_than_once() {
        let monthly =
            json!({"billingCycle": {"id": 1, "name": "Monthly"}, "billOneTimeFlag": false});
        assert!(recurring(&monthly));
        assert!(!recurring(
            &json!({"billingCycle": {"id": 1}, "billOneTimeFlag": true})
        ));
        assert!(!recurring(&json!({"billOneTimeFlag": false})));
        assert!(!recurring(&json!({"billingCycle": null})));
    }

    #[test]
    fn a_product_on_several_additions_is_one_line_changed_on_the_oldest() {
        let additions = [
            json!({"id": 9, "quantity": 5.0, "unitCost": 2.0}),
            json!({"id": 3, "quantity": 25.0, "unitCost": 1.2}),
        ];
        let (line, at) = line_of(&additions).unwrap();
        assert_eq!(line.units, 30);
        assert_eq!(line.unit_cost, Decimal::from_str("1.2").unwrap());
        assert_eq!(
            at,
            AdditionLine {
                addition_id: 3,
                other_units: 5
            }
        );
        assert_eq!(
            line_patch("44", at, Some((30, 40)), None).unwrap(),
            json!([{"op": "replace", "path": "quantity", "value": 35}])
        );
        assert!(matches!(
            line_patch("44", at, Some((30, 4)), None),
            Err(PsaError::Invalid(_))
        ));
        assert_eq!(line_of(&[]), None);
    }
}
