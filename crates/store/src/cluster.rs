//! What the nodes of a cluster share beyond the queue: leases on periodic jobs.

use crate::Millis;
use crate::db::{Store, with_write};
use crate::error::StoreError;

impl Store {
    /// Take or renew the lease on job `name` for `holder` until `now + lease_ms`. True when
    /// `holder` holds it now: it was free, expired, or already this holder's. One statement,
    /// so two nodes racing for an expired lease cannot both win.
    pub async fn hold_job(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let won: Option<String> = with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO job_leases (name, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE job_leases.holder = excluded.holder OR job_leases.until <= $4 \
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(won.as_deref() == Some(holder))
    }

    /// Give the lease on `name` up (at shutdown), so another node takes the job at once
    /// rather than after the lease runs out. Does nothing unless `holder` holds it.
    pub async fn release_job(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE job_leases SET until = 0 WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Who holds the lease on `name` and until when, if anyone ever took it.
    pub async fn job_lease(&self, name: &str) -> Result<Option<(String, Millis)>, StoreError> {
        with_write!(self, pool => {
            Ok(sqlx::query_as("SELECT holder, until FROM job_leases WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?)
        })
    }
}
