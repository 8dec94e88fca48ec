//! Contract billing settings and syncs: the partner's billing calendar and nightly hour, the
//! contract service a connection bills usage as, billing per mapping, and starting a sync.
//!
//! Money is taken as a JSON number or a decimal string (`2.5`, `"2.50"`): never negative, at
//! most four decimal places (what the PSAs store). A mapping can bill only once it names a
//! contract: the contract belongs to the mapping (checked in the PSA when the mapping is
//! saved), billing only says whether and at what price to bill on it.

use std::str::FromStr;

use psabridge_core::billing::{BillingCalendar, CalendarError, ClientBilling, ServiceDefaults};
use psabridge_core::event::FieldError;
use psabridge_engine::billing::{self, Silent, StartedBy};
use psabridge_identity::Permission;
use psabridge_store::billing::{BillingLine, BillingRun, BillingService};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::OpsError;
use crate::input::now;
use crate::time::Timestamp;

/// Longest service name (Autotask's limit; the others allow as much or more).
pub const MAX_SERVICE_NAME: usize = 150;

/// The hour a nightly sync runs at when the partner has not chosen one (local time).
pub const DEFAULT_SYNC_HOUR: u8 = 2;

/// The contract service a connection bills usage as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingServiceRequest {
    /// The service's name in the PSA's catalogue (found by name, created when allowed).
    pub service_name: String,
    /// Which usage metric is billed (`users`, `devices`).
    #[serde(default = "users")]
    pub metric: String,
    pub unit_cost: Option<Value>,
    pub unit_price: Option<Value>,
    /// Create the service in the PSA when no service of that name exists.
    #[serde(default)]
    pub create_if_missing: bool,
}

fn users() -> String {
    "users".into()
}

/// Billing on one mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingBillingRequest {
    pub enabled: bool,
    /// Whether the service may be put on the contract when it is not on it yet.
    #[serde(default)]
    pub add_service: bool,
    /// This client's cost and price, instead of the connection's.
    pub unit_cost: Option<Value>,
    pub unit_price: Option<Value>,
}

/// How the partner's billing periods are laid out, and when the nightly sync runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingCalendarRequest {
    /// An IANA time zone name (`Europe/Berlin`).
    pub time_zone: String,
    /// The day of the month periods start on (1–28).
    #[serde(default = "first_day")]
    pub anchor_day: u8,
    /// The local hour (0–23) of the nightly sync; left out, it stays as it is.
    pub sync_hour: Option<u8>,
}

fn first_day() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingServiceView {
    pub service_name: String,
    pub metric: String,
    pub unit_cost: String,
    pub unit_price: String,
    pub create_if_missing: bool,
}

impl BillingServiceView {
    pub fn of(s: &BillingService) -> BillingServiceView {
        BillingServiceView {
            service_name: s.defaults.name.clone(),
            metric: s.metric.clone(),
            unit_cost: s.defaults.unit_cost.to_string(),
            unit_price: s.defaults.unit_price.to_string(),
            create_if_missing: s.create_if_missing,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingBillingView {
    pub enabled: bool,
    pub contract_id: Option<String>,
    pub add_service: bool,
    pub unit_cost: Option<String>,
    pub unit_price: Option<String>,
}

impl MappingBillingView {
    fn of(enabled: bool, c: &ClientBilling) -> MappingBillingView {
        MappingBillingView {
            enabled,
            contract_id: c.contract_id.clone(),
            add_service: c.add_service,
            unit_cost: c.unit_cost.map(|d| d.to_string()),
            unit_price: c.unit_price.map(|d| d.to_string()),
        }
    }
}

/// One mapping of a connection as billing sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedBillingView {
    pub client_id: String,
    pub company_id: String,
    #[serde(flatten)]
    pub billing: MappingBillingView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingCalendarView {
    pub time_zone: String,
    pub anchor_day: u8,
    pub sync_hour: u8,
    /// When the nightly sync runs next (unknown until the scheduler first sees the partner).
    pub next_sync_at: Option<Timestamp>,
}

/// A money amount given as a JSON number or a decimal string, not negative.
pub fn money(v: &Option<Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    let text = match v {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => return None,
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a number such as 2.50"));
            return None;
        }
    };
    match Decimal::from_str(&text) {
        Ok(d) if d.is_sign_negative() => {
            errors.push(FieldError::new(field, "must not be negative"));
            None
        }
        Ok(d) if d.scale() > 4 => {
            errors.push(FieldError::new(field, "must have at most 4 decimal places"));
            None
        }
        Ok(d) => Some(d.normalize()),
        Err(_) => {
            errors.push(FieldError::new(field, "must be a number such as 2.50"));
            None
        }
    }
}

impl Ops {
    /// The partner's billing calendar and nightly sync hour.
    pub async fn billing_calendar(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<BillingCalendarView, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        self.calendar_view(partner).await
    }

    async fn calendar_view(&self, partner: &str) -> Result<BillingCalendarView, OpsError> {
        let calendar = self.store.billing_calendar(partner).await?;
        let (hour, next) = self.store.billing_schedule(partner).await?;
        Ok(BillingCalendarView {
            time_zone: calendar.time_zone().name().to_string(),
            anchor_day: calendar.anchor_day(),
            sync_hour: hour,
            next_sync_at: Timestamp::opt(next),
        })
    }

    /// Change the billing calendar (and the nightly hour, when given); the next nightly sync
    /// is moved to the new hour in the new zone.
    pub async fn put_billing_calendar(
        &self,
        acting: &Acting,
        partner: &str,
        req: BillingCalendarRequest,
    ) -> Result<BillingCalendarView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let mut errors = Vec::new();
        let calendar = BillingCalendar::new(&req.time_zone, req.anchor_day)
            .map_err(|e| {
                let field = match e {
                    CalendarError::UnknownTimeZone(_) => "time_zone",
                    CalendarError::AnchorDay(_) => "anchor_day",
                };
                errors.push(FieldError::new(field, e.to_string()));
            })
            .ok();
        if req.sync_hour.is_some_and(|h| h > 23) {
            errors.push(FieldError::new("sync_hour", "must be an hour from 0 to 23"));
        }
        OpsError::check(errors)?;
        let calendar = calendar.ok_or_else(|| OpsError::Internal("calendar checked".into()))?;
        let before = self.calendar_view(partner).await?;
        let hour = req.sync_hour.unwrap_or(before.sync_hour);
        self.store.set_billing_calendar(partner, &calendar).await?;
        let next = psabridge_core::billing::next_sync_at(&calendar, hour, chrono::Utc::now());
        self.store
            .set_billing_schedule(partner, hour, next.timestamp_millis())
            .await?;
        let after = self.calendar_view(partner).await?;
        self.audit(
            acting,
            Some(partner),
            "billing_calendar.put",
            "billing-calendar",
            Some(&snapshot(&before)),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// The contract service a connection bills usage as, if one is set.
    pub async fn billing_service(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<Option<BillingServiceView>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .billing_service(connection)
            .await?
            .as_ref()
            .map(BillingServiceView::of))
    }

    /// Set the contract service a connection bills usage as.
    pub async fn put_billing_service(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        req: BillingServiceRequest,
    ) -> Result<BillingServiceView, OpsError> {
        let connection = self
            .connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let mut errors = Vec::new();
        let name = req.service_name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_SERVICE_NAME {
            errors.push(FieldError::new(
                "service_name",
                format!("must be 1 to {MAX_SERVICE_NAME} characters"),
            ));
        }
        if !psabridge_core::usage::valid_metric(&req.metric)
            || req.metric.len() > psabridge_core::usage::MAX_METRIC_LEN
        {
            errors.push(FieldError::new(
                "metric",
                "must be lower-case letters, digits, '_', '.' or '-' (e.g. users, devices)",
            ));
        }
        let unit_cost = money(&req.unit_cost, "unit_cost", &mut errors);
        let unit_price = money(&req.unit_price, "unit_price", &mut errors);
        if unit_cost.is_none() && errors.iter().all(|e| e.path != "unit_cost") {
            errors.push(FieldError::new("unit_cost", "is required"));
        }
        if unit_price.is_none() && errors.iter().all(|e| e.path != "unit_price") {
            errors.push(FieldError::new("unit_price", "is required"));
        }
        OpsError::check(errors)?;
        let service = BillingService {
            connection_id: connection.id,
            defaults: ServiceDefaults {
                name,
                unit_cost: unit_cost.unwrap_or_default(),
                unit_price: unit_price.unwrap_or_default(),
            },
            metric: req.metric,
            create_if_missing: req.create_if_missing,
            updated_at: now(),
        };
        let before = self
            .store
            .billing_service(connection.id)
            .await?
            .map(|b| BillingServiceView::of(&b));
        self.store.put_billing_service(&service).await?;
        let after = BillingServiceView::of(&service);
        self.audit(
            acting,
            Some(partner),
            "billing_service.put",
            &format!("connection:{}", connection.id),
            before.as_ref().map(snapshot).as_ref(),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// Billing of every mapping of a connection.
    pub async fn mapping_billings(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<Vec<MappedBillingView>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .mapping_billings(partner, connection)
            .await?
            .into_iter()
            .map(|m| MappedBillingView {
                client_id: m.client_id,
                company_id: m.company_id,
                billing: MappingBillingView::of(m.enabled, &m.billing),
            })
            .collect())
    }

    /// Billing on or off for one mapping, with the client's own cost and price.
    pub async fn put_mapping_billing(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        connection: i64,
        req: MappingBillingRequest,
    ) -> Result<MappingBillingView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let mut errors = Vec::new();
        let unit_cost = money(&req.unit_cost, "unit_cost", &mut errors);
        let unit_price = money(&req.unit_price, "unit_price", &mut errors);
        OpsError::check(errors)?;
        let mapping = self
            .store
            .mapping_billings(partner, connection)
            .await?
            .into_iter()
            .find(|m| m.client_id == client)
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "mapping of client '{client}' on connection {connection}"
                ))
            })?;
        if req.enabled && mapping.billing.contract_id.is_none() {
            return Err(OpsError::field(
                "enabled",
                "the mapping names no contract: set its contract_id first (…/companies/{company}/contracts lists them)",
            ));
        }
        let billing = ClientBilling {
            contract_id: mapping.billing.contract_id.clone(),
            add_service: req.add_service,
            unit_cost,
            unit_price,
        };
        let before = MappingBillingView::of(mapping.enabled, &mapping.billing);
        self.store
            .put_mapping_billing(partner, connection, client, req.enabled, &billing)
            .await?;
        let after = MappingBillingView::of(req.enabled, &billing);
        self.audit(
            acting,
            Some(partner),
            "mapping_billing.put",
            &format!("mapping:{client}:{connection}"),
            Some(&snapshot(&before)),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// Start a billing sync of the partner (a dry run only reports what it would write). It
    /// goes on in the background; the answer is the run's id and a handle that ends with it.
    pub async fn start_billing_sync(
        &self,
        acting: &Acting,
        partner: &str,
        started_by: StartedBy,
        dry_run: bool,
    ) -> Result<(i64, tokio::task::JoinHandle<()>), OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let run = billing::begin(&self.engine, partner, started_by, dry_run)
            .await
            .map_err(|e| OpsError::Internal(format!("starting a billing sync: {e}")))?;
        self.audit(
            acting,
            Some(partner),
            "billing.sync",
            &format!("billing_run:{run}"),
            None,
            Some(&serde_json::json!({"dry_run": dry_run})),
        )
        .await;
        let engine = self.engine.clone();
        let partner = partner.to_string();
        let task = tokio::spawn(async move {
            if let Err(e) = billing::finish(&engine, &partner, run, dry_run, &Silent).await {
                tracing::warn!(partner, run, error = %e, "billing sync failed");
            }
        });
        Ok((run, task))
    }

    /// The partner's latest billing runs, newest first.
    pub async fn billing_runs(
        &self,
        acting: &Acting,
        partner: &str,
        limit: i64,
    ) -> Result<Vec<BillingRun>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(self.store.billing_runs(partner, limit).await?)
    }

    /// One billing run and its report, per client.
    pub async fn billing_run(
        &self,
        acting: &Acting,
        partner: &str,
        run: i64,
    ) -> Result<(BillingRun, Vec<BillingLine>), OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(self.store.billing_run(partner, run).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Value) -> (Option<Decimal>, Vec<FieldError>) {
        let mut errors = Vec::new();
        let d = money(&Some(v), "unit_cost", &mut errors);
        (d, errors)
    }

    #[test]
    fn money_is_a_number_or_a_decimal_string_never_negative() {
        assert_eq!(read(Value::from(2.5)).0, Some(Decimal::new(25, 1)));
        assert_eq!(read(Value::from("2.50")).0, Some(Decimal::new(25, 1)));
        assert_eq!(read(Value::from(" 3 ")).0, Some(Decimal::from(3)));
        assert_eq!(read(Value::from("")).0, None);
        assert!(read(Value::from("")).1.is_empty(), "blank is 'not given'");
        for bad in [
            Value::from(-1),
            Value::from("-0.5"),
            Value::from("1.23456"),
            Value::from("two"),
            Value::Bool(true),
        ] {
            let (d, errors) = read(bad.clone());
            assert_eq!(d, None, "{bad}");
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].path, "unit_cost");
        }
    }
}
