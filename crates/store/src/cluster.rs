//! What the nodes of a cluster share beyond the queue: leases on periodic jobs.

use crate::Millis;
use crate::db::{Store, with_read, with_write};
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

    /// Reserve up to `want` requests of `limit` for `connection_id` and `scope` in the budget
    /// slice starting at `window_start`: one statement, so racing nodes never together take
    /// more than `limit`. Returns how many were granted (0 when the slice is spent).
    pub async fn reserve_budget(
        &self,
        connection_id: i64,
        scope: &str,
        window_start: Millis,
        limit: u32,
        want: u32,
    ) -> Result<u32, StoreError> {
        let first = i64::from(want.min(limit));
        let granted: i64 = with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO connection_budgets \
                   (connection_id, scope, window_start, used, lim, last_grant) \
                 VALUES ($1, $2, $3, $4, $5, $4) \
                 ON CONFLICT (connection_id, scope, window_start) DO UPDATE SET \
                   last_grant = CASE WHEN connection_budgets.used >= excluded.lim THEN 0 \
                     WHEN $6 < excluded.lim - connection_budgets.used THEN $6 \
                     ELSE excluded.lim - connection_budgets.used END, \
                   used = connection_budgets.used + CASE WHEN connection_budgets.used >= excluded.lim THEN 0 \
                     WHEN $6 < excluded.lim - connection_budgets.used THEN $6 \
                     ELSE excluded.lim - connection_budgets.used END, \
                   lim = excluded.lim \
                 RETURNING last_grant",
            )
            .bind(connection_id)
            .bind(scope)
            .bind(window_start)
            .bind(first)
            .bind(i64::from(limit))
            .bind(i64::from(want))
            .fetch_one(pool)
            .await?
        });
        Ok(granted.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Forget budget slices that started before `before` (they can no longer be reserved from).
    pub async fn forget_budgets(&self, before: Millis) -> Result<u64, StoreError> {
        with_write!(self, pool => {
            Ok(sqlx::query("DELETE FROM connection_budgets WHERE window_start < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        })
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

/// The serving process's hold on a SQLite database: SQLite is single-node, so a second
/// `serve` (or `demo`) on the same file would claim and send the same deliveries twice. Held
/// as an exclusive lock on `<database>.lock` beside the file until dropped (the operating
/// system releases it when the process dies, however it dies).
#[derive(Debug)]
pub struct SingleNodeLock {
    _file: std::fs::File,
    pub path: std::path::PathBuf,
}

/// Take the single-node lock of a SQLite `url`; `Ok(None)` for PostgreSQL (many nodes may
/// share it) and for an in-memory database. Refused, naming the lock file, when another
/// process holds it. Command-line tools (`token`, `invite`, `billing sync`) do not take it:
/// they may run beside the server.
pub fn lock_single_node(url: &str) -> Result<Option<SingleNodeLock>, StoreError> {
    let Some(db) = crate::db::sqlite_path(url) else {
        return Ok(None);
    };
    if db.as_os_str() == ":memory:" || db.as_os_str().is_empty() {
        return Ok(None);
    }
    let mut path = db.clone().into_os_string();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot create the database directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            StoreError::Invalid(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SingleNodeLock { _file: file, path })),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Invalid(format!(
            "the SQLite database {} is in use by another PSA Bridge process (it holds {}); \
             SQLite runs one node only: stop the other process, or use PostgreSQL to run several nodes",
            db.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Invalid(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

impl Store {
    /// Pause connection `id` on every node until `until` (a later pause already recorded
    /// stands).
    pub async fn pause_connection(&self, id: i64, until: Millis) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO connection_pauses (connection_id, until) VALUES ($1, $2) \
                 ON CONFLICT (connection_id) DO UPDATE SET until = excluded.until \
                 WHERE connection_pauses.until < excluded.until",
            )
            .bind(id)
            .bind(until)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Connections some node paused past `now`.
    pub async fn paused_connections(&self, now: Millis) -> Result<Vec<i64>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT connection_id FROM connection_pauses WHERE until > $1")
                .bind(now)
                .fetch_all(pool)
                .await?)
        })
    }
}
