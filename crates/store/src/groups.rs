//! The group table: which PSA ticket is open for each group key.
//!
//! At most one open row per (connection, group key), enforced by a unique index. Rows are
//! opened when we create a ticket, and closed when the PSA tells us (webhook), when a sweep
//! reads the ticket closed, or when a verification before a note finds it closed.

use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_write};
use crate::error::StoreError;

/// An open group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGroup {
    pub id: i64,
    pub connection_id: i64,
    pub group_key: String,
    pub ticket_id: String,
    pub ticket_number: Option<String>,
    pub opened_at: Millis,
    pub confirmed_open_at: Millis,
    pub notes: i64,
    /// The alerts the ticket stands for (see `core::alerts`); `None` when unknown.
    pub open_alerts: Option<Vec<String>>,
}

fn group_from_row<R: Row>(r: &R) -> Result<OpenGroup, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OpenGroup {
        id: r.try_get("id")?,
        connection_id: r.try_get("connection_id")?,
        group_key: r.try_get("group_key")?,
        ticket_id: r.try_get("ticket_id")?,
        ticket_number: r.try_get("ticket_number")?,
        opened_at: r.try_get("opened_at")?,
        confirmed_open_at: r.try_get("confirmed_open_at")?,
        notes: r.try_get("notes")?,
        open_alerts: r
            .try_get::<Option<String>, _>("open_alerts")?
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// The most recent ticket of a group that has none open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedGroup {
    pub ticket_id: String,
    pub ticket_number: Option<String>,
    pub closed_at: Millis,
}

const GROUP_COLUMNS: &str = "id, connection_id, group_key, ticket_id, ticket_number, opened_at, confirmed_open_at, notes, open_alerts";

/// Open groups of a connection due a state check, stalest first (`$1` connection, `$2`
/// confirmed before, `$3` how many): a range scan of `ticket_groups_open_checked`.
pub(crate) const GROUPS_TO_SWEEP_SQL: &str = "SELECT id, connection_id, group_key, ticket_id, ticket_number, opened_at, confirmed_open_at, notes, open_alerts \
     FROM ticket_groups WHERE connection_id = $1 AND state = 'open' \
     AND (confirmed_open_at < $2 OR ticket_number IS NULL) ORDER BY confirmed_open_at LIMIT $3";

impl Store {
    /// The open group of a key, if any. (The previous delivery of the key committed its
    /// group before this one could be claimed, so a reader sees it.)
    pub async fn open_group(
        &self,
        connection_id: i64,
        group_key: &str,
    ) -> Result<Option<OpenGroup>, StoreError> {
        with_read!(self, pool => {
            let sql = format!("SELECT {GROUP_COLUMNS} FROM ticket_groups WHERE connection_id = $1 AND group_key = $2 AND state = 'open'");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(connection_id).bind(group_key).fetch_optional(pool).await?;
            row.as_ref().map(group_from_row).transpose()
        })
    }

    /// The group's most recently closed ticket (for the re-fire policy), if any.
    pub async fn last_closed_group(
        &self,
        connection_id: i64,
        group_key: &str,
    ) -> Result<Option<ClosedGroup>, StoreError> {
        with_read!(self, pool => {
            let row = sqlx::query(
                "SELECT ticket_id, ticket_number, closed_at FROM ticket_groups \
                 WHERE connection_id = $1 AND group_key = $2 AND state = 'closed' \
                 ORDER BY closed_at DESC, id DESC LIMIT 1",
            )
            .bind(connection_id)
            .bind(group_key)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(ClosedGroup {
                    ticket_id: r.try_get("ticket_id")?,
                    ticket_number: r.try_get("ticket_number")?,
                    closed_at: r.try_get::<Option<i64>, _>("closed_at")?.unwrap_or_default(),
                })
            })
            .transpose()
        })
    }

    /// The PSA says these tickets are closed: close their groups. Returns how many closed.
    pub async fn close_tickets(
        &self,
        connection_id: i64,
        ticket_ids: &[String],
        now: Millis,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        with_write!(self, pool => {
            for t in ticket_ids {
                n += sqlx::query(
                    "UPDATE ticket_groups SET state = 'closed', closed_at = $1 WHERE connection_id = $2 AND ticket_id = $3 AND state = 'open'",
                )
                .bind(now)
                .bind(connection_id)
                .bind(t)
                .execute(pool)
                .await?
                .rows_affected();
            }
        });
        Ok(n)
    }

    /// The PSA says these tickets are open (with their numbers, when it said them).
    pub async fn confirm_open(
        &self,
        connection_id: i64,
        tickets: &[(String, Option<String>)],
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            for (t, number) in tickets {
                sqlx::query(
                    "UPDATE ticket_groups SET confirmed_open_at = $1, ticket_number = COALESCE(ticket_number, $2) \
                     WHERE connection_id = $3 AND ticket_id = $4 AND state = 'open'",
                )
                .bind(now)
                .bind(number)
                .bind(connection_id)
                .bind(t)
                .execute(pool)
                .await?;
            }
        });
        self.record_ticket_numbers(connection_id, tickets).await
    }

    /// Fill in ticket numbers learned after the create (the create answers with an id only).
    pub async fn record_ticket_numbers(
        &self,
        connection_id: i64,
        tickets: &[(String, Option<String>)],
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            for (t, number) in tickets {
                let Some(number) = number else { continue };
                sqlx::query(
                    "UPDATE ticket_groups SET ticket_number = $1 WHERE connection_id = $2 AND ticket_id = $3 AND ticket_number IS NULL",
                )
                .bind(number)
                .bind(connection_id)
                .bind(t)
                .execute(pool)
                .await?;
                sqlx::query(
                    "UPDATE deliveries SET ticket_number = $1 WHERE connection_id = $2 AND ticket_id = $3 AND ticket_number IS NULL",
                )
                .bind(number)
                .bind(connection_id)
                .bind(t)
                .execute(pool)
                .await?;
            }
        });
        Ok(())
    }

    /// Open groups of a connection due a state check: not confirmed since `confirmed_before`,
    /// or whose ticket number we do not know yet. Oldest confirmation first.
    pub async fn groups_to_sweep(
        &self,
        connection_id: i64,
        confirmed_before: Millis,
        limit: i64,
    ) -> Result<Vec<OpenGroup>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(GROUPS_TO_SWEEP_SQL).bind(connection_id).bind(confirmed_before).bind(limit).fetch_all(pool).await?;
            rows.iter().map(group_from_row).collect()
        })
    }

    /// Open groups of a connection (for the API and tests).
    pub async fn open_groups(&self, connection_id: i64) -> Result<Vec<OpenGroup>, StoreError> {
        with_read!(self, pool => {
            let sql = format!("SELECT {GROUP_COLUMNS} FROM ticket_groups WHERE connection_id = $1 AND state = 'open' ORDER BY id");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(connection_id).fetch_all(pool).await?;
            rows.iter().map(group_from_row).collect()
        })
    }
}
