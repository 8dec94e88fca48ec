//! The outbox: accepted events become deliveries, and deliveries move through their states.
//!
//! ```text
//! event (routed_at NULL) ──route──▶ delivery pending ──claim──▶ in_flight (lease until T)
//!                                      ▲                          │
//!                                      └── retrying (next at T) ◀─┤ retryable failure
//!                                                                 ├──▶ delivered
//!                                                                 └──▶ dead (retry by hand)
//! ```
//!
//! A claim takes only the *head* of each group: the oldest unfinished delivery of its
//! (connection, group key). So deliveries of one group run one at a time and in order, on any
//! number of workers and nodes, and ten concurrent alerts of one user make one ticket and nine
//! notes. A worker that dies leaves its claim to expire; the next claim takes it over.

use psabridge_core::event::{Action, EventUser, NewEvent, Severity};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};
use crate::queues::{ClaimTerms, refresh_queue};
use crate::{Engine, Millis};

/// An accepted event waiting to be routed.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub pk: i64,
    pub partner_id: String,
    pub event: NewEvent,
    pub received_at: Millis,
}

/// A delivery to create for a routed event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `psa`, or `email` (connection id 0, a group key unique per event: see
    /// `psabridge_core::email`).
    pub channel: &'static str,
    pub connection_id: i64,
    pub group_key: String,
    /// The route as JSON: company, contacts, ticket fields (see the engine).
    pub route: Value,
}

/// What routing decided for one event.
#[derive(Debug, Clone)]
pub enum RoutingResult {
    Deliver(Vec<NewDelivery>),
    Skip(String),
}

/// A claimed delivery, with its event.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub partner_id: String,
    /// `psa` or `email`: which sender carries it out.
    pub channel: String,
    pub connection_id: i64,
    pub group_key: String,
    pub route: Value,
    /// Attempts including this one.
    pub attempts: i64,
    /// Set when an earlier attempt sent a create whose outcome we never learned.
    pub create_sent_at: Option<Millis>,
    /// Set when an earlier attempt sent a note whose outcome we never learned.
    pub note_sent_at: Option<Millis>,
    /// The ticket that note was sent to: the next attempt looks for it there first, even if
    /// the ticket has been closed since.
    pub note_ticket_id: Option<String>,
    /// A retry was asked for through the API: route the event again with today's settings
    /// before this attempt.
    pub reroute: bool,
    /// Attempts made before the last retry asked for through the API (the retry policy
    /// counts only those since).
    pub attempts_before_retry: i64,
    /// When someone replayed it on purpose (it was dead or outside the replay window).
    pub replayed_at: Option<Millis>,
    pub event: StoredEvent,
}

/// One attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: Millis,
    pub finished_at: Millis,
    /// `created`, `noted`, `none`, `retry` or `dead`.
    pub outcome: String,
    pub psa_calls: i64,
    pub summary: Option<String>,
    pub error: Option<String>,
}

/// How a delivery ended well.
#[derive(Debug, Clone)]
pub struct Success {
    /// `created`, `noted`, `closed` (noted, then closed because its alerts resolved) or `none`.
    pub psa_action: &'static str,
    pub ticket_id: Option<String>,
    pub ticket_number: Option<String>,
    pub contact_id: Option<String>,
    pub contact_source: Option<&'static str>,
    /// The alerts the group's ticket stands for after this delivery (`None`: unchanged).
    pub open_alerts: Option<Vec<String>>,
}

fn alerts_json(a: &Option<Vec<String>>) -> Option<String> {
    a.as_ref().map(|v| Value::from(v.clone()).to_string())
}

/// How an attempt failed.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub error: &'a str,
    /// When to try again; `None` makes the delivery dead.
    pub retry_at: Option<Millis>,
    /// The attempt may have made a ticket or note we have not seen: keep the "sent" marks so
    /// the next attempt looks first. Otherwise they are cleared.
    pub outcome_unknown: bool,
    /// The event is older than the replay window: kept and listed as `expired`, never sent
    /// unless replayed on purpose.
    pub expired: bool,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub client_id: String,
    pub connection_id: i64,
    pub channel: String,
    pub group_key: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub psa_action: Option<String>,
    pub ticket_id: Option<String>,
    pub ticket_number: Option<String>,
    pub contact_id: Option<String>,
    pub contact_source: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub delivered_at: Option<Millis>,
    pub history: Vec<Attempt>,
}

/// An event with what became of it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub stored: StoredEvent,
    pub routed_at: Option<Millis>,
    pub skip_reason: Option<String>,
    pub deliveries: Vec<DeliveryView>,
}

/// Filters of the delivery list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub event_type: Option<String>,
    pub connection_id: Option<i64>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Deliveries with an id below this (paging backwards from the newest).
    pub before_id: Option<i64>,
    pub limit: i64,
}

macro_rules! insert_attempt {
    ($exec:expr, $delivery_id:expr, $a:expr) => {{
        let a: &Attempt = $a;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, psa_calls, summary, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind($delivery_id)
        .bind(a.attempt)
        .bind(a.started_at)
        .bind(a.finished_at)
        .bind(a.outcome.clone())
        .bind(a.psa_calls)
        .bind(a.summary.clone())
        .bind(a.error.clone())
        .execute($exec)
        .await?;
    }};
}

pub(crate) const EVENT_COLUMNS: &str = "e.pk, e.partner_id, e.event_id, e.client_id, e.event_type, e.action, e.severity, \
     e.occurred_at, e.user_email, e.user_name, e.title, e.details, e.data, e.received_at";

fn event_from_row<R: Row>(row: &R) -> Result<StoredEvent, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let action: String = row.try_get("action")?;
    let severity: String = row.try_get("severity")?;
    let data: String = row.try_get("data")?;
    let email: Option<String> = row.try_get("user_email")?;
    let occurred: Option<i64> = row.try_get("occurred_at")?;
    Ok(StoredEvent {
        pk: row.try_get("pk")?,
        partner_id: row.try_get("partner_id")?,
        received_at: row.try_get("received_at")?,
        event: NewEvent {
            id: row.try_get("event_id")?,
            partner: None,
            client: row.try_get("client_id")?,
            event_type: row.try_get("event_type")?,
            action: Action::parse(&action).ok_or_else(|| corrupt(format!("action {action}")))?,
            occurred_at: occurred.map(crate::from_millis),
            severity: Severity::parse(&severity)
                .ok_or_else(|| corrupt(format!("severity {severity}")))?,
            user: email.map(|email| EventUser {
                email,
                name: row.try_get("user_name").ok().flatten(),
            }),
            title: row.try_get("title")?,
            details: row.try_get("details")?,
            data: match serde_json::from_str::<Value>(&data) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
        },
    })
}

impl Store {
    /// Accepted events not yet routed, oldest first.
    pub async fn unrouted_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        // Readers see every committed row (WAL), so this leaves the one writer to writes.
        with_read!(self, pool => {
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.routed_at IS NULL ORDER BY e.pk LIMIT $1");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(limit).fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// Record routing decisions. Idempotent under concurrency: an event already routed by
    /// another node is left alone, and only the node that routed it creates its deliveries.
    /// New client ids are registered (unmapped) so that the client list shows them.
    pub async fn record_routing(
        &self,
        decisions: &[(StoredEvent, RoutingResult)],
        now: Millis,
    ) -> Result<usize, StoreError> {
        if decisions.is_empty() {
            return Ok(0);
        }
        // Events that share a skip reason (or none) are marked routed in one statement; the
        // ones this call actually flipped come back, and only they get deliveries.
        let mut by_reason: std::collections::BTreeMap<Option<&str>, Vec<i64>> = Default::default();
        for (ev, result) in decisions {
            let reason = match result {
                RoutingResult::Skip(r) => Some(r.as_str()),
                RoutingResult::Deliver(_) => None,
            };
            by_reason.entry(reason).or_default().push(ev.pk);
        }
        let mut clients: Vec<(&str, &str)> = decisions
            .iter()
            .map(|(ev, _)| (ev.partner_id.as_str(), ev.event.client.as_str()))
            .collect();
        clients.sort_unstable();
        clients.dedup();
        let mut created = 0usize;
        with_tx!(self, tx => {
            let mut flipped = std::collections::HashSet::new();
            for (reason, pks) in &by_reason {
                for chunk in pks.chunks(500) {
                    let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let sql = format!(
                        "UPDATE events SET routed_at = $1, skip_reason = $2 \
                         WHERE pk IN ({list}) AND routed_at IS NULL RETURNING pk"
                    );
                    let done: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(*reason)
                        .fetch_all(&mut *tx)
                        .await?;
                    flipped.extend(done);
                }
            }
            for chunk in clients.chunks(300) {
                let mut qb = sqlx::QueryBuilder::new("INSERT INTO clients (partner_id, id, name, created_at) ");
                qb.push_values(chunk, |mut b, (partner, client)| {
                    b.push_bind(partner.to_string())
                        .push_bind(client.to_string())
                        .push_bind(client.to_string())
                        .push_bind(now);
                });
                // A partner deleted meanwhile has no clients to register.
                qb.push(" ON CONFLICT (partner_id, id) DO NOTHING");
                if let Err(e) = qb.build().execute(&mut *tx).await
                    && !matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
                {
                    return Err(e.into());
                }
            }
            let rows: Vec<(&StoredEvent, &NewDelivery)> = decisions
                .iter()
                .filter(|(ev, _)| flipped.contains(&ev.pk))
                .filter_map(|(ev, r)| match r {
                    RoutingResult::Deliver(list) => Some(list.iter().map(move |d| (ev, d))),
                    RoutingResult::Skip(_) => None,
                })
                .flatten()
                .collect();
            for chunk in rows.chunks(300) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO deliveries (event_pk, partner_id, connection_id, channel, group_key, route, state, \
                     attempts, next_attempt_at, created_at, updated_at) ",
                );
                qb.push_values(chunk, |mut b, (ev, d)| {
                    b.push_bind(ev.pk)
                        .push_bind(ev.partner_id.clone())
                        .push_bind(d.connection_id)
                        .push_bind(d.channel)
                        .push_bind(d.group_key.clone())
                        .push_bind(d.route.to_string())
                        .push_bind("pending")
                        .push_bind(0i64)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(now);
                });
                qb.push(" RETURNING id, connection_id, group_key");
                let made: Vec<(i64, i64, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                created += made.len();
                // Each group's queue starts at its oldest delivery; a group already queued
                // keeps its head (a new delivery is never older than it).
                let mut heads: std::collections::BTreeMap<(i64, String), i64> = Default::default();
                for (id, connection_id, group_key) in made {
                    let head = heads.entry((connection_id, group_key)).or_insert(id);
                    *head = (*head).min(id);
                }
                let heads: Vec<_> = heads.into_iter().collect();
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO delivery_queues (connection_id, group_key, head_id, due_at) ",
                );
                qb.push_values(&heads, |mut b, ((connection_id, group_key), id)| {
                    b.push_bind(*connection_id)
                        .push_bind(group_key.clone())
                        .push_bind(*id)
                        .push_bind(now);
                });
                qb.push(" ON CONFLICT (connection_id, group_key) DO NOTHING RETURNING connection_id, group_key");
                let written: std::collections::BTreeSet<(i64, String)> =
                    qb.build_query_as().fetch_all(&mut *tx).await?.into_iter().collect();
                if crate::queues::is_postgres(&tx) {
                    // A group whose head row was already there: a finishing delivery of it may
                    // be removing that row concurrently (it did not see ours yet). Under the
                    // group's lock (see `queues::LOCK_GROUP`), make sure the row exists.
                    for ((connection_id, group_key), id) in &heads {
                        if written.contains(&(*connection_id, group_key.clone())) {
                            continue;
                        }
                        sqlx::query(crate::queues::LOCK_GROUP)
                            .bind(*connection_id)
                            .bind(group_key.as_str())
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO delivery_queues (connection_id, group_key, head_id, due_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, group_key) DO NOTHING",
                        )
                        .bind(*connection_id)
                        .bind(group_key.as_str())
                        .bind(*id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                crate::queues::notify_work!(tx);
            }
        });
        Ok(created)
    }

    /// Claim up to `limit` deliveries that are due, each the head of its group, skipping the
    /// connections in `paused` (open breaker, spent budget), every other lane alike. The
    /// claim is a lease until `now + lease_ms`; an expired lease is claimable again. (The
    /// engine uses [`Store::claim_fairly`] with a room per connection.)
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now: Millis,
        lease_ms: i64,
        limit: i64,
        paused: &[i64],
        settle_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let free = limit.max(0) as usize;
        let lanes: Vec<psabridge_core::fair::Lane> = self
            .lane_ids()
            .await?
            .into_iter()
            .map(|id| psabridge_core::fair::Lane {
                id,
                room: if paused.contains(&id) { 0 } else { free },
            })
            .collect();
        let terms = ClaimTerms {
            owner,
            now,
            lease_ms,
            settle_ms,
        };
        self.claim_fairly(&terms, &lanes, free, 0).await
    }

    pub(crate) async fn deliveries_by_ids(&self, ids: &[i64]) -> Result<Vec<Delivery>, StoreError> {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = deliveries_by_ids_sql(&list);
        with_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    let route: String = r.try_get("route")?;
                    let event = event_from_row(r)?;
                    Ok(Delivery {
                        id: r.try_get("d_id")?,
                        partner_id: event.partner_id.clone(),
                        channel: r.try_get("channel")?,
                        connection_id: r.try_get("connection_id")?,
                        group_key: r.try_get("group_key")?,
                        route: serde_json::from_str(&route).map_err(|e| corrupt(format!("route: {e}")))?,
                        attempts: r.try_get("attempts")?,
                        create_sent_at: r.try_get("create_sent_at")?,
                        note_sent_at: r.try_get("note_sent_at")?,
                        note_ticket_id: r.try_get("note_ticket_id")?,
                        reroute: r.try_get("reroute")?,
                        attempts_before_retry: r.try_get("attempts_before_retry")?,
                        replayed_at: r.try_get("replayed_at")?,
                        event,
                    })
                })
                .collect()
        })
    }

    /// Durably note that a create is about to be sent (see [`Delivery::create_sent_at`]).
    /// `false` when the lease was lost: the caller must not send.
    pub async fn mark_create_sent(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.mark_sent(id, owner, now, "create_sent_at", None).await
    }

    /// Durably note that a note is about to be sent to `ticket_id` (see
    /// [`Delivery::note_sent_at`] and [`Delivery::note_ticket_id`]).
    pub async fn mark_note_sent(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        ticket_id: &str,
    ) -> Result<bool, StoreError> {
        self.mark_sent(id, owner, now, "note_sent_at", Some(ticket_id))
            .await
    }

    async fn mark_sent(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        column: &'static str,
        note_ticket_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE deliveries SET {column} = $1, note_ticket_id = COALESCE($4, note_ticket_id), updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'in_flight'"
        );
        with_write!(self, pool => {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(id)
            .bind(owner)
            .bind(note_ticket_id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Finish a delivery that succeeded. For a created ticket, also open its group; for a note,
    /// count it on the group. `false` when the lease was lost (another worker owns it now).
    pub async fn finish_delivery(
        &self,
        d: &Delivery,
        owner: &str,
        ok: &Success,
        attempt: &Attempt,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let done = sqlx::query(
                "UPDATE deliveries SET state = 'delivered', lease_owner = NULL, lease_until = NULL, create_sent_at = NULL, note_sent_at = NULL, note_ticket_id = NULL, \
                 psa_action = $1, ticket_id = $2, ticket_number = $3, contact_id = $4, contact_source = $5, \
                 last_error = NULL, delivered_at = $6, updated_at = $6 \
                 WHERE id = $7 AND lease_owner = $8 AND state = 'in_flight'",
            )
            .bind(ok.psa_action)
            .bind(&ok.ticket_id)
            .bind(&ok.ticket_number)
            .bind(&ok.contact_id)
            .bind(ok.contact_source)
            .bind(now)
            .bind(d.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            insert_attempt!(&mut *tx, d.id, attempt);
            refresh_queue!(tx, d.connection_id, &d.group_key);
            match (ok.psa_action, &ok.ticket_id) {
                ("created", Some(ticket)) => {
                    // A group whose open row we still hold is closed by the new ticket: the
                    // old ticket was found closed (or gone) before we created this one.
                    sqlx::query(
                        "UPDATE ticket_groups SET state = 'closed', closed_at = $1 \
                         WHERE connection_id = $2 AND group_key = $3 AND state = 'open'",
                    )
                    .bind(now)
                    .bind(d.connection_id)
                    .bind(&d.group_key)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO ticket_groups (connection_id, group_key, ticket_id, ticket_number, state, opened_at, confirmed_open_at, open_alerts) \
                         VALUES ($1, $2, $3, $4, 'open', $5, $5, $6)",
                    )
                    .bind(d.connection_id)
                    .bind(&d.group_key)
                    .bind(ticket)
                    .bind(&ok.ticket_number)
                    .bind(now)
                    .bind(alerts_json(&ok.open_alerts))
                    .execute(&mut *tx)
                    .await?;
                }
                ("reopened", Some(ticket)) => {
                    // The re-fire policy reopened the group's closed ticket: its row is the
                    // group's open one again.
                    sqlx::query(
                        "UPDATE ticket_groups SET state = 'open', closed_at = NULL, confirmed_open_at = $1, \
                         notes = notes + 1, last_note_at = $1, open_alerts = $5 \
                         WHERE id = (SELECT id FROM ticket_groups WHERE connection_id = $2 AND group_key = $3 \
                                     AND ticket_id = $4 AND state = 'closed' ORDER BY id DESC LIMIT 1)",
                    )
                    .bind(now)
                    .bind(d.connection_id)
                    .bind(&d.group_key)
                    .bind(ticket)
                    .bind(alerts_json(&ok.open_alerts))
                    .execute(&mut *tx)
                    .await?;
                }
                ("noted" | "closed", Some(ticket)) => {
                    // (A note on a closed ticket, under the "note only" re-fire policy, is
                    // counted on its closed row and leaves it closed.)
                    sqlx::query(
                        "UPDATE ticket_groups SET notes = notes + 1, last_note_at = $1, \
                         open_alerts = COALESCE($5, open_alerts), \
                         state = CASE WHEN $6 THEN 'closed' ELSE state END, \
                         closed_at = CASE WHEN $6 THEN $1 ELSE closed_at END \
                         WHERE connection_id = $2 AND group_key = $3 AND ticket_id = $4",
                    )
                    .bind(now)
                    .bind(d.connection_id)
                    .bind(&d.group_key)
                    .bind(ticket)
                    .bind(alerts_json(&ok.open_alerts))
                    .bind(ok.psa_action == "closed")
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
            Ok(true)
        })
    }

    /// Finish an attempt that failed: retry at `f.retry_at`, or dead when `None`.
    pub async fn fail_delivery(
        &self,
        d: &Delivery,
        owner: &str,
        f: &Failure<'_>,
        attempt: &Attempt,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let done = sqlx::query(
                "UPDATE deliveries SET state = $1, next_attempt_at = $2, lease_owner = NULL, lease_until = NULL, \
                 create_sent_at = CASE WHEN $3 THEN create_sent_at ELSE NULL END, \
                 note_sent_at = CASE WHEN $3 THEN note_sent_at ELSE NULL END, \
                 note_ticket_id = CASE WHEN $3 THEN note_ticket_id ELSE NULL END, last_error = $4, updated_at = $5 \
                 WHERE id = $6 AND lease_owner = $7 AND state = 'in_flight'",
            )
            .bind(if f.expired {
                "expired"
            } else if f.retry_at.is_some() {
                "retrying"
            } else {
                "dead"
            })
            .bind(f.retry_at.unwrap_or(now))
            .bind(f.outcome_unknown)
            .bind(f.error)
            .bind(now)
            .bind(d.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            insert_attempt!(&mut *tx, d.id, attempt);
            refresh_queue!(tx, d.connection_id, &d.group_key);
            Ok(true)
        })
    }

    /// Give a claimed delivery back without counting an attempt (e.g. its connection's
    /// budget is spent): it becomes due again at `at`.
    pub async fn release_delivery(
        &self,
        id: i64,
        owner: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let group: Option<(i64, String)> = sqlx::query_as(
                "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                 attempts = attempts - 1, next_attempt_at = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $2 AND lease_owner = $3 AND state = 'in_flight' RETURNING connection_id, group_key",
            )
            .bind(at)
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((connection_id, group_key)) = group {
                refresh_queue!(tx, connection_id, &group_key);
            }
        });
        Ok(())
    }

    /// Give back a claim whose attempt was cut short by a shutdown, without counting the
    /// attempt: due now, or after `settle_ms` when it had sent a create or a note (which may
    /// still land at the PSA; the next attempt looks for it before sending again).
    pub async fn release_interrupted(
        &self,
        id: i64,
        owner: &str,
        now: Millis,
        settle_ms: i64,
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let group: Option<(i64, String)> = sqlx::query_as(
                "UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                 attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, \
                 next_attempt_at = CASE WHEN create_sent_at IS NOT NULL OR note_sent_at IS NOT NULL \
                                        THEN $2 ELSE $1 END \
                 WHERE id = $3 AND lease_owner = $4 AND state = 'in_flight' RETURNING connection_id, group_key",
            )
            .bind(now)
            .bind(now + settle_ms)
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            let released = group.is_some();
            if let Some((connection_id, group_key)) = group {
                refresh_queue!(tx, connection_id, &group_key);
            }
            Ok(released)
        })
    }

    /// At start-up of a single-node (SQLite) installation, no other process can hold a claim:
    /// claims left by a process that died are released at once instead of waiting out their
    /// lease. Their "create sent" marks stay, so their next attempt looks before creating.
    /// On PostgreSQL other nodes may be alive, so leases expire on their own.
    pub async fn release_orphaned_claims(
        &self,
        now: Millis,
        settle_ms: i64,
    ) -> Result<u64, StoreError> {
        if self.engine() != Engine::Sqlite {
            return Ok(0);
        }
        // A claim that had sent a create or a note waits `settle_ms`: what it sent may still
        // be landing at the PSA, and the next attempt must find it rather than send it again.
        with_tx!(self, tx => {
            let groups: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE deliveries SET state = 'retrying', lease_owner = NULL, lease_until = NULL, \
                 next_attempt_at = CASE WHEN create_sent_at IS NOT NULL OR note_sent_at IS NOT NULL \
                                        THEN $2 ELSE $1 END \
                 WHERE state = 'in_flight' RETURNING connection_id, group_key",
            )
            .bind(now)
            .bind(now + settle_ms)
            .fetch_all(&mut *tx)
            .await?;
            for (connection_id, group_key) in &groups {
                refresh_queue!(tx, *connection_id, group_key);
            }
            Ok(groups.len() as u64)
        })
    }

    /// Send dead, expired (or retrying) deliveries of a partner again, now: a replay on
    /// purpose, so the replay window counts from now. A PSA delivery is routed again first,
    /// with the settings of that moment ([`Delivery::reroute`]). `attempts` keeps counting
    /// (the history keeps every attempt); the retry policy counts from here. Returns how many.
    pub async fn retry_deliveries(
        &self,
        partner: &str,
        ids: &[i64],
        now: Millis,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        // A replay on purpose: the replay window counts again from now.
        let sql = format!(
            "UPDATE deliveries SET state = 'pending', attempts_before_retry = attempts, reroute = (channel = 'psa'), \
             next_attempt_at = $1, updated_at = $1, replayed_at = $1 \
             WHERE partner_id = $2 AND state IN ('dead', 'retrying', 'expired') AND id IN ({list}) \
             RETURNING connection_id, group_key"
        );
        with_tx!(self, tx => {
            let groups: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .bind(partner)
                .fetch_all(&mut *tx)
                .await?;
            let mut distinct = groups.clone();
            distinct.sort();
            distinct.dedup();
            for (connection_id, group_key) in &distinct {
                refresh_queue!(tx, *connection_id, group_key);
            }
            Ok(groups.len() as u64)
        })
    }

    /// Record the route a retried delivery was given with today's settings (see
    /// [`Delivery::reroute`]). `false` when the lease was lost.
    pub async fn reroute_delivery(
        &self,
        id: i64,
        owner: &str,
        route: &Value,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE deliveries SET route = $1, reroute = false, updated_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND state = 'in_flight'",
            )
            .bind(route.to_string())
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// An event of a partner with its deliveries and their attempts.
    pub async fn event_record(
        &self,
        partner: &str,
        event_id: &str,
    ) -> Result<EventRecord, StoreError> {
        let (stored, routed_at, skip_reason) = with_read!(self, pool => {
            let sql = format!("SELECT {EVENT_COLUMNS}, e.routed_at, e.skip_reason FROM events e WHERE e.partner_id = $1 AND e.event_id = $2");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(partner)
                .bind(event_id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("event '{event_id}'")))?;
            let routed: Option<i64> = row.try_get("routed_at")?;
            let skip: Option<String> = row.try_get("skip_reason")?;
            (event_from_row(&row)?, routed, skip)
        });
        let deliveries = self
            .delivery_views(&format!("d.event_pk = {}", stored.pk), &[], 100)
            .await?;
        Ok(EventRecord {
            stored,
            routed_at,
            skip_reason,
            deliveries,
        })
    }

    /// The delivery log of a partner, newest first.
    pub async fn list_deliveries(
        &self,
        partner: &str,
        f: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        self.list_deliveries_on_channel(partner, None, f).await
    }

    /// The delivery log of a partner, newest first, of one channel (`psa`, `email`) or all.
    pub async fn list_deliveries_on_channel(
        &self,
        partner: &str,
        channel: Option<&str>,
        f: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let mut cond = vec!["d.partner_id = $1".to_string()];
        let mut binds: Vec<Bind> = vec![Bind::Text(partner.to_string())];
        let mut add = |sql: &str, b: Bind| {
            binds.push(b);
            cond.push(sql.replace('?', &format!("${}", binds.len())));
        };
        if let Some(s) = &f.state {
            add("d.state = ?", Bind::Text(s.clone()));
        }
        if let Some(c) = &f.client_id {
            add("e.client_id = ?", Bind::Text(c.clone()));
        }
        if let Some(c) = channel {
            add("d.channel = ?", Bind::Text(c.to_string()));
        }
        if let Some(t) = &f.event_type {
            add("e.event_type = ?", Bind::Text(t.clone()));
        }
        if let Some(c) = f.connection_id {
            add("d.connection_id = ?", Bind::Int(c));
        }
        if let Some(s) = f.since {
            add("d.created_at >= ?", Bind::Int(s));
        }
        if let Some(u) = f.until {
            add("d.created_at < ?", Bind::Int(u));
        }
        if let Some(b) = f.before_id {
            add("d.id < ?", Bind::Int(b));
        }
        self.delivery_views(&cond.join(" AND "), &binds, f.limit.clamp(1, 1000))
            .await
    }

    async fn delivery_views(
        &self,
        cond: &str,
        binds: &[Bind],
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let sql = format!(
            "SELECT d.id, e.event_id, e.event_type, e.client_id, d.connection_id, d.channel, d.group_key, d.state, \
             d.attempts, d.next_attempt_at, d.psa_action, d.ticket_id, d.ticket_number, d.contact_id, d.contact_source, \
             d.last_error, d.created_at, d.updated_at, d.delivered_at \
             FROM deliveries d JOIN events e ON e.pk = d.event_pk WHERE {cond} ORDER BY d.id DESC LIMIT {limit}"
        );
        let mut views: Vec<DeliveryView> = with_read!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for b in binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(DeliveryView {
                        id: r.try_get("id")?,
                        event_id: r.try_get("event_id")?,
                        event_type: r.try_get("event_type")?,
                        client_id: r.try_get("client_id")?,
                        connection_id: r.try_get("connection_id")?,
                        channel: r.try_get("channel")?,
                        group_key: r.try_get("group_key")?,
                        state: r.try_get("state")?,
                        attempts: r.try_get("attempts")?,
                        next_attempt_at: r.try_get("next_attempt_at")?,
                        psa_action: r.try_get("psa_action")?,
                        ticket_id: r.try_get("ticket_id")?,
                        ticket_number: r.try_get("ticket_number")?,
                        contact_id: r.try_get("contact_id")?,
                        contact_source: r.try_get("contact_source")?,
                        last_error: r.try_get("last_error")?,
                        created_at: r.try_get("created_at")?,
                        updated_at: r.try_get("updated_at")?,
                        delivered_at: r.try_get("delivered_at")?,
                        history: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        if views.is_empty() {
            return Ok(views);
        }
        let list = views
            .iter()
            .map(|v| v.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT delivery_id, attempt, started_at, finished_at, outcome, psa_calls, summary, error \
             FROM delivery_attempts WHERE delivery_id IN ({list}) ORDER BY delivery_id, attempt"
        );
        with_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).fetch_all(pool).await?;
            for r in rows {
                let id: i64 = r.try_get("delivery_id")?;
                if let Some(v) = views.iter_mut().find(|v| v.id == id) {
                    v.history.push(Attempt {
                        attempt: r.try_get("attempt")?,
                        started_at: r.try_get("started_at")?,
                        finished_at: r.try_get("finished_at")?,
                        outcome: r.try_get("outcome")?,
                        psa_calls: r.try_get("psa_calls")?,
                        summary: r.try_get("summary")?,
                        error: r.try_get("error")?,
                    });
                }
            }
        });
        Ok(views)
    }

    /// Counts of deliveries by state, for health and benchmarks.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?)
        })
    }

    /// What an operator graphs per connection, read cheaply enough to sample every few
    /// seconds: each connection's kind, its unfinished deliveries (counted in the partial index
    /// of active deliveries, not the table) and when the oldest of them was made (the oldest
    /// queue head, one row per group). Email deliveries are connection 0, kind `email`.
    pub async fn backlog_by_connection(&self) -> Result<Vec<ConnectionBacklog>, StoreError> {
        type Read = (Vec<(i64, String)>, Vec<(i64, i64)>, Vec<(i64, Option<i64>)>);
        let (kinds, counts, oldest): Read = with_read!(self, pool => {
            let kinds = sqlx::query_as("SELECT id, kind FROM connections ORDER BY id")
                .fetch_all(pool)
                .await?;
            let counts = sqlx::query_as(
                "SELECT connection_id, COUNT(*) FROM deliveries \
                 WHERE state IN ('pending', 'retrying', 'in_flight') GROUP BY connection_id",
            )
            .fetch_all(pool)
            .await?;
            let oldest = sqlx::query_as(
                "SELECT q.connection_id, MIN(d.created_at) FROM delivery_queues q \
                 JOIN deliveries d ON d.id = q.head_id GROUP BY q.connection_id",
            )
            .fetch_all(pool)
            .await?;
            (kinds, counts, oldest)
        });
        let mut out: std::collections::BTreeMap<i64, ConnectionBacklog> = kinds
            .into_iter()
            .map(|(id, kind)| {
                (
                    id,
                    ConnectionBacklog {
                        connection_id: id,
                        kind,
                        pending: 0,
                        oldest_created_at: None,
                    },
                )
            })
            .collect();
        for (id, n) in counts {
            out.entry(id)
                .or_insert_with(|| ConnectionBacklog::unknown(id))
                .pending = n;
        }
        for (id, at) in oldest {
            out.entry(id)
                .or_insert_with(|| ConnectionBacklog::unknown(id))
                .oldest_created_at = at;
        }
        Ok(out.into_values().collect())
    }

    /// Events accepted but not yet routed.
    pub async fn unrouted_count(&self) -> Result<i64, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE routed_at IS NULL").fetch_one(pool).await?)
        })
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Deliveries with their events, by a list of ids (`1,2,3`).
pub(crate) fn deliveries_by_ids_sql(list: &str) -> String {
    format!(
        "SELECT d.id AS d_id, d.channel, d.connection_id, d.group_key, d.route, d.attempts, d.create_sent_at, d.note_sent_at, d.note_ticket_id, d.reroute, d.attempts_before_retry, d.replayed_at, {EVENT_COLUMNS} \
         FROM deliveries d JOIN events e ON e.pk = d.event_pk WHERE d.id IN ({list}) ORDER BY d.id"
    )
}

/// One connection's unfinished deliveries, for metrics ([`Store::backlog_by_connection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBacklog {
    pub connection_id: i64,
    /// The PSA kind (`autotask`, …), `email` for the email channel.
    pub kind: String,
    /// Deliveries pending, retrying or in flight.
    pub pending: i64,
    /// When the oldest of them was made (ms), if any.
    pub oldest_created_at: Option<i64>,
}

impl ConnectionBacklog {
    fn unknown(id: i64) -> Self {
        ConnectionBacklog {
            connection_id: id,
            kind: if id == 0 { "email" } else { "unknown" }.to_string(),
            pending: 0,
            oldest_created_at: None,
        }
    }
}
