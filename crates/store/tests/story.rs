//! One storage story, told on SQLite and on PostgreSQL: whatever the engine, the store must
//! behave the same.

use std::collections::BTreeMap;
use std::collections::HashSet;

use anyhow::{Result, ensure};
use psabridge_core::event::{Action, EventUser, NewEvent, Severity};
use psabridge_core::fair::Lane;
use psabridge_core::secret::Secret;
use psabridge_core::settings::{EventRule, GroupingMode, PsaKind, TicketDefaults};
use psabridge_store::config::{MappingRow, NewConnection, Principal};
use psabridge_store::ingest::{Incoming, Outcome};
use psabridge_store::outbox::{Attempt, Failure, NewDelivery, RoutingResult, Success};
use psabridge_store::queues::ClaimTerms;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Engine, Store, StoreOptions};
use serde_json::{Map, json};

fn event(id: &str, client: &str, user: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.into(),
        partner: None,
        client: client.into(),
        event_type: "saas.too_many_downloads".into(),
        action: Action::Trigger,
        occurred_at: None,
        severity: Severity::High,
        user: user.map(|u| EventUser {
            email: u.into(),
            name: Some("Ann".into()),
        }),
        title: None,
        details: Some("details".into()),
        data: Map::new(),
    }
}

fn attempt(n: i64, outcome: &str) -> Attempt {
    Attempt {
        attempt: n,
        started_at: 1,
        finished_at: 2,
        outcome: outcome.into(),
        psa_calls: 1,
        summary: None,
        error: None,
    }
}

fn failure(error: &str, retry_at: Option<i64>) -> Failure<'_> {
    Failure {
        error,
        retry_at,
        outcome_unknown: false,
        expired: false,
    }
}

async fn story(store: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;

    // Configuration, with a secret that never appears in clear.
    store.create_partner("msp", "The MSP", t0).await?;
    assert!(
        store.create_partner("msp", "again", t0).await.is_err(),
        "partner ids are unique"
    );
    store.create_token("hash-1", Some("msp"), "t", t0).await?;
    assert_eq!(
        store
            .principal_of_token("hash-1")
            .await?
            .map(|(p, _, name)| (p, name)),
        Some((Principal::Partner("msp".into()), "t".to_string()))
    );
    // The audit log keeps what it is given, per partner, newest first.
    let before = serde_json::json!({"grouping": "user"});
    let after = serde_json::json!({"grouping": "user_and_alert"});
    store
        .record_audit(
            &psabridge_store::audit::NewAuditEntry {
                partner_id: Some("msp"),
                actor: "token:1 \"t\"",
                action: "connection.update",
                target: "connection:1",
                before: Some(&before),
                after: Some(&after),
            },
            t0,
        )
        .await?;
    let log = store.audit_log("msp", None, 10).await?;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].before.as_ref(), log[0].after.as_ref()),
        (Some(&before), Some(&after))
    );
    assert!(store.audit_log("other", None, 10).await?.is_empty());
    assert_eq!(store.principal_of_token("nope").await?, None);
    let mut secrets = BTreeMap::new();
    secrets.insert("secret".to_string(), Secret::new("hunter2"));
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: "msp".into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Map::new(),
                secrets,
            },
            t0,
        )
        .await?;
    assert_eq!(
        store.connection_secrets(conn).await?["secret"].expose(),
        "hunter2"
    );
    let c = store.connection("msp", conn).await?;
    assert_eq!(c.secret_fields, vec!["secret".to_string()]);
    assert!(
        store.connection("other", conn).await.is_err(),
        "scoped to its partner"
    );
    store
        .put_rule(
            conn,
            "saas.too_many_downloads",
            &EventRule {
                create_ticket: true,
                template: None,
                fields: TicketDefaults::from_pairs([("queue", "8")]),
            },
        )
        .await?;
    store
        .put_mapping(
            "msp",
            &MappingRow {
                connection_id: conn,
                client_id: "c1".into(),
                company_id: "100".into(),
                default_contact_id: Some("1001".into()),
                create_tickets: true,
                mapped_at: t0,
                event_set_id: None,
                template_id: None,
                contract_id: None,
                refire: Default::default(),
            },
            Some("Client One"),
        )
        .await?;
    store.set_default_connection("msp", Some(conn)).await?;
    let settings = store.partner_settings("msp").await?;
    assert_eq!(settings.default_connection, Some(conn));
    assert_eq!(settings.mappings["c1"][0].company_id, "100");
    assert_eq!(
        settings.connections[0].rules["saas.too_many_downloads"]
            .fields
            .get("queue"),
        Some("8")
    );
    assert_eq!(
        store.client_name("msp", "c1").await?.as_deref(),
        Some("Client One")
    );

    // Ingestion: ids are idempotent within a batch and across batches.
    let inc = |id: &str, u: &str| Incoming {
        partner_id: "msp".into(),
        event: event(id, "c1", Some(u)),
    };
    let out = store
        .accept_events(
            vec![
                inc("e1", "a@x.io"),
                inc("e2", "a@x.io"),
                inc("e1", "a@x.io"),
            ],
            t0,
        )
        .await?;
    assert_eq!(
        out,
        vec![Outcome::Accepted, Outcome::Accepted, Outcome::Duplicate]
    );
    let out = store
        .accept_events(vec![inc("e2", "a@x.io"), inc("e3", "b@x.io")], t0)
        .await?;
    assert_eq!(out, vec![Outcome::Duplicate, Outcome::Accepted]);
    let many: Vec<Incoming> = (0..1200)
        .map(|i| inc(&format!("bulk-{i}"), "c@x.io"))
        .collect();
    let out = store.accept_events(many, t0).await?;
    assert!(out.iter().all(|o| *o == Outcome::Accepted));

    // Routing is recorded once; the user's events share a group.
    let unrouted = store.unrouted_events(10).await?;
    assert_eq!(unrouted[0].event.id, "e1");
    assert_eq!(unrouted[0].event.user.as_ref().unwrap().email, "a@x.io");
    let decisions: Vec<_> = unrouted
        .iter()
        .take(3)
        .map(|e| {
            let user = &e.event.user.as_ref().unwrap().email;
            (
                e.clone(),
                RoutingResult::Deliver(vec![NewDelivery {
                    channel: "psa",
                    connection_id: conn,
                    group_key: format!("client:c1|user:{user}"),
                    route: json!({"company_id": "100"}),
                }]),
            )
        })
        .collect();
    assert_eq!(store.record_routing(&decisions, t0).await?, 3);
    assert_eq!(
        store.record_routing(&decisions, t0).await?,
        0,
        "routing twice makes nothing twice"
    );
    let skipped = store.unrouted_events(1).await?;
    store
        .record_routing(
            &[(skipped[0].clone(), RoutingResult::Skip("no rule".into()))],
            t0,
        )
        .await?;
    let rec = store.event_record("msp", &skipped[0].event.id).await?;
    assert_eq!(rec.skip_reason.as_deref(), Some("no rule"));

    // Claims take the head of each group only: e1 (a@x.io) and e3 (b@x.io), not e2.
    let claimed = store.claim_deliveries("w1", t0, 60_000, 10, &[], 0).await?;
    let ids: HashSet<&str> = claimed.iter().map(|d| d.event.event.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["e1", "e3"]));
    assert!(
        store
            .claim_deliveries("w2", t0, 60_000, 10, &[], 0)
            .await?
            .is_empty(),
        "nothing else is due"
    );

    // e1 creates the ticket; then e2 (same group) becomes claimable.
    let d1 = claimed
        .iter()
        .find(|d| d.event.event.id == "e1")
        .unwrap()
        .clone();
    assert!(store.mark_create_sent(d1.id, "w1", t0).await?);
    assert!(
        !store.mark_create_sent(d1.id, "intruder", t0).await?,
        "only the lease owner writes"
    );
    let ok = Success {
        psa_action: "created",
        ticket_id: Some("T1".into()),
        ticket_number: None,
        contact_id: Some("1001".into()),
        contact_source: Some("mapping_default"),
        open_alerts: Some(vec!["saas.too_many_downloads".into()]),
    };
    assert!(
        store
            .finish_delivery(&d1, "w1", &ok, &attempt(1, "created"), t0 + 1)
            .await?
    );
    let group = store
        .open_group(conn, "client:c1|user:a@x.io")
        .await?
        .unwrap();
    assert_eq!(group.ticket_id, "T1");
    assert_eq!(
        group.open_alerts,
        Some(vec!["saas.too_many_downloads".to_string()])
    );
    let next = store
        .claim_deliveries("w2", t0 + 2, 60_000, 10, &[], 0)
        .await?;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.event.id, "e2");
    assert_eq!(next[0].attempts, 1);

    // A retryable failure waits; dead waits for a human; a retry by hand brings it back.
    let d2 = next[0].clone();
    assert!(
        store
            .fail_delivery(
                &d2,
                "w2",
                &failure("429", Some(t0 + 10_000)),
                &attempt(1, "retry"),
                t0 + 3
            )
            .await?
    );
    assert!(
        store
            .claim_deliveries("w2", t0 + 4, 60_000, 10, &[], 0)
            .await?
            .is_empty()
    );
    let again = store
        .claim_deliveries("w2", t0 + 10_001, 60_000, 10, &[], 0)
        .await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert!(
        store
            .fail_delivery(
                &again[0],
                "w2",
                &failure("bad request", None),
                &attempt(2, "dead"),
                t0 + 10_002
            )
            .await?
    );
    assert_eq!(
        store
            .retry_deliveries("msp", &[again[0].id], t0 + 10_003)
            .await?,
        1
    );
    let back = store
        .claim_deliveries("w3", t0 + 10_004, 60_000, 10, &[conn], 0)
        .await?;
    assert!(back.is_empty(), "paused connections are not claimed");
    let back = store
        .claim_deliveries("w3", t0 + 10_004, 60_000, 10, &[], 0)
        .await?;
    assert_eq!(back.len(), 1);
    let noted = Success {
        psa_action: "noted",
        ticket_id: Some("T1".into()),
        ticket_number: None,
        contact_id: None,
        contact_source: None,
        open_alerts: Some(vec!["a".into(), "saas.too_many_downloads".into()]),
    };
    assert!(
        store
            .finish_delivery(&back[0], "w3", &noted, &attempt(1, "noted"), t0 + 10_005)
            .await?
    );
    let group = store
        .open_group(conn, "client:c1|user:a@x.io")
        .await?
        .unwrap();
    assert_eq!(group.notes, 1);
    assert_eq!(group.open_alerts.map(|a| a.len()), Some(2));

    // A crashed worker's claim is taken over after its lease; the "create sent" mark survives.
    let d3 = claimed
        .iter()
        .find(|d| d.event.event.id == "e3")
        .unwrap()
        .clone();
    assert!(store.mark_create_sent(d3.id, "w1", t0).await?);
    let taken = store
        .claim_deliveries("w4", t0 + 60_001, 60_000, 10, &[], 0)
        .await?;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, d3.id);
    assert!(
        taken[0].create_sent_at.is_some(),
        "the next attempt must look the ticket up first"
    );
    assert!(
        !store
            .finish_delivery(&d3, "w1", &ok, &attempt(1, "created"), t0)
            .await?,
        "the dead worker lost it"
    );

    // Groups close when the PSA says so; sweeps find what to check; numbers fill in.
    assert_eq!(
        store.groups_to_sweep(conn, t0 + 100_000, 10).await?.len(),
        1
    );
    store
        .record_ticket_numbers(conn, &[("T1".into(), Some("T20261122.0001".into()))])
        .await?;
    let rec = store.event_record("msp", "e1").await?;
    assert_eq!(
        rec.deliveries[0].ticket_number.as_deref(),
        Some("T20261122.0001")
    );
    assert_eq!(rec.deliveries[0].history.len(), 1);
    assert_eq!(
        store
            .close_tickets(conn, &["T1".into()], t0 + 20_000)
            .await?,
        1
    );
    assert!(
        store
            .open_group(conn, "client:c1|user:a@x.io")
            .await?
            .is_none()
    );

    // The log lists and filters.
    let dead = store
        .list_deliveries(
            "msp",
            &psabridge_store::outbox::DeliveryFilter {
                state: Some("delivered".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(dead.len(), 2);
    Ok(())
}

/// Many workers claiming at once never share a delivery.
async fn concurrent_claims(store: Store) -> Result<()> {
    store.create_partner("p", "P", 0).await?;
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: "p".into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Map::new(),
                secrets: BTreeMap::new(),
            },
            0,
        )
        .await?;
    let events: Vec<Incoming> = (0..200)
        .map(|i| Incoming {
            partner_id: "p".into(),
            event: event(&format!("e{i}"), "c", None),
        })
        .collect();
    store.accept_events(events, 0).await?;
    let unrouted = store.unrouted_events(500).await?;
    let decisions: Vec<_> = unrouted
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e,
                RoutingResult::Deliver(vec![NewDelivery {
                    channel: "psa",
                    connection_id: conn,
                    group_key: format!("g{}", i % 50),
                    route: json!({}),
                }]),
            )
        })
        .collect();
    store.record_routing(&decisions, 0).await?;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..20 {
                for d in store
                    .claim_deliveries(&format!("w{w}"), 1, 60_000, 5, &[], 0)
                    .await
                    .unwrap()
                {
                    mine.push((d.id, d.group_key.clone()));
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let ids: HashSet<i64> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), all.len(), "no delivery claimed twice");
    let groups: HashSet<&String> = all.iter().map(|(_, g)| g).collect();
    assert_eq!(
        groups.len(),
        all.len(),
        "one claim per group while its head is in flight"
    );
    assert_eq!(all.len(), 50, "every group's head was claimed");
    Ok(())
}

async fn sqlite_store() -> Result<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    Ok((store, dir))
}

async fn with_pg(name: &str, f: impl AsyncFnOnce(Store) -> Result<()>) -> Result<()> {
    let Some(admin) = pg_url_or_skip(name) else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = f(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_sqlite() -> Result<()> {
    let (store, _dir) = sqlite_store().await?;
    story(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_postgres() -> Result<()> {
    with_pg("story_on_postgres", story).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_on_sqlite() -> Result<()> {
    let (store, _dir) = sqlite_store().await?;
    concurrent_claims(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_on_postgres() -> Result<()> {
    with_pg("concurrent_claims_on_postgres", concurrent_claims).await
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() -> Result<()> {
    let (store, dir) = sqlite_store().await?;
    store.create_partner("p", "P", 0).await?;
    let mut secrets = BTreeMap::new();
    secrets.insert("secret".to_string(), Secret::new("correct-horse-battery"));
    store
        .create_connection(
            &NewConnection {
                partner_id: "p".into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Map::new(),
                secrets,
            },
            0,
        )
        .await?;
    store.close().await;
    for entry in std::fs::read_dir(dir.path())? {
        let bytes = std::fs::read(entry?.path())?;
        assert!(
            !bytes.windows(21).any(|w| w == b"correct-horse-battery"),
            "the secret is in a database file in clear"
        );
    }
    Ok(())
}

// ---- queue heads: the hot queries are index range scans; claims take heads fairly ----

/// Partial indexes whose rows are exactly the work waiting (so reading them in order is
/// proportional to the work done, not to the history).
const PARTIAL_INDEXES_OF_WORK: [&str; 1] = ["events_unrouted"];

/// Whether the PostgreSQL plan node on `line` has an `Index Cond` (its own detail lines run
/// until the next node, marked `->`).
fn pg_node_has_index_cond(plan: &str, line: &str) -> bool {
    plan.lines()
        .skip_while(|l| *l != line)
        .skip(1)
        .take_while(|l| !l.contains("->"))
        .any(|l| l.contains("Index Cond"))
}

async fn plans_use_indexes(store: Store) -> Result<()> {
    for (name, plan) in store.explain_hot_queries().await? {
        println!("{name}:\n{plan}\n");
        for line in plan.lines() {
            let full_scan = match store.engine() {
                // "SCAN t" reads every row (or every entry of an index); "SEARCH t USING
                // INDEX" reads a range of one.
                // A partial index holding only the work to do may be read whole.
                Engine::Sqlite => {
                    line.trim_start_matches(['|', '-', '`', ' '])
                        .starts_with("SCAN ")
                        && !PARTIAL_INDEXES_OF_WORK
                            .iter()
                            .any(|i| line.ends_with(&format!("USING INDEX {i}")))
                }
                // An index scan without an "Index Cond" reads the whole index.
                Engine::Postgres => {
                    line.contains("Seq Scan")
                        || (line.contains("Index") && line.contains("Scan using")
                            || line.contains("Bitmap Index Scan on"))
                            && !PARTIAL_INDEXES_OF_WORK
                                .iter()
                                .any(|i| line.contains(&format!(" {i} ")))
                            && !pg_node_has_index_cond(&plan, line)
                }
            };
            ensure!(!full_scan, "{name}: a full scan in its plan:\n{plan}");
        }
        ensure!(
            plan.to_lowercase().contains("index") || plan.contains("PRIMARY KEY"),
            "{name}: no index in its plan:\n{plan}"
        );
    }
    Ok(())
}

/// Routes `n` events into deliveries of `connection`, `groups` groups round-robin.
async fn backlog(
    store: &Store,
    partner: &str,
    connection: i64,
    n: usize,
    groups: usize,
    now: i64,
) -> Result<()> {
    let incoming: Vec<Incoming> = (0..n)
        .map(|i| Incoming {
            partner_id: partner.into(),
            event: event(&format!("{partner}-{connection}-{i}"), "c1", None),
        })
        .collect();
    store.accept_events(incoming, now).await?;
    let events = store.unrouted_events(100_000).await?;
    let decisions: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(i, ev)| {
            let d = NewDelivery {
                channel: "psa",
                connection_id: connection,
                group_key: format!("g{}", i % groups),
                route: json!({}),
            };
            (ev, RoutingResult::Deliver(vec![d]))
        })
        .collect();
    store.record_routing(&decisions, now).await?;
    Ok(())
}

async fn connection(store: &Store, partner: &str) -> Result<i64> {
    store.create_partner(partner, partner, 0).await?;
    Ok(store
        .create_connection(
            &NewConnection {
                partner_id: partner.into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Map::new(),
                secrets: Default::default(),
            },
            0,
        )
        .await?)
}

async fn heads_and_fairness(store: Store) -> Result<()> {
    let now = 1_800_000_000_000i64;
    let burst = connection(&store, "burst").await?;
    let quiet = connection(&store, "quiet").await?;
    backlog(&store, "burst", burst, 300, 30, now).await?;
    backlog(&store, "quiet", quiet, 1, 1, now).await?;
    ensure!(store.next_due_at().await? == Some(now));

    let terms = ClaimTerms {
        owner: "w1",
        now,
        lease_ms: 60_000,
        settle_ms: 0,
    };
    let lanes = [Lane { id: burst, room: 4 }, Lane { id: quiet, room: 4 }];
    let got = store.claim_fairly(&terms, &lanes, 16, 0).await?;
    // The burst lane takes its room (4), the quiet one its single event.
    ensure!(
        got.iter().filter(|d| d.connection_id == burst).count() == 4,
        "{got:?}"
    );
    ensure!(got.iter().filter(|d| d.connection_id == quiet).count() == 1);
    // Only heads: no two claimed deliveries share a group.
    let mut keys: Vec<_> = got
        .iter()
        .map(|d| (d.connection_id, d.group_key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    ensure!(keys.len() == got.len());

    // With every slot taken by heads of the burst lane, the rest of its 300 wait: 26 more heads.
    let terms2 = ClaimTerms {
        owner: "w2",
        ..terms
    };
    let rest = store
        .claim_fairly(
            &terms2,
            &[Lane {
                id: burst,
                room: 100,
            }],
            100,
            0,
        )
        .await?;
    ensure!(rest.len() == 26, "{} heads", rest.len());
    let again = store
        .claim_fairly(
            &terms2,
            &[Lane {
                id: burst,
                room: 100,
            }],
            100,
            0,
        )
        .await?;
    ensure!(
        again.is_empty(),
        "a group never has two deliveries in flight"
    );

    // Finishing a head makes the next of its group due, at once.
    let first = &got[0];
    let ok = Success {
        psa_action: "noted",
        ticket_id: Some("T1".into()),
        ticket_number: None,
        contact_id: None,
        contact_source: None,
        open_alerts: None,
    };
    ensure!(
        store
            .finish_delivery(first, "w1", &ok, &attempt(1, "noted"), now + 1)
            .await?
    );
    let next = store
        .claim_fairly(
            &ClaimTerms {
                now: now + 2,
                ..terms2
            },
            &[Lane {
                id: first.connection_id,
                room: 10,
            }],
            10,
            0,
        )
        .await?;
    ensure!(next.len() == 1 && next[0].group_key == first.group_key && next[0].id > first.id);

    // The soonest due head is now the end of a lease; when it passes, it is claimable again.
    let due = store.next_due_at().await?.unwrap();
    ensure!(due == now + 60_000, "next due {due}");
    let taken_over = store
        .claim_fairly(
            &ClaimTerms {
                now: now + 60_001,
                ..terms2
            },
            &[Lane {
                id: quiet,
                room: 10,
            }],
            10,
            0,
        )
        .await?;
    ensure!(taken_over.len() == 1 && taken_over[0].attempts == 2);

    // Released orphans become due again, the quiet lane's group finishes and leaves the queue.
    ensure!(
        store.release_orphaned_claims(now + 70_000, 0).await? >= 1
            || store.engine() == Engine::Postgres
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_indexes_on_sqlite() -> Result<()> {
    let (store, _dir) = sqlite_store().await?;
    plans_use_indexes(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_indexes_on_postgres() -> Result<()> {
    with_pg("hot_queries_use_indexes_on_postgres", plans_use_indexes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_take_heads_fairly_on_sqlite() -> Result<()> {
    let (store, _dir) = sqlite_store().await?;
    heads_and_fairness(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_take_heads_fairly_on_postgres() -> Result<()> {
    with_pg("claims_take_heads_fairly_on_postgres", heads_and_fairness).await
}
