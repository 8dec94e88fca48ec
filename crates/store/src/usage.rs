//! Usage reports and the high-water mark of each billing period.
//!
//! A report is stored and the period's mark raised in **one transaction**, so the mark always
//! equals the highest report of the period, even across a crash. The period is the partner's
//! (`partners.billing_time_zone`, `billing_anchor_day`; `core::billing::BillingCalendar`),
//! computed when the report arrives: a later change of calendar applies to later reports. The
//! mark is raised inside the upsert (`core::billing::raise_high_water` in SQL), so concurrent
//! reports on several nodes cannot lower it.

use psabridge_core::billing::BillingCalendar;
use psabridge_core::usage::NewUsage;
use sqlx::Row;

use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};
use crate::ingest::Outcome;
use crate::{Millis, millis};

/// One client's highest count of one metric in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighWater {
    pub client_id: String,
    pub metric: String,
    pub period_key: String,
    pub period_start: Millis,
    pub period_end: Millis,
    pub units: u64,
    /// How many reports made the mark (new ids only).
    pub reports: u64,
    pub updated_at: Millis,
}

impl Store {
    /// A partner's billing calendar.
    pub async fn billing_calendar(&self, partner: &str) -> Result<BillingCalendar, StoreError> {
        let row: Option<(String, i64)> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT billing_time_zone, billing_anchor_day FROM partners WHERE id = $1",
            )
            .bind(partner)
            .fetch_optional(pool)
            .await?
        });
        let (zone, anchor) =
            row.ok_or_else(|| StoreError::NotFound(format!("partner '{partner}'")))?;
        let anchor = u8::try_from(anchor).unwrap_or(0);
        BillingCalendar::new(&zone, anchor)
            .map_err(|e| corrupt(format!("billing calendar of partner '{partner}': {e}")))
    }

    /// Change a partner's billing calendar (checked by the caller with `BillingCalendar::new`).
    pub async fn set_billing_calendar(
        &self,
        partner: &str,
        calendar: &BillingCalendar,
    ) -> Result<(), StoreError> {
        let changed = with_write!(self, pool => {
            sqlx::query(
                "UPDATE partners SET billing_time_zone = $2, billing_anchor_day = $3 WHERE id = $1",
            )
            .bind(partner)
            .bind(calendar.time_zone().name())
            .bind(i64::from(calendar.anchor_day()))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound(format!("partner '{partner}'")));
        }
        Ok(())
    }

    /// Store a partner's usage reports and raise their periods' marks, in one transaction.
    /// A report whose id the partner sent before is a [`Outcome::Duplicate`] and changes nothing.
    /// Unknown clients are registered (unmapped), as events do.
    pub async fn record_usage(
        &self,
        partner: &str,
        reports: &[NewUsage],
        received_at: Millis,
    ) -> Result<Vec<Outcome>, StoreError> {
        let calendar = self.billing_calendar(partner).await?;
        let outcomes = with_tx!(self, tx => {
            let mut outcomes = Vec::with_capacity(reports.len());
            for r in reports {
                let period = calendar.period_of(r.observed_at);
                let units = i64::try_from(r.units).map_err(|_| corrupt("units out of range"))?;
                let inserted = sqlx::query(
                    "INSERT INTO usage_reports \
                     (partner_id, id, client_id, metric, units, observed_at, period_key, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (partner_id, id) DO NOTHING",
                )
                .bind(partner)
                .bind(&r.id)
                .bind(&r.client)
                .bind(&r.metric)
                .bind(units)
                .bind(millis(r.observed_at))
                .bind(&period.key)
                .bind(received_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    outcomes.push(Outcome::Duplicate);
                    continue;
                }
                sqlx::query(
                    "INSERT INTO clients (partner_id, id, name, created_at) VALUES ($1, $2, $2, $3) \
                     ON CONFLICT (partner_id, id) DO NOTHING",
                )
                .bind(partner)
                .bind(&r.client)
                .bind(received_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO usage_high_water \
                     (partner_id, client_id, metric, period_key, period_start, period_end, units, reports, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8) \
                     ON CONFLICT (partner_id, period_key, period_start, client_id, metric) DO UPDATE SET \
                     units = CASE WHEN excluded.units > usage_high_water.units \
                     THEN excluded.units ELSE usage_high_water.units END, reports = usage_high_water.reports + 1, \
                     updated_at = excluded.updated_at",
                )
                .bind(partner)
                .bind(&r.client)
                .bind(&r.metric)
                .bind(&period.key)
                .bind(millis(period.start))
                .bind(millis(period.end))
                .bind(units)
                .bind(received_at)
                .execute(&mut *tx)
                .await?;
                outcomes.push(Outcome::Accepted);
            }
            outcomes
        });
        Ok(outcomes)
    }

    /// A partner's marks of one period (`period_key` like `2026-12`), by client and metric.
    pub async fn high_water_marks(
        &self,
        partner: &str,
        period_key: &str,
    ) -> Result<Vec<HighWater>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT client_id, metric, period_key, period_start, period_end, units, reports, updated_at \
                 FROM usage_high_water WHERE partner_id = $1 AND period_key = $2 \
                 ORDER BY client_id, metric, period_start",
            )
            .bind(partner)
            .bind(period_key)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(HighWater {
                        client_id: r.try_get("client_id")?,
                        metric: r.try_get("metric")?,
                        period_key: r.try_get("period_key")?,
                        period_start: r.try_get("period_start")?,
                        period_end: r.try_get("period_end")?,
                        units: r.try_get::<i64, _>("units")?.max(0) as u64,
                        reports: r.try_get::<i64, _>("reports")?.max(0) as u64,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect()
        })
    }
}
