//! The engine against an in-memory PSA whose every answer the test controls: grouping, closed
//! tickets, unknown outcomes after a crash, error classes, and concurrency of one group.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use psabridge_core::catalog::Catalog;
use psabridge_core::event::{Action, EventUser, NewEvent, Severity};
use psabridge_core::settings::{CompanyContact, GroupingMode, PsaKind, TicketDefaults};
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_psa::{
    CallMeter, Company, CompanyPage, ConnectionCheck, Connector, Contact, Contract, NewNote,
    NewTicket, PsaError, PsaLists, TicketRef, TicketState, WebhookRegistration,
};
use psabridge_store::config::{MappingRow, NewConnection};
use psabridge_store::ingest::Incoming;
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreOptions};
use serde_json::Map;
use tokio_util::sync::CancellationToken;

/// What the fake PSA does with the next matching call.
#[derive(Clone, Debug)]
enum Fault {
    /// Fail with this error without doing anything.
    Fail(PsaError),
    /// Do the work, then fail as if the answer was lost.
    AfterCommit,
}

#[derive(Default)]
struct PsaState {
    tickets: BTreeMap<u64, (NewTicket, bool)>,
    notes: Vec<(String, NewNote)>,
    contacts: Vec<Contact>,
    faults: HashMap<&'static str, Vec<Fault>>,
    next_id: u64,
}

#[derive(Clone, Default)]
struct FakePsa {
    state: Arc<Mutex<PsaState>>,
    meter: CallMeter,
}

impl FakePsa {
    fn fault(&self, op: &'static str, f: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(op)
            .or_default()
            .push(f);
    }

    fn next_fault(&self, op: &'static str) -> Option<Fault> {
        let mut s = self.state.lock().unwrap();
        let list = s.faults.get_mut(op)?;
        if list.is_empty() {
            None
        } else {
            Some(list.remove(0))
        }
    }

    fn tickets(&self) -> Vec<(u64, NewTicket, bool)> {
        self.state
            .lock()
            .unwrap()
            .tickets
            .iter()
            .map(|(k, (t, c))| (*k, t.clone(), *c))
            .collect()
    }

    fn notes(&self) -> Vec<(String, NewNote)> {
        self.state.lock().unwrap().notes.clone()
    }

    fn close(&self, id: u64) {
        if let Some(t) = self.state.lock().unwrap().tickets.get_mut(&id) {
            t.1 = true;
        }
    }

    fn reopen(&self, id: u64) {
        if let Some(t) = self.state.lock().unwrap().tickets.get_mut(&id) {
            t.1 = false;
        }
    }
}

fn lost() -> PsaError {
    PsaError::Transient {
        retry_after: None,
        outcome_unknown: true,
        message: "connection reset".into(),
    }
}

#[async_trait]
impl Connector for FakePsa {
    async fn check(&self) -> Result<ConnectionCheck, PsaError> {
        self.meter.record();
        Ok(ConnectionCheck {
            api_url: "fake".into(),
            description: "fake".into(),
        })
    }
    async fn lists(&self) -> Result<PsaLists, PsaError> {
        self.meter.record();
        Ok(PsaLists::new())
    }
    async fn companies(&self, _: Option<&str>, _: Option<&str>) -> Result<CompanyPage, PsaError> {
        self.meter.record();
        Ok(CompanyPage {
            companies: vec![Company {
                id: "100".into(),
                name: "Acme".into(),
                active: true,
            }],
            next: None,
        })
    }
    async fn contacts(&self, company_id: &str) -> Result<Vec<Contact>, PsaError> {
        self.meter.record();
        Ok(self
            .state
            .lock()
            .unwrap()
            .contacts
            .iter()
            .filter(|c| c.company_id == company_id)
            .cloned()
            .collect())
    }
    async fn primary_contact(&self, company_id: &str) -> Result<Option<String>, PsaError> {
        self.meter.record();
        // The first contact of the company stands for its primary contact.
        Ok(self
            .state
            .lock()
            .unwrap()
            .contacts
            .iter()
            .find(|c| c.company_id == company_id)
            .map(|c| c.id.clone()))
    }
    async fn find_contacts_by_email(
        &self,
        company_id: &str,
        email: &str,
    ) -> Result<Vec<Contact>, PsaError> {
        self.meter.record();
        Ok(self
            .state
            .lock()
            .unwrap()
            .contacts
            .iter()
            .filter(|c| c.company_id == company_id && c.email.as_deref() == Some(email))
            .cloned()
            .collect())
    }
    async fn create_ticket(&self, ticket: &NewTicket) -> Result<TicketRef, PsaError> {
        self.meter.record();
        let fault = self.next_fault("create");
        if let Some(Fault::Fail(e)) = fault {
            return Err(e);
        }
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next_id += 1;
            let id = s.next_id;
            s.tickets.insert(id, (ticket.clone(), false));
            id
        };
        match fault {
            Some(Fault::AfterCommit) => Err(lost()),
            _ => Ok(TicketRef {
                id: id.to_string(),
                number: None,
            }),
        }
    }
    async fn find_ticket_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<TicketRef>, PsaError> {
        self.meter.record();
        Ok(self
            .state
            .lock()
            .unwrap()
            .tickets
            .iter()
            .find(|(_, (t, _))| t.reference == reference)
            .map(|(id, _)| TicketRef {
                id: id.to_string(),
                number: None,
            }))
    }
    async fn add_note(&self, ticket_id: &str, note: &NewNote) -> Result<(), PsaError> {
        self.meter.record();
        let fault = self.next_fault("note");
        if let Some(Fault::Fail(e)) = fault {
            return Err(e);
        }
        let exists = self
            .state
            .lock()
            .unwrap()
            .tickets
            .contains_key(&ticket_id.parse::<u64>().unwrap_or(0));
        if !exists {
            return Err(PsaError::NotFound(format!("ticket {ticket_id}")));
        }
        self.state
            .lock()
            .unwrap()
            .notes
            .push((ticket_id.to_string(), note.clone()));
        match fault {
            Some(Fault::AfterCommit) => Err(lost()),
            _ => Ok(()),
        }
    }
    async fn find_note_by_reference(
        &self,
        ticket_id: &str,
        reference: &str,
    ) -> Result<bool, PsaError> {
        self.meter.record();
        Ok(self
            .notes()
            .iter()
            .any(|(t, n)| t == ticket_id && n.reference == reference))
    }
    async fn close_ticket(
        &self,
        ticket_id: &str,
        _close_status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        self.add_note(ticket_id, note).await?;
        self.meter.record();
        self.close(ticket_id.parse().unwrap_or(0));
        Ok(())
    }
    async fn reopen_ticket(
        &self,
        ticket_id: &str,
        _status: Option<&str>,
        note: &NewNote,
    ) -> Result<(), PsaError> {
        self.add_note(ticket_id, note).await?;
        self.meter.record();
        self.reopen(ticket_id.parse().unwrap_or(0));
        Ok(())
    }
    async fn contracts(&self, _company_id: &str) -> Result<Vec<Contract>, PsaError> {
        self.meter.record();
        Ok(Vec::new())
    }
    async fn ticket_states(&self, ids: &[String]) -> Result<Vec<TicketState>, PsaError> {
        self.meter.record();
        let s = self.state.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| {
                s.tickets
                    .get(&id.parse::<u64>().ok()?)
                    .map(|(_, closed)| TicketState {
                        id: id.clone(),
                        closed: *closed,
                        status: if *closed { "5".into() } else { "1".into() },
                        number: Some(format!("T{id}")),
                    })
            })
            .collect())
    }
    async fn register_status_webhook(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<WebhookRegistration>, PsaError> {
        Ok(None)
    }
    fn ready_in(&self) -> Duration {
        Duration::ZERO
    }
    fn meter(&self) -> &CallMeter {
        &self.meter
    }
}

struct World {
    store: Store,
    engine: Engine,
    psa: FakePsa,
    conn: i64,
    _dir: tempfile::TempDir,
}

const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"Alert A\"\ncategory = \"X\"\n\n[[event_type]]\nkey = \"b\"\nname = \"Alert B\"\ncategory = \"X\"\n";

async fn world(grouping: GroupingMode, config: EngineConfig) -> Result<World> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &StoreOptions::new(format!("sqlite://{}", dir.path().join("e.db").display())),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    store.create_partner("p", "P", 0).await?;
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: "p".into(),
                kind: PsaKind::Autotask,
                name: "fake".into(),
                grouping,
                settings: Map::new(),
                secrets: BTreeMap::new(),
            },
            0,
        )
        .await?;
    let defaults = TicketDefaults::from_pairs([("queue", "8"), ("status", "1"), ("priority", "2")]);
    let catch_all = CompanyContact {
        company_id: "900".into(),
        contact_id: Some("9001".into()),
    };
    store
        .update_connection(
            conn,
            None,
            None,
            None,
            None,
            Some(Some(&catch_all)),
            Some(&defaults),
            0,
        )
        .await?;
    store.set_default_connection("p", Some(conn)).await?;
    store
        .put_mapping(
            "p",
            &MappingRow {
                connection_id: conn,
                client_id: "acme".into(),
                company_id: "100".into(),
                default_contact_id: Some("1001".into()),
                create_tickets: true,
                mapped_at: 0,
                event_set_id: None,
                template_id: None,
                contract_id: None,
                refire: Default::default(),
            },
            Some("Acme"),
        )
        .await?;
    let psa = FakePsa::default();
    psa.state.lock().unwrap().contacts.push(Contact {
        id: "1050".into(),
        company_id: "100".into(),
        name: "Ann".into(),
        email: Some("ann@acme.test".into()),
        active: true,
    });
    let registry = ConnectorRegistry::new();
    registry.install(&store.connection("p", conn).await?, Arc::new(psa.clone()));
    let engine = Engine::new(
        store.clone(),
        registry,
        Arc::new(Catalog::parse(CATALOG)?),
        config,
    );
    Ok(World {
        store,
        engine,
        psa,
        conn,
        _dir: dir,
    })
}

fn fast() -> EngineConfig {
    EngineConfig {
        poll_interval: Duration::from_millis(10),
        retry: psabridge_core::retry::RetryPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
            max_attempts: 5,
        },
        sweep_interval: Duration::from_secs(3600),
        settle: Duration::from_millis(50),
        ..Default::default()
    }
}

fn ev(id: &str, ty: &str, user: Option<&str>, action: Action) -> Incoming {
    Incoming {
        partner_id: "p".into(),
        event: NewEvent {
            id: id.into(),
            partner: None,
            client: "acme".into(),
            event_type: ty.into(),
            action,
            occurred_at: None,
            severity: Severity::High,
            user: user.map(|u| EventUser {
                email: u.into(),
                name: None,
            }),
            title: None,
            details: Some(format!("details of {id}")),
            data: Map::new(),
        },
    }
}

impl World {
    /// Accept events and run the engine until every delivery is finished.
    async fn run(&self, events: Vec<Incoming>) -> Result<()> {
        self.run_received_at(events, chrono::Utc::now().timestamp_millis())
            .await
    }

    /// Accept events as if they had arrived at `received_at`, then run as [`World::run`].
    async fn run_received_at(&self, events: Vec<Incoming>, received_at: i64) -> Result<()> {
        let ids: Vec<String> = events.iter().map(|e| e.event.id.clone()).collect();
        self.store.accept_events(events, received_at).await?;
        self.settle(&ids).await
    }

    /// Run the engine until every delivery of `ids` is finished (delivered, dead or expired).
    async fn settle(&self, ids: &[String]) -> Result<()> {
        let stop = CancellationToken::new();
        let tracker = tokio_util::task::TaskTracker::new();
        self.engine.spawn(stop.clone(), &tracker);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        'wait: loop {
            for id in ids {
                let r = self.store.event_record("p", id).await?;
                let done = r.routed_at.is_some()
                    && r.deliveries
                        .iter()
                        .all(|d| matches!(d.state.as_str(), "delivered" | "dead" | "expired"));
                if !done {
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "event {id} not finished: {r:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue 'wait;
                }
            }
            break;
        }
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    async fn delivery(&self, id: &str) -> Result<psabridge_store::outbox::DeliveryView> {
        Ok(self.store.event_record("p", id).await?.deliveries.remove(0))
    }
}

#[tokio::test]
async fn first_alert_creates_later_alerts_note_with_one_call_each() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    w.run(vec![ev("1", "a", Some("ann@acme.test"), Action::Trigger)])
        .await?;
    let calls_after_first = w.psa.meter.total();
    assert_eq!(calls_after_first, 2, "one contact look-up and one create");
    w.run(vec![ev("2", "b", Some("ann@acme.test"), Action::Trigger)])
        .await?;
    assert_eq!(
        w.psa.meter.total() - calls_after_first,
        1,
        "a note is one call"
    );
    let tickets = w.psa.tickets();
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0].1;
    assert_eq!(
        (t.company_id.as_str(), t.contact_id.as_deref()),
        ("100", Some("1050"))
    );
    assert_eq!(t.fields.get("queue"), Some("8"));
    assert!(t.title.contains("Alert A"), "{}", t.title);
    assert_eq!(w.psa.notes().len(), 1);
    assert_eq!(w.delivery("2").await?.psa_action.as_deref(), Some("noted"));
    Ok(())
}

#[tokio::test]
async fn user_and_alert_opens_a_ticket_per_alert_type() -> Result<()> {
    let w = world(GroupingMode::UserAndAlert, fast()).await?;
    w.run(vec![
        ev("1", "a", Some("ann@acme.test"), Action::Trigger),
        ev("2", "b", Some("ann@acme.test"), Action::Trigger),
        ev("3", "b", Some("ann@acme.test"), Action::Trigger),
    ])
    .await?;
    assert_eq!(w.psa.tickets().len(), 2);
    assert_eq!(w.psa.notes().len(), 1);
    Ok(())
}

#[tokio::test]
async fn ten_concurrent_alerts_of_one_user_make_one_ticket_and_nine_notes() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    let events = (0..10)
        .map(|i| {
            ev(
                &format!("c{i}"),
                "a",
                Some("ann@acme.test"),
                Action::Trigger,
            )
        })
        .collect();
    w.run(events).await?;
    assert_eq!(w.psa.tickets().len(), 1);
    assert_eq!(w.psa.notes().len(), 9);
    Ok(())
}

#[tokio::test]
async fn a_stale_open_ticket_is_verified_and_a_closed_one_replaced() -> Result<()> {
    let mut config = fast();
    config.trust_without_webhook = Duration::ZERO;
    let w = world(GroupingMode::User, config).await?;
    w.run(vec![ev("1", "a", Some("ann@acme.test"), Action::Trigger)])
        .await?;
    let first = w.psa.tickets()[0].0;
    w.psa.close(first);
    w.run(vec![ev("2", "a", Some("ann@acme.test"), Action::Trigger)])
        .await?;
    assert_eq!(w.psa.tickets().len(), 2, "a closed ticket is never noted");
    assert!(w.psa.notes().is_empty());
    w.run(vec![ev("3", "a", Some("ann@acme.test"), Action::Trigger)])
        .await?;
    assert_eq!(w.psa.notes().len(), 1, "verified open: noted");
    assert_eq!(w.store.open_groups(w.conn).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    w.psa.fault("create", Fault::AfterCommit);
    w.run(vec![ev("1", "a", None, Action::Trigger)]).await?;
    assert_eq!(w.psa.tickets().len(), 1, "exactly one ticket");
    let d = w.delivery("1").await?;
    assert_eq!(d.state, "delivered");
    assert_eq!(d.attempts, 2);
    assert!(
        d.history[1]
            .summary
            .as_deref()
            .unwrap_or("")
            .contains("earlier attempt"),
        "{d:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_note_whose_answer_was_lost_is_found_not_repeated() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    w.run(vec![ev("1", "a", None, Action::Trigger)]).await?;
    w.psa.fault("note", Fault::AfterCommit);
    w.run(vec![ev("2", "a", None, Action::Trigger)]).await?;
    assert_eq!(w.psa.notes().len(), 1, "exactly one note");
    assert_eq!(w.delivery("2").await?.attempts, 2);
    Ok(())
}

#[tokio::test]
async fn a_known_failure_retries_without_looking_and_invalid_is_dead() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    w.psa.fault(
        "create",
        Fault::Fail(PsaError::RateLimited {
            retry_after: Some(Duration::from_millis(100)),
            message: "slow down".into(),
        }),
    );
    w.run(vec![ev("1", "a", None, Action::Trigger)]).await?;
    let d = w.delivery("1").await?;
    assert_eq!((d.state.as_str(), d.attempts), ("delivered", 2));
    assert!(
        d.history[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("rate_limited")
    );
    assert_eq!(
        w.psa.meter.total(),
        2,
        "two creates, no look-up after a known failure"
    );

    w.psa.fault(
        "create",
        Fault::Fail(PsaError::Invalid("title is required".into())),
    );
    w.run(vec![ev("2", "a", Some("zed@else.test"), Action::Trigger)])
        .await?;
    let d = w.delivery("2").await?;
    assert_eq!((d.state.as_str(), d.attempts), ("dead", 1));
    assert!(
        d.last_error
            .unwrap_or_default()
            .contains("title is required")
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_ticket_is_replaced_and_resolves_need_an_open_ticket() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    w.run(vec![ev("r0", "a", None, Action::Resolve)]).await?;
    assert_eq!(w.delivery("r0").await?.psa_action.as_deref(), Some("none"));
    assert!(w.psa.tickets().is_empty());
    w.run(vec![ev("1", "a", None, Action::Trigger)]).await?;
    w.psa.state.lock().unwrap().tickets.clear();
    w.run(vec![ev("2", "a", None, Action::Trigger)]).await?;
    assert_eq!(
        w.delivery("2").await?.psa_action.as_deref(),
        Some("created")
    );
    w.run(vec![ev("3", "a", None, Action::Resolve)]).await?;
    assert_eq!(w.delivery("3").await?.psa_action.as_deref(), Some("noted"));
    Ok(())
}

#[tokio::test]
async fn unmapped_clients_and_unknown_emails_get_the_right_contact() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    let mut stranger = ev("1", "a", Some("ann@acme.test"), Action::Trigger);
    stranger.event.client = "stranger".into();
    w.run(vec![
        stranger,
        ev("2", "b", Some("nobody@acme.test"), Action::Trigger),
    ])
    .await?;
    let tickets = w.psa.tickets();
    let by_company: HashMap<&str, Option<&str>> = tickets
        .iter()
        .map(|(_, t, _)| (t.company_id.as_str(), t.contact_id.as_deref()))
        .collect();
    assert_eq!(
        by_company.get("900"),
        Some(&Some("9001")),
        "catch-all company and contact"
    );
    assert_eq!(
        by_company.get("100"),
        Some(&Some("1001")),
        "mapping's default contact"
    );
    assert_eq!(
        w.delivery("1").await?.contact_source.as_deref(),
        Some("catch_all")
    );
    Ok(())
}

#[tokio::test]
async fn events_older_than_the_replay_window_are_kept_not_sent_until_replayed() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let two_days_ago = now - 49 * 3600 * 1000;
    // Accepted long ago (the connection was broken since): kept, listed, not sent.
    w.run_received_at(
        vec![
            ev("old-1", "a", Some("ann@acme.test"), Action::Trigger),
            ev("old-2", "b", Some("bob@acme.test"), Action::Trigger),
        ],
        two_days_ago,
    )
    .await?;
    // A recent event of the same user is ticketed: the expired one does not block its group.
    w.run(vec![ev(
        "new-1",
        "a",
        Some("ann@acme.test"),
        Action::Trigger,
    )])
    .await?;
    let old = w.delivery("old-1").await?;
    assert_eq!(old.state, "expired");
    assert!(
        old.last_error
            .as_deref()
            .is_some_and(|e| e.contains("replay window")),
        "{old:?}"
    );
    assert_eq!(old.history.last().map(|a| a.psa_calls), Some(0));
    assert_eq!(
        w.delivery("new-1").await?.psa_action.as_deref(),
        Some("created")
    );
    assert_eq!(
        w.psa.tickets().len(),
        1,
        "only the recent event made a ticket"
    );
    let calls = w.psa.meter.total();

    // Replayed on purpose: sent now (old-1 is a note on ann's ticket, old-2 a new ticket).
    let expired = w
        .store
        .list_deliveries(
            "p",
            &psabridge_store::outbox::DeliveryFilter {
                state: Some("expired".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(expired.len(), 2);
    let ids: Vec<i64> = expired.iter().map(|d| d.id).collect();
    assert_eq!(w.store.retry_deliveries("p", &ids, now).await?, 2);
    w.settle(&["old-1".into(), "old-2".into()]).await?;
    assert_eq!(
        w.delivery("old-1").await?.psa_action.as_deref(),
        Some("noted")
    );
    assert_eq!(
        w.delivery("old-2").await?.psa_action.as_deref(),
        Some("created")
    );
    assert_eq!(w.psa.tickets().len(), 2);
    assert!(w.psa.meter.total() > calls);
    Ok(())
}

#[tokio::test]
async fn the_last_resolve_closes_the_ticket_when_switched_on() -> Result<()> {
    let w = world(GroupingMode::User, fast()).await?;
    let ann = Some("ann@acme.test");
    // Off by default: every alert resolving leaves the ticket open.
    w.run(vec![
        ev("1", "a", ann, Action::Trigger),
        ev("2", "a", ann, Action::Resolve),
    ])
    .await?;
    assert_eq!(w.delivery("2").await?.psa_action.as_deref(), Some("noted"));
    assert!(w.psa.tickets().iter().all(|(_, _, closed)| !closed));

    w.store.set_close_on_resolve(w.conn, true, 0).await?;
    w.run(vec![
        ev("3", "a", ann, Action::Trigger),
        ev("4", "b", ann, Action::Trigger),
        ev("5", "a", ann, Action::Resolve),
    ])
    .await?;
    assert_eq!(
        w.delivery("5").await?.psa_action.as_deref(),
        Some("noted"),
        "alert b is still open"
    );
    assert!(w.psa.tickets().iter().all(|(_, _, closed)| !closed));
    w.run(vec![ev("6", "b", ann, Action::Resolve)]).await?;
    let last = w.delivery("6").await?;
    assert_eq!(last.psa_action.as_deref(), Some("closed"), "{last:?}");
    let tickets = w.psa.tickets();
    assert_eq!(tickets.len(), 1, "all on one ticket");
    assert!(tickets[0].2, "the ticket is closed");
    assert!(
        w.psa
            .notes()
            .iter()
            .any(|(_, n)| n.text.contains("has resolved")),
        "the note says why"
    );
    // The group is closed: the next alert opens a new ticket.
    w.run(vec![ev("7", "a", ann, Action::Trigger)]).await?;
    assert_eq!(
        w.delivery("7").await?.psa_action.as_deref(),
        Some("created")
    );
    assert_eq!(w.psa.tickets().len(), 2);
    Ok(())
}
