//! Contract billing settings, the nightly schedule, and the reports of each sync.
//!
//! Money is kept as decimal text (`"2.50"`), read back through `rust_decimal`, so neither
//! engine rounds it. A sync's report is written line by line as the sync goes, so a run cut
//! short by a crash still shows what it did before; the next run recomputes everything from
//! the PSA and writes only what still differs.

use std::str::FromStr;

use psabridge_core::billing::{ClientBilling, ServiceDefaults};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_write};
use crate::error::{StoreError, corrupt};

/// The contract service a connection bills usage as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingService {
    pub connection_id: i64,
    pub defaults: ServiceDefaults,
    /// The usage metric it counts (`users`, `devices`).
    pub metric: String,
    /// Create the service in the PSA's catalogue when no service has its name.
    pub create_if_missing: bool,
    pub updated_at: Millis,
}

/// A mapping's billing, with the mapping it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingBilling {
    pub connection_id: i64,
    pub client_id: String,
    pub company_id: String,
    pub enabled: bool,
    pub billing: ClientBilling,
}

/// One sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRun {
    pub id: i64,
    pub partner_id: String,
    pub started_by: String,
    pub dry_run: bool,
    pub period_key: String,
    pub status: String,
    pub error: Option<String>,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
}

/// What a sync did for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingLine {
    pub connection_id: i64,
    pub client_id: String,
    pub metric: String,
    /// added, updated, unchanged, skipped, failed; would_add / would_update on a dry run.
    pub outcome: String,
    /// Why it was skipped (`core::billing::SkipReason::as_str`).
    pub reason: Option<String>,
    pub units_before: Option<u64>,
    pub units_after: Option<u64>,
    pub cost_before: Option<Decimal>,
    pub cost_after: Option<Decimal>,
    /// The explanation or the PSA's error text.
    pub message: Option<String>,
}

fn money(text: Option<String>, what: &str) -> Result<Option<Decimal>, StoreError> {
    text.map(|t| {
        Decimal::from_str(&t).map_err(|_| corrupt(format!("{what}: {t:?} is not a number")))
    })
    .transpose()
}

fn count(v: Option<i64>) -> Option<u64> {
    v.map(|n| n.max(0) as u64)
}

impl Store {
    /// Set (or replace) the billing service of a connection.
    pub async fn put_billing_service(&self, s: &BillingService) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO billing_services (connection_id, name, metric, unit_cost, unit_price, create_if_missing, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (connection_id) DO UPDATE SET \
                 name = excluded.name, metric = excluded.metric, unit_cost = excluded.unit_cost, \
                 unit_price = excluded.unit_price, create_if_missing = excluded.create_if_missing, \
                 updated_at = excluded.updated_at",
            )
            .bind(s.connection_id)
            .bind(&s.defaults.name)
            .bind(&s.metric)
            .bind(s.defaults.unit_cost.to_string())
            .bind(s.defaults.unit_price.to_string())
            .bind(s.create_if_missing)
            .bind(s.updated_at)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("connection {}", s.connection_id)))?;
        });
        Ok(())
    }

    /// The billing service of a connection, if one is set.
    pub async fn billing_service(
        &self,
        connection_id: i64,
    ) -> Result<Option<BillingService>, StoreError> {
        let row = with_read!(self, pool => {
            sqlx::query(
                "SELECT name, metric, unit_cost, unit_price, create_if_missing, updated_at \
                 FROM billing_services WHERE connection_id = $1",
            )
            .bind(connection_id)
            .fetch_optional(pool)
            .await?
            .map(|r| -> Result<_, StoreError> {
                Ok((
                    r.try_get::<String, _>("name")?,
                    r.try_get::<String, _>("metric")?,
                    r.try_get::<String, _>("unit_cost")?,
                    r.try_get::<String, _>("unit_price")?,
                    r.try_get::<bool, _>("create_if_missing")?,
                    r.try_get::<i64, _>("updated_at")?,
                ))
            })
            .transpose()?
        });
        let Some((name, metric, cost, price, create_if_missing, updated_at)) = row else {
            return Ok(None);
        };
        Ok(Some(BillingService {
            connection_id,
            defaults: ServiceDefaults {
                name,
                unit_cost: money(Some(cost), "unit cost")?.unwrap_or_default(),
                unit_price: money(Some(price), "unit price")?.unwrap_or_default(),
            },
            metric,
            create_if_missing,
            updated_at,
        }))
    }

    /// Set a mapping's billing. NotFound when the client is not mapped on that connection.
    pub async fn put_mapping_billing(
        &self,
        partner: &str,
        connection_id: i64,
        client: &str,
        enabled: bool,
        billing: &ClientBilling,
    ) -> Result<(), StoreError> {
        let changed = with_write!(self, pool => {
            sqlx::query(
                "UPDATE mappings SET billing_enabled = $4, billing_add_service = $5, \
                 billing_unit_cost = $6, billing_unit_price = $7 \
                 WHERE partner_id = $1 AND connection_id = $2 AND client_id = $3",
            )
            .bind(partner)
            .bind(connection_id)
            .bind(client)
            .bind(enabled)
            .bind(billing.add_service)
            .bind(billing.unit_cost.map(|d| d.to_string()))
            .bind(billing.unit_price.map(|d| d.to_string()))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "mapping of client '{client}' on connection {connection_id}"
            )));
        }
        Ok(())
    }

    /// The billing of every mapping of a connection (billing on or off).
    pub async fn mapping_billings(
        &self,
        partner: &str,
        connection_id: i64,
    ) -> Result<Vec<MappingBilling>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT client_id, company_id, contract_id, billing_enabled, billing_add_service, \
                 billing_unit_cost, billing_unit_price FROM mappings \
                 WHERE partner_id = $1 AND connection_id = $2 ORDER BY client_id",
            )
            .bind(partner)
            .bind(connection_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(MappingBilling {
                        connection_id,
                        client_id: r.try_get("client_id")?,
                        company_id: r.try_get("company_id")?,
                        enabled: r.try_get("billing_enabled")?,
                        billing: ClientBilling {
                            contract_id: r.try_get("contract_id")?,
                            add_service: r.try_get("billing_add_service")?,
                            unit_cost: money(r.try_get("billing_unit_cost")?, "unit cost")?,
                            unit_price: money(r.try_get("billing_unit_price")?, "unit price")?,
                        },
                    })
                })
                .collect()
        })
    }

    /// Start a sync's report.
    pub async fn start_billing_run(
        &self,
        partner: &str,
        started_by: &str,
        dry_run: bool,
        period_key: &str,
        now: Millis,
    ) -> Result<i64, StoreError> {
        Ok(with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO billing_runs (partner_id, started_by, dry_run, period_key, status, started_at) \
                 VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
            )
            .bind(partner)
            .bind(started_by)
            .bind(dry_run)
            .bind(period_key)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("partner '{partner}'")))?
        }))
    }

    /// Add (or replace) one client's line of a report.
    pub async fn record_billing_line(&self, run: i64, l: &BillingLine) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO billing_run_lines (run_id, connection_id, client_id, metric, outcome, reason, \
                 units_before, units_after, cost_before, cost_after, message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (run_id, connection_id, client_id, metric) DO UPDATE SET \
                 outcome = excluded.outcome, reason = excluded.reason, units_before = excluded.units_before, \
                 units_after = excluded.units_after, cost_before = excluded.cost_before, \
                 cost_after = excluded.cost_after, message = excluded.message",
            )
            .bind(run)
            .bind(l.connection_id)
            .bind(&l.client_id)
            .bind(&l.metric)
            .bind(&l.outcome)
            .bind(&l.reason)
            .bind(l.units_before.map(|u| u as i64))
            .bind(l.units_after.map(|u| u as i64))
            .bind(l.cost_before.map(|d| d.to_string()))
            .bind(l.cost_after.map(|d| d.to_string()))
            .bind(&l.message)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Close a sync's report.
    pub async fn finish_billing_run(
        &self,
        run: i64,
        error: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE billing_runs SET status = $2, error = $3, finished_at = $4 WHERE id = $1",
            )
            .bind(run)
            .bind(if error.is_some() { "failed" } else { "finished" })
            .bind(error)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A partner's syncs, newest first.
    pub async fn billing_runs(
        &self,
        partner: &str,
        limit: i64,
    ) -> Result<Vec<BillingRun>, StoreError> {
        let rows: Vec<RunRow> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, partner_id, started_by, dry_run, period_key, status, error, started_at, finished_at \
                 FROM billing_runs WHERE partner_id = $1 ORDER BY id DESC LIMIT $2",
            )
                .bind(partner)
                .bind(limit.clamp(1, 500))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(run_of).collect())
    }

    /// One sync of a partner and its lines.
    pub async fn billing_run(
        &self,
        partner: &str,
        run: i64,
    ) -> Result<(BillingRun, Vec<BillingLine>), StoreError> {
        let (head, lines) = with_read!(self, pool => {
            let head: Option<RunRow> =
                sqlx::query_as(
                "SELECT id, partner_id, started_by, dry_run, period_key, status, error, started_at, finished_at \
                 FROM billing_runs WHERE partner_id = $1 AND id = $2",
            )
                    .bind(partner)
                    .bind(run)
                    .fetch_optional(pool)
                    .await?;
            let rows = sqlx::query(
                "SELECT connection_id, client_id, metric, outcome, reason, units_before, units_after, \
                 cost_before, cost_after, message FROM billing_run_lines WHERE run_id = $1 \
                 ORDER BY client_id, connection_id, metric",
            )
            .bind(run)
            .fetch_all(pool)
            .await?;
            let lines = rows
                .iter()
                .map(|r| {
                    Ok(BillingLine {
                        connection_id: r.try_get("connection_id")?,
                        client_id: r.try_get("client_id")?,
                        metric: r.try_get("metric")?,
                        outcome: r.try_get("outcome")?,
                        reason: r.try_get("reason")?,
                        units_before: count(r.try_get("units_before")?),
                        units_after: count(r.try_get("units_after")?),
                        cost_before: money(r.try_get("cost_before")?, "cost")?,
                        cost_after: money(r.try_get("cost_after")?, "cost")?,
                        message: r.try_get("message")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            (head, lines)
        });
        let head = head.ok_or_else(|| StoreError::NotFound(format!("billing run {run}")))?;
        Ok((run_of(head), lines))
    }

    /// The local hour of a partner's nightly sync and when it is next due (`None` until the
    /// scheduler first sees the partner).
    pub async fn billing_schedule(
        &self,
        partner: &str,
    ) -> Result<(u8, Option<Millis>), StoreError> {
        let row: Option<(i64, Option<i64>)> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT billing_sync_hour, billing_next_sync_at FROM partners WHERE id = $1",
            )
            .bind(partner)
            .fetch_optional(pool)
            .await?
        });
        let (hour, next) =
            row.ok_or_else(|| StoreError::NotFound(format!("partner '{partner}'")))?;
        Ok((hour.clamp(0, 23) as u8, next))
    }

    /// Set the local hour of a partner's nightly sync and when it is next due.
    pub async fn set_billing_schedule(
        &self,
        partner: &str,
        hour: u8,
        next_at: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE partners SET billing_sync_hour = $2, billing_next_sync_at = $3 WHERE id = $1")
                .bind(partner)
                .bind(i64::from(hour))
                .bind(next_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Partners whose nightly sync is due, with their sync hour and due time.
    pub async fn billing_syncs_due(
        &self,
        now: Millis,
    ) -> Result<Vec<(String, u8, Option<Millis>)>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>)> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, billing_sync_hour, billing_next_sync_at FROM partners \
                 WHERE billing_next_sync_at IS NULL OR billing_next_sync_at <= $1",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(p, h, at)| (p, h.clamp(0, 23) as u8, at))
            .collect())
    }

    /// Take a partner's due sync: move its due time from `seen` to `next`. True for exactly one
    /// caller across every node.
    pub async fn take_billing_sync(
        &self,
        partner: &str,
        seen: Option<Millis>,
        next: Millis,
    ) -> Result<bool, StoreError> {
        let taken = with_write!(self, pool => {
            sqlx::query(
                "UPDATE partners SET billing_next_sync_at = $3 WHERE id = $1 AND \
                 (billing_next_sync_at = $2 OR (billing_next_sync_at IS NULL AND $2 IS NULL))",
            )
            .bind(partner)
            .bind(seen)
            .bind(next)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }
}

type RunRow = (
    i64,
    String,
    String,
    bool,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

fn run_of(r: RunRow) -> BillingRun {
    let (id, partner_id, started_by, dry_run, period_key, status, error, started_at, finished_at) =
        r;
    BillingRun {
        id,
        partner_id,
        started_by,
        dry_run,
        period_key,
        status,
        error,
        started_at,
        finished_at,
    }
}
