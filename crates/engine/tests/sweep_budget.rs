//! The sweep against the Kaseya BMS simulator over HTTP: BMS reads one ticket per request,
//! so with many open tickets on an idle system the sweeps must still stay within their share
//! of the connection's budget, read the stalest tickets first, and give way to deliveries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_core::catalog::Catalog;
use psabridge_core::event::{Action, NewEvent, Severity};
use psabridge_core::secret::Secret;
use psabridge_core::settings::{GroupingMode, PsaKind, TicketDefaults};
use psabridge_engine::sweep::Sweeper;
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_psa::NewTicket;
use psabridge_sim::kaseya_bms::{Config, Simulator};
use psabridge_store::config::NewConnection;
use psabridge_store::ingest::Incoming;
use psabridge_store::outbox::{Attempt, NewDelivery, RoutingResult, Success};
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreOptions};
use serde_json::{Map, Value, json};

const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"Alert A\"\ncategory = \"X\"\n";
/// Our share of BMS's requests an hour per endpoint, high so that a short test measures it.
const PER_HOUR: u32 = 36_000;
const SHARE: f64 = 0.2;
const OPEN_TICKETS: usize = 40;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        partner: None,
        client: "c1".into(),
        event_type: "a".into(),
        action: Action::Trigger,
        occurred_at: None,
        severity: Severity::High,
        user: None,
        title: None,
        details: None,
        data: Map::new(),
    }
}

/// Route one event per group key into a delivery of `connection`; returns the claimed ones.
async fn deliveries(
    store: &Store,
    connection: i64,
    keys: &[String],
    now: i64,
) -> Result<Vec<psabridge_store::outbox::Delivery>> {
    let incoming = keys
        .iter()
        .map(|k| Incoming {
            partner_id: "p".into(),
            event: event(&format!("ev-{k}")),
        })
        .collect();
    store.accept_events(incoming, now).await?;
    let decisions: Vec<_> = store
        .unrouted_events(1000)
        .await?
        .into_iter()
        .map(|ev| {
            let key = ev.event.id.trim_start_matches("ev-").to_string();
            let d = NewDelivery {
                channel: "psa",
                connection_id: connection,
                group_key: key,
                route: json!({}),
            };
            (ev, RoutingResult::Deliver(vec![d]))
        })
        .collect();
    store.record_routing(&decisions, now).await?;
    Ok(store
        .claim_deliveries("setup", now, 60_000, 1000, &[], 0)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_open_bms_tickets_are_swept_within_a_share_of_the_budget() -> Result<()> {
    let sim = Simulator::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Config {
            hourly_limit_per_endpoint: 1_000_000,
            ..Config::default()
        },
    )
    .await?;
    let c = sim.config().clone();
    let fixtures = sim.fixtures();
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &StoreOptions::new(format!("sqlite://{}", dir.path().join("s.db").display())),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    store.create_partner("p", "P", 0).await?;
    let settings = json!({
        "base_url": format!("{}/", sim.base_url()),
        "tenant": c.tenant,
        "username": c.username,
        "requests_per_hour": PER_HOUR,
    });
    let mut secrets = BTreeMap::new();
    secrets.insert("password".to_string(), Secret::new(c.password.clone()));
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: "p".into(),
                kind: PsaKind::KaseyaBms,
                name: "BMS".into(),
                grouping: GroupingMode::User,
                settings: settings.as_object().cloned().unwrap_or_default(),
                secrets: secrets.clone(),
            },
            0,
        )
        .await?;

    // Many open tickets, each the open ticket of a group, none confirmed for a while.
    let bms = psabridge_psa::build(
        PsaKind::KaseyaBms,
        reqwest::Client::new(),
        settings.as_object().unwrap_or(&Map::new()),
        &secrets,
    )?;
    let mut defaults = TicketDefaults::new();
    for (k, v) in fixtures["defaults"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        defaults.set(&k, s(&v));
    }
    let keys: Vec<String> = (0..OPEN_TICKETS).map(|i| format!("g{i}")).collect();
    let long_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let claimed = deliveries(&store, conn, &keys, long_ago).await?;
    ensure!(claimed.len() == OPEN_TICKETS);
    for d in &claimed {
        let t = bms
            .create_ticket(&NewTicket {
                company_id: s(&fixtures["company_id"]),
                contact_id: Some(s(&fixtures["contact_id"])),
                title: format!("Alert for {}", d.group_key),
                description: "details".into(),
                fields: defaults.clone(),
                reference: format!("ref-{}", d.id),
                contract_id: None,
                configuration_item_id: None,
            })
            .await?;
        let ok = Success {
            psa_action: "created",
            ticket_id: Some(t.id.clone()),
            ticket_number: Some(format!("T{}", t.id)),
            contact_id: None,
            contact_source: None,
            open_alerts: None,
        };
        let attempt = Attempt {
            attempt: 1,
            started_at: long_ago,
            finished_at: long_ago,
            outcome: "created".into(),
            psa_calls: 1,
            summary: None,
            error: None,
        };
        ensure!(
            store
                .finish_delivery(d, "setup", &ok, &attempt, long_ago)
                .await?
        );
    }

    let interval = Duration::from_millis(100);
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::new(),
        Arc::new(Catalog::parse(CATALOG)?),
        EngineConfig {
            sweep_interval: interval,
            sweep_age: Duration::from_millis(1),
            sweep_share: SHARE,
            ..EngineConfig::default()
        },
    );
    let ticket_reads = || -> u64 {
        sim.stats()["by_endpoint"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("GET") && k.contains("/servicedesk/tickets/{"))
                    .map(|(_, v)| v.as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let before = ticket_reads();

    // An idle system sweeping every 100 ms for 5 s.
    let mut sweeper = Sweeper::default();
    let started = std::time::Instant::now();
    let run_for = Duration::from_secs(5);
    while started.elapsed() < run_for {
        sweeper.sweep_once(&engine).await?;
        tokio::time::sleep(interval).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let reads = ticket_reads() - before;
    let allowed = f64::from(PER_HOUR) * SHARE / 3600.0 * seconds + 1.0;
    ensure!(
        (reads as f64) <= allowed,
        "{reads} ticket reads in {seconds:.1} s; the share allows {allowed:.1} (stats: {})",
        sim.stats()
    );
    ensure!(
        (reads as f64) >= allowed * 0.6,
        "the sweep must still use its share: {reads} reads, {allowed:.1} allowed"
    );
    // Stalest first: no ticket was read twice while another waited.
    let confirmed = store
        .open_groups(conn)
        .await?
        .iter()
        .filter(|g| g.confirmed_open_at > long_ago)
        .count();
    ensure!(
        confirmed as u64 == reads,
        "{confirmed} tickets confirmed by {reads} reads"
    );

    // Deliveries go first: with one due on the connection, the sweep spends nothing.
    let accepted = store
        .accept_events(
            vec![Incoming {
                partner_id: "p".into(),
                event: event("ev-busy"),
            }],
            chrono::Utc::now().timestamp_millis(),
        )
        .await?;
    ensure!(accepted.len() == 1);
    let pending: Vec<_> = store
        .unrouted_events(10)
        .await?
        .into_iter()
        .map(|ev| {
            let d = NewDelivery {
                channel: "psa",
                connection_id: conn,
                group_key: "busy".into(),
                route: json!({}),
            };
            (ev, RoutingResult::Deliver(vec![d]))
        })
        .collect();
    store
        .record_routing(&pending, chrono::Utc::now().timestamp_millis())
        .await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = ticket_reads();
    sweeper.sweep_once(&engine).await?;
    ensure!(
        ticket_reads() == before,
        "a sweep read tickets while a delivery was due"
    );
    Ok(())
}
