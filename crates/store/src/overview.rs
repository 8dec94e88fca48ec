//! What a partner's dashboard shows, read in three aggregate queries: deliveries by state,
//! tickets and notes delivered per UTC day, and the age of the oldest delivery still waiting.

use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read};
use crate::error::StoreError;

const DAY_MS: i64 = 86_400_000;

/// A partner's deliveries at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryOverview {
    /// Every state that has deliveries, with how many (`pending`, `in_flight`, `retrying`,
    /// `delivered`, `dead`, `expired`).
    pub by_state: Vec<(String, i64)>,
    /// Deliveries delivered since the window's start: (UTC day as days since the epoch,
    /// what was done — the PSA's `created`, `noted`, `closed`, `reopened`, or the channel for
    /// email and chat — and how many).
    pub delivered_per_day: Vec<(i64, String, i64)>,
    /// When the oldest delivery still waiting (pending or retrying) was recorded.
    pub oldest_waiting_at: Option<Millis>,
}

impl Store {
    /// The dashboard's figures for `partner`, days counted from `since` (UTC).
    pub async fn delivery_overview(
        &self,
        partner: &str,
        since: Millis,
    ) -> Result<DeliveryOverview, StoreError> {
        with_read!(self, pool => {
            let by_state = sqlx::query(
                "SELECT state, COUNT(*) AS n FROM deliveries WHERE partner_id = $1 GROUP BY state ORDER BY state",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let delivered_per_day = sqlx::query(
                "SELECT delivered_at / $3 AS day, COALESCE(psa_action, channel) AS what, COUNT(*) AS n \
                 FROM deliveries WHERE partner_id = $1 AND state = 'delivered' AND delivered_at >= $2 \
                 GROUP BY delivered_at / $3, COALESCE(psa_action, channel) ORDER BY 1, 2",
            )
            .bind(partner)
            .bind(since)
            .bind(DAY_MS)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("day")?,
                    r.try_get::<String, _>("what")?,
                    r.try_get::<i64, _>("n")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let oldest_waiting_at: Option<i64> = sqlx::query(
                "SELECT MIN(created_at) AS oldest FROM deliveries \
                 WHERE partner_id = $1 AND state IN ('pending', 'retrying')",
            )
            .bind(partner)
            .fetch_one(pool)
            .await?
            .try_get("oldest")?;
            Ok(DeliveryOverview {
                by_state,
                delivered_per_day,
                oldest_waiting_at,
            })
        })
    }
}

impl Store {
    /// Clients whose latest failed-for-good delivery is newer than `since`, with its error:
    /// (client, error, when). The newest failure of each client, at most `limit` clients.
    pub async fn failing_clients(
        &self,
        partner: &str,
        since: Millis,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>, Millis)>, StoreError> {
        let rows: Vec<(String, Option<String>, Millis)> = with_read!(self, pool => {
            sqlx::query(
                "SELECT e.client_id, d.last_error, d.updated_at FROM deliveries d \
                 JOIN events e ON e.pk = d.event_pk \
                 WHERE d.partner_id = $1 AND d.state = 'dead' AND d.updated_at >= $2 \
                 ORDER BY d.id DESC LIMIT $3",
            )
            .bind(partner)
            .bind(since)
            .bind(limit * 20)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("last_error")?, r.try_get("updated_at")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut out: Vec<(String, Option<String>, Millis)> = Vec::new();
        for row in rows {
            if out.iter().any(|(c, ..)| *c == row.0) {
                continue;
            }
            out.push(row);
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }
}
