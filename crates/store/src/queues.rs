//! The queue heads: where claims look for work.
//!
//! Deliveries of one (connection, group key) run one at a time, oldest first. Instead of
//! finding each group's head among all unfinished deliveries on every claim, the head of every
//! group with unfinished work is kept in `delivery_queues` with the time it is due (its next
//! attempt while it waits, its lease's end while it is in flight). The row is written in the
//! same transaction that records, claims, finishes, fails, releases or replays a delivery of
//! the group, so a claim reads only due heads, one index range scan per connection (a *lane*),
//! and its cost grows with what it claims, never with the backlog.
//!
//! Lanes share the node's free slots through [`psabridge_core::fair::shares`]: round-robin,
//! each within the room its caller gives it (its concurrency cap, its budget, its breaker).

use psabridge_core::fair::{self, Lane};

use crate::db::{Store, with_read, with_tx};
use crate::error::StoreError;
use crate::outbox::Delivery;
use crate::{Engine, Millis};

/// The due heads of one lane, soonest first (with the head delivery's state and "sent" marks
/// checked in the same read). `$1` connection, `$2` now, `$3` how many.
const LANE_PROBE: &str = "SELECT q.head_id, q.group_key, d.state, d.create_sent_at, d.note_sent_at \
     FROM delivery_queues q LEFT JOIN deliveries d ON d.id = q.head_id \
     WHERE q.connection_id = $1 AND q.due_at <= $2 ORDER BY q.due_at LIMIT $3";

/// Recompute a group's head from its unfinished deliveries (an index range scan of
/// `deliveries_group_active` that stops at the first row). `$1` connection, `$2` group key.
pub(crate) const REFRESH_HEAD: &str = "INSERT INTO delivery_queues (connection_id, group_key, head_id, due_at) \
     SELECT connection_id, group_key, id, CASE WHEN state = 'in_flight' THEN lease_until ELSE next_attempt_at END \
     FROM deliveries WHERE connection_id = $1 AND group_key = $2 \
       AND state IN ('pending', 'retrying', 'in_flight') ORDER BY id LIMIT 1 \
     ON CONFLICT (connection_id, group_key) DO UPDATE SET head_id = excluded.head_id, due_at = excluded.due_at";

/// PostgreSQL: a transaction-long lock on one group's head row (`$1` connection, `$2` group
/// key), taken by a refresh about to remove the row and by a router that found the row present
/// while adding a delivery, so that one always sees the other's delivery: without it, a
/// refresh that did not yet see a new delivery could remove the head row the router relied
/// on, and that delivery would never be claimed.
pub(crate) const LOCK_GROUP: &str = "SELECT pg_advisory_xact_lock(hashtextextended($2, $1))";

/// Whether a lane has a head due (`$1` connection, `$2` now).
const LANE_HAS_DUE: &str =
    "SELECT head_id FROM delivery_queues WHERE connection_id = $1 AND due_at <= $2 LIMIT 1";

/// The soonest due time of any head.
const NEXT_DUE: &str = "SELECT MIN(due_at) FROM delivery_queues";

/// Keep the group's head row true after its deliveries changed: the oldest unfinished
/// delivery with its due time, or no row when the group has nothing left to do.
macro_rules! refresh_queue {
    ($exec:expr, $connection_id:expr, $group_key:expr) => {{
        let connection_id: i64 = $connection_id;
        let group_key: &str = $group_key;
        let mut written = sqlx::query($crate::queues::REFRESH_HEAD)
            .bind(connection_id)
            .bind(group_key)
            .execute(&mut *$exec)
            .await?
            .rows_affected();
        $crate::queues::notify_work!($exec);
        if written == 0 && $crate::queues::is_postgres(&$exec) {
            // Nothing left in the group, as far as this statement saw. A router on another
            // connection may be adding a delivery to it right now, and found the head row
            // still here (so it did not write one): under the group's lock, which that
            // router also takes, look again with a fresh snapshot before removing the row.
            sqlx::query($crate::queues::LOCK_GROUP)
                .bind(connection_id)
                .bind(group_key)
                .execute(&mut *$exec)
                .await?;
            written = sqlx::query($crate::queues::REFRESH_HEAD)
                .bind(connection_id)
                .bind(group_key)
                .execute(&mut *$exec)
                .await?
                .rows_affected();
        }
        if written == 0 {
            sqlx::query("DELETE FROM delivery_queues WHERE connection_id = $1 AND group_key = $2")
                .bind(connection_id)
                .bind(group_key)
                .execute(&mut *$exec)
                .await?;
        }
    }};
}
pub(crate) use refresh_queue;

/// The PostgreSQL channel told that a queue head changed (work may be due).
pub const WORK_CHANNEL: &str = "psabridge_work";
/// The PostgreSQL channel told that events were accepted (routing has work).
pub const ACCEPTED_CHANNEL: &str = "psabridge_accepted";
pub(crate) const NOTIFY_ACCEPTED: &str = "SELECT pg_notify('psabridge_accepted', '')";

/// On PostgreSQL, tell every node's listener (at commit; repeats within one transaction are
/// folded into one) that queue heads changed. Nothing on SQLite, where one process does
/// everything and wakes itself.
macro_rules! notify_work {
    ($tx:expr) => {{
        if $crate::queues::is_postgres(&$tx) {
            sqlx::query("SELECT pg_notify('psabridge_work', '')")
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use notify_work;

/// Which engine a transaction runs on, known from its type.
pub(crate) trait Dialect {
    const POSTGRES: bool;
}
impl Dialect for sqlx::Postgres {
    const POSTGRES: bool = true;
}
impl Dialect for sqlx::Sqlite {
    const POSTGRES: bool = false;
}
pub(crate) fn is_postgres<DB: sqlx::Database + Dialect>(_: &sqlx::Transaction<'_, DB>) -> bool {
    DB::POSTGRES
}

/// What a claim is, besides where it looks.
#[derive(Debug, Clone, Copy)]
pub struct ClaimTerms<'a> {
    /// Who holds the lease (a token per claim: see the engine).
    pub owner: &'a str,
    pub now: Millis,
    pub lease_ms: i64,
    /// A delivery that sent a create or note whose outcome is unknown waits this long after
    /// sending, so that the next attempt finds what may still be landing.
    pub settle_ms: i64,
}

/// A row of [`LANE_PROBE`]: head id, group key, the head's state, create and note sent.
type ProbeRow = (i64, String, Option<String>, Option<i64>, Option<i64>);

/// A head read by a lane probe.
struct Candidate {
    head_id: i64,
    group_key: String,
    state: Option<String>,
    sent_at: Option<Millis>,
}

impl Store {
    /// Claim up to `free` due deliveries, each the head of its group, shared among `lanes`
    /// round-robin (starting at `lanes[start]`), each lane taking no more than its room.
    /// The claim is a lease until `now + lease_ms`; an expired lease is claimable again.
    pub async fn claim_fairly(
        &self,
        terms: &ClaimTerms<'_>,
        lanes: &[Lane],
        free: usize,
        start: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut lanes: Vec<Lane> = lanes.to_vec();
        let mut free = free;
        let mut claimed: Vec<i64> = Vec::new();
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE OF q SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let probe = format!("{LANE_PROBE}{lock}");
        with_tx!(self, tx => {
            loop {
                let shares = fair::shares(free, &lanes, start);
                if shares.iter().all(|&n| n == 0) {
                    break;
                }
                for (lane, want) in lanes.iter_mut().zip(shares) {
                    if want == 0 {
                        continue;
                    }
                    let rows: Vec<ProbeRow> =
                        sqlx::query_as(sqlx::AssertSqlSafe(probe.clone()))
                            .bind(lane.id)
                            .bind(terms.now)
                            .bind(want as i64)
                            .fetch_all(&mut *tx)
                            .await?;
                    if rows.len() < want {
                        // Nothing more is due in this lane now.
                        lane.room = 0;
                    }
                    let mut took = Vec::new();
                    for (head_id, group_key, state, create_sent, note_sent) in rows {
                        let c = Candidate {
                            head_id,
                            group_key,
                            state,
                            sent_at: create_sent.max(note_sent),
                        };
                        let active = matches!(c.state.as_deref(), Some("pending" | "retrying" | "in_flight"));
                        if !active {
                            // The head was finished or removed by a path that could not know
                            // its group (a deleted partner): put the group right.
                            refresh_queue!(tx, lane.id, &c.group_key);
                        } else if let Some(sent) = c.sent_at.filter(|s| *s >= terms.now - terms.settle_ms) {
                            // What it sent may still be landing: not before the settle time.
                            sqlx::query("UPDATE delivery_queues SET due_at = $1 WHERE head_id = $2")
                                .bind(sent + terms.settle_ms + 1)
                                .bind(c.head_id)
                                .execute(&mut *tx)
                                .await?;
                        } else {
                            took.push(c.head_id);
                        }
                    }
                    if took.is_empty() {
                        continue;
                    }
                    let list = took.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let until = terms.now + terms.lease_ms;
                    let sql = format!(
                        "UPDATE deliveries SET state = 'in_flight', lease_owner = $1, lease_until = $2, \
                         attempts = attempts + 1, updated_at = $3 WHERE id IN ({list})"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(terms.owner)
                        .bind(until)
                        .bind(terms.now)
                        .execute(&mut *tx)
                        .await?;
                    let sql = format!("UPDATE delivery_queues SET due_at = $1 WHERE head_id IN ({list})");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until).execute(&mut *tx).await?;
                    lane.room -= took.len().min(lane.room);
                    free -= took.len();
                    claimed.extend(took);
                }
            }
        });
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        self.deliveries_by_ids(&claimed).await
    }

    /// The lanes deliveries can be in: every PSA connection, and the email channel (0).
    pub async fn lane_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = with_read!(self, pool => {
            sqlx::query_scalar("SELECT id FROM connections ORDER BY id").fetch_all(pool).await?
        });
        ids.insert(0, 0);
        Ok(ids)
    }

    /// Whether a connection has deliveries due now (its sweep then gives way to them).
    pub async fn lane_has_due(&self, connection_id: i64, now: Millis) -> Result<bool, StoreError> {
        with_read!(self, pool => {
            let found: Option<i64> = sqlx::query_scalar(LANE_HAS_DUE)
                .bind(connection_id)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            Ok(found.is_some())
        })
    }

    /// When the soonest queue head is due (in the past when some are due now; `None` when
    /// nothing is waiting). An engine with nothing to claim sleeps until then.
    pub async fn next_due_at(&self) -> Result<Option<Millis>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar(NEXT_DUE).fetch_one(pool).await?)
        })
    }

    /// The query plans of the hot queries (claiming, routing, recording, sweeping), by name,
    /// one line per plan step: SQLite's `EXPLAIN QUERY PLAN` or PostgreSQL's `EXPLAIN` with
    /// sequential scans discouraged, so that a plan shows whether an index can serve it.
    pub async fn explain_hot_queries(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut out = Vec::new();
        for (name, sql) in hot_queries() {
            let plan: Vec<String> = with_tx!(self, tx => {
                match self.engine() {
                    Engine::Sqlite => {
                        let explain = format!("EXPLAIN QUERY PLAN {sql}");
                        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
                        for b in binds_of(&sql) {
                            q = match b {
                                HotBind::Int(i) => q.bind(i),
                                HotBind::Text(t) => q.bind(t),
                            };
                        }
                        q.fetch_all(&mut *tx).await?.into_iter().map(|r| r.3).collect()
                    }
                    Engine::Postgres => {
                        sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
                        let explain = format!("EXPLAIN {sql}");
                        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(explain));
                        for b in binds_of(&sql) {
                            q = match b {
                                HotBind::Int(i) => q.bind(i),
                                HotBind::Text(t) => q.bind(t),
                            };
                        }
                        q.fetch_all(&mut *tx).await?
                    }
                }
            });
            out.push((name, plan.join("\n")));
        }
        Ok(out)
    }
}

enum HotBind {
    Int(i64),
    Text(&'static str),
}

/// Sample values for a hot query's parameters: text where the query compares a group key,
/// integers elsewhere.
fn binds_of(sql: &str) -> Vec<HotBind> {
    let n = (1..=9)
        .rev()
        .find(|i| sql.contains(&format!("${i}")))
        .unwrap_or(0);
    (1..=n)
        .map(|i| {
            let p = format!("group_key = ${i}");
            if sql.contains(&p) {
                HotBind::Text("user:a@example.com")
            } else {
                HotBind::Int(1)
            }
        })
        .collect()
}

/// The queries run for every event or claim, as they are run (lists of ids filled with a few).
fn hot_queries() -> Vec<(&'static str, String)> {
    vec![
        ("claim: due heads of a lane", LANE_PROBE.to_string()),
        (
            "claim: lease the heads",
            "UPDATE deliveries SET state = 'in_flight', lease_owner = 'x', lease_until = $1, \
             attempts = attempts + 1, updated_at = $2 WHERE id IN (1,2,3)"
                .to_string(),
        ),
        (
            "claim: the heads' due times",
            "UPDATE delivery_queues SET due_at = $1 WHERE head_id IN (1,2,3)".to_string(),
        ),
        ("claim: next due time", NEXT_DUE.to_string()),
        ("sweep: does a lane have due work", LANE_HAS_DUE.to_string()),
        (
            "record: a group's next head",
            REFRESH_HEAD.to_string(),
        ),
        (
            "record: a finished group",
            "DELETE FROM delivery_queues WHERE connection_id = $1 AND group_key = $2".to_string(),
        ),
        (
            "claimed deliveries with their events",
            crate::outbox::deliveries_by_ids_sql("1,2,3"),
        ),
        (
            "route: unrouted events",
            format!(
                "SELECT {} FROM events e WHERE e.routed_at IS NULL ORDER BY e.pk LIMIT $1",
                crate::outbox::EVENT_COLUMNS
            ),
        ),
        (
            "route: mark routed",
            "UPDATE events SET routed_at = $1, skip_reason = NULL WHERE pk IN (1,2,3) AND routed_at IS NULL"
                .to_string(),
        ),
        (
            "record: finish a delivery",
            "UPDATE deliveries SET state = 'delivered', updated_at = $1 WHERE id = $2 AND lease_owner = 'x' AND state = 'in_flight'"
                .to_string(),
        ),
        (
            "record: the group's open ticket",
            "SELECT id FROM ticket_groups WHERE connection_id = $1 AND group_key = $2 AND state = 'open'"
                .to_string(),
        ),
        ("sweep: stalest open tickets", crate::groups::GROUPS_TO_SWEEP_SQL.to_string()),
    ]
}

/// What another node's commit (or this one's) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Events were accepted: routing has work.
    Accepted,
    /// Queue heads changed: deliveries may be due.
    Work,
}

/// Wake-ups sent at commit by every node sharing a PostgreSQL database (LISTEN/NOTIFY), so
/// that an idle node sleeps instead of polling and still starts at once.
pub struct Wakeups(sqlx::postgres::PgListener);

impl Wakeups {
    /// The next wake-up. After a lost connection the listener reconnects by itself; the
    /// caller should then look for work (something may have been missed): it gets `Work`.
    pub async fn recv(&mut self) -> Result<Wakeup, StoreError> {
        match self.0.try_recv().await? {
            Some(n) if n.channel() == ACCEPTED_CHANNEL => Ok(Wakeup::Accepted),
            _ => Ok(Wakeup::Work),
        }
    }
}

impl Store {
    /// Listen for other nodes' commits: `None` on SQLite (one process, woken in memory).
    pub async fn wakeups(&self) -> Result<Option<Wakeups>, StoreError> {
        match &self.inner.db {
            crate::db::Db::Sqlite { .. } => Ok(None),
            crate::db::Db::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener
                    .listen_all([WORK_CHANNEL, ACCEPTED_CHANNEL])
                    .await?;
                Ok(Some(Wakeups(listener)))
            }
        }
    }
}
