//! Durable acceptance of events, batched into group commits.
//!
//! Every accepted event must be committed before the producer hears "accepted". Committing
//! each request on its own would cap throughput at the disk's sync rate, so concurrent requests
//! share commits: one writer task takes whatever requests are waiting (up to a bound), writes
//! them in one transaction, commits once, then answers each. An idle system answers at once;
//! a busy one amortises a sync over hundreds of events. Nothing is acknowledged before its
//! commit, so "accepted" always means "on disk" (in the sense of the SQLite sync setting).

use std::collections::HashSet;
use std::sync::Arc;

use psabridge_core::event::NewEvent;
use serde_json::Value;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::Millis;
use crate::db::{Db, Store};
use crate::error::StoreError;

/// One event to accept, with its partner resolved.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub partner_id: String,
    pub event: NewEvent,
}

/// What happened to one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: stored, and will be routed.
    Accepted,
    /// The partner already had an event with this id; nothing changed.
    Duplicate,
}

/// Most events written in one transaction; bounds the latency a large batch adds to others.
const MAX_EVENTS_PER_COMMIT: usize = 4000;
/// Rows per INSERT statement (13 parameters each, well under both engines' limits).
const ROWS_PER_STATEMENT: usize = 400;

struct Job {
    events: Vec<Incoming>,
    received_at: Millis,
    reply: oneshot::Sender<Result<Vec<Outcome>, String>>,
}

/// The handle to the writer task.
pub(crate) struct IngestQueue {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Woken after each commit that accepted something, so routing starts at once.
    pub(crate) accepted: Arc<Notify>,
}

impl IngestQueue {
    pub(crate) fn detached() -> IngestQueue {
        IngestQueue {
            sender: Mutex::new(None),
            task: Mutex::new(None),
            accepted: Arc::new(Notify::new()),
        }
    }

    /// Stop taking jobs and wait for the writer to finish the ones it has.
    pub(crate) async fn close(&self) {
        self.sender.lock().await.take();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

impl Store {
    pub(crate) fn with_ingest_writer(self) -> Store {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let db = self.inner.db.clone();
        let notify = self.inner.ingest.accepted.clone();
        let task = tokio::spawn(writer(db, rx, notify));
        // The store was just built and is not shared yet, so these locks are free.
        if let Ok(mut s) = self.inner.ingest.sender.try_lock() {
            *s = Some(tx);
        }
        if let Ok(mut t) = self.inner.ingest.task.try_lock() {
            *t = Some(task);
        }
        self
    }

    /// Durably accept events. Returns one outcome per event, in order, once committed.
    pub async fn accept_events(
        &self,
        events: Vec<Incoming>,
        received_at: Millis,
    ) -> Result<Vec<Outcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sender = self
            .inner
            .ingest
            .sender
            .lock()
            .await
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Job {
                events,
                received_at,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Write)
    }

    /// Notified after every commit that accepted at least one event.
    pub fn accepted_notify(&self) -> Arc<Notify> {
        self.inner.ingest.accepted.clone()
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Job>, notify: Arc<Notify>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].events.len();
        while count < MAX_EVENTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        match write_batch(&db, &jobs).await {
            Ok(outcomes) => {
                let any = outcomes.iter().flatten().any(|o| *o == Outcome::Accepted);
                for (job, out) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(out));
                }
                if any {
                    notify.notify_waiters();
                    notify.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = count, "writing accepted events failed");
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// Insert every job's events in one transaction; the outcome of each event in job order.
async fn write_batch(db: &Db, jobs: &[Job]) -> Result<Vec<Vec<Outcome>>, sqlx::Error> {
    // Within the batch, the first occurrence of a (partner, id) wins; later ones are duplicates
    // without asking the database.
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut rows: Vec<(&Incoming, Millis)> = Vec::new();
    let mut first_in_batch: Vec<Vec<bool>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut flags = Vec::with_capacity(job.events.len());
        for inc in &job.events {
            let fresh = seen.insert((inc.partner_id.as_str(), inc.event.id.as_str()));
            if fresh {
                rows.push((inc, job.received_at));
            }
            flags.push(fresh);
        }
        first_in_batch.push(flags);
    }

    let mut inserted: HashSet<(String, String)> = HashSet::with_capacity(rows.len());
    macro_rules! run {
        ($tx:ident) => {{
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO events (partner_id, event_id, client_id, event_type, action, severity, \
                     occurred_at, user_email, user_name, title, details, data, received_at) ",
                );
                qb.push_values(chunk, |mut b, (inc, received_at)| {
                    let e = &inc.event;
                    b.push_bind(inc.partner_id.clone())
                        .push_bind(e.id.clone())
                        .push_bind(e.client.clone())
                        .push_bind(e.event_type.clone())
                        .push_bind(e.action.as_str())
                        .push_bind(e.severity.as_str())
                        .push_bind(e.occurred_at.map(crate::millis))
                        .push_bind(e.user.as_ref().map(|u| u.email.clone()))
                        .push_bind(e.user.as_ref().and_then(|u| u.name.clone()))
                        .push_bind(e.title.clone())
                        .push_bind(e.details.clone())
                        .push_bind(Value::Object(e.data.clone()).to_string())
                        .push_bind(*received_at);
                });
                qb.push(" ON CONFLICT (partner_id, event_id) DO NOTHING RETURNING partner_id, event_id");
                let got: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *$tx).await?;
                inserted.extend(got);
            }
        }};
    }
    match db {
        Db::Sqlite { write, .. } => {
            let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
            run!(tx);
            tx.commit().await?;
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            run!(tx);
            if !inserted.is_empty() {
                // Other nodes' routers wake too (delivered at commit).
                sqlx::query(crate::queues::NOTIFY_ACCEPTED)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }

    Ok(jobs
        .iter()
        .zip(first_in_batch)
        .map(|(job, flags)| {
            job.events
                .iter()
                .zip(flags)
                .map(|(inc, fresh)| {
                    if fresh && inserted.contains(&(inc.partner_id.clone(), inc.event.id.clone())) {
                        Outcome::Accepted
                    } else {
                        Outcome::Duplicate
                    }
                })
                .collect()
        })
        .collect())
}
