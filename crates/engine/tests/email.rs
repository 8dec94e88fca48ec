//! The engine's email channel against a scripted `Mailer`: routing adds the email (alone when
//! no PSA takes the event), transient failures are retried with one Message-ID, permanent ones
//! are dead until retried, and without a mailer an email delivery dies saying why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use async_trait::async_trait;
use psabridge_core::catalog::Catalog;
use psabridge_core::email::{EmailRule, parse_address_list};
use psabridge_core::event::{Action, NewEvent, Severity};
use psabridge_engine::mail::{MailError, Mailer, OutgoingMail};
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_store::ingest::Incoming;
use psabridge_store::outbox::DeliveryView;
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreOptions};
use serde_json::Map;
use tokio_util::sync::CancellationToken;

const CATALOG: &str = r#"
[[event_type]]
key = "downloads"
name = "Too many downloads"
category = "Data"
title = "Too many downloads at {client_name}"
description = "{details}"
"#;

/// Answers each send with the next scripted result (then success), and keeps what it sent.
#[derive(Debug, Default)]
struct ScriptedMailer {
    script: Mutex<Vec<Result<(), MailError>>>,
    sent: Mutex<Vec<OutgoingMail>>,
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        self.sent.lock().unwrap().push(mail.clone());
        let mut script = self.script.lock().unwrap();
        if script.is_empty() {
            Ok(())
        } else {
            script.remove(0)
        }
    }

    fn sender_domain(&self) -> &str {
        "msp.example"
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        poll_interval: Duration::from_millis(10),
        retry: psabridge_core::retry::RetryPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
            max_attempts: 5,
        },
        ..Default::default()
    }
}

fn incoming(id: &str) -> Incoming {
    Incoming {
        partner_id: "p".into(),
        event: NewEvent {
            id: id.into(),
            partner: None,
            client: "acme".into(),
            event_type: "downloads".into(),
            action: Action::Trigger,
            occurred_at: None,
            severity: Severity::High,
            user: None,
            title: None,
            details: Some(format!("details of {id}")),
            data: Map::new(),
        },
    }
}

async fn store() -> Result<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    store.create_partner("p", "P", 1).await?;
    store
        .put_email_rule(
            "p",
            "downloads",
            &EmailRule {
                enabled: true,
                addresses: parse_address_list("a@x.example; b@y.example").unwrap(),
            },
            1,
        )
        .await?;
    Ok((store, dir))
}

/// Accept `id`, run the engine until its deliveries are finished, return them.
async fn run(engine: &Engine, id: &str, accept: bool) -> Result<Vec<DeliveryView>> {
    if accept {
        engine
            .store
            .accept_events(vec![incoming(id)], chrono::Utc::now().timestamp_millis())
            .await?;
    }
    let stop = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    engine.spawn(stop.clone(), &tracker);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        let r = engine.store.event_record("p", id).await?;
        if r.routed_at.is_some()
            && !r.deliveries.is_empty()
            && r.deliveries
                .iter()
                .all(|d| matches!(d.state.as_str(), "delivered" | "dead"))
        {
            break r.deliveries;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "event {id} not finished: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_retried_declared_dead_and_replayed() -> Result<()> {
    let (store, _dir) = store().await?;
    let mailer = Arc::new(ScriptedMailer::default());
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::new(),
        Arc::new(Catalog::parse(CATALOG)?),
        config(),
    )
    .with_mailer(mailer.clone());
    ensure!(engine.can_email());

    // No PSA connection: the event is emailed alone. A 4xx first, then accepted.
    mailer
        .script
        .lock()
        .unwrap()
        .push(Err(MailError::Transient("451 try later".into())));
    let ds = run(&engine, "e1", true).await?;
    ensure!(ds.len() == 1, "{ds:?}");
    let d = &ds[0];
    ensure!(
        d.channel == "email" && d.connection_id == 0 && d.state == "delivered",
        "{d:?}"
    );
    ensure!(d.attempts == 2 && d.history[0].outcome == "retry", "{d:?}");
    {
        let sent = mailer.sent.lock().unwrap();
        ensure!(sent.len() == 2, "{sent:?}");
        ensure!(
            sent[0].message_id == sent[1].message_id
                && sent[0].message_id.ends_with("@msp.example>"),
            "{sent:?}"
        );
        ensure!(
            sent[1].recipients == ["a@x.example", "b@y.example"]
                && sent[1].subject == "Too many downloads at acme"
                && sent[1].body.starts_with("details of e1"),
            "{sent:?}"
        );
    }

    // A 5xx: dead with the server's reply; replayed by hand, it is sent.
    mailer
        .script
        .lock()
        .unwrap()
        .push(Err(MailError::Permanent("550 no such mailbox".into())));
    let ds = run(&engine, "e2", true).await?;
    ensure!(
        ds[0].state == "dead"
            && ds[0].attempts == 1
            && ds[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("550 no such mailbox")),
        "{ds:?}"
    );
    let now = chrono::Utc::now().timestamp_millis();
    ensure!(store.retry_deliveries("p", &[ds[0].id], now).await? == 1);
    let ds = run(&engine, "e2", false).await?;
    ensure!(ds[0].state == "delivered", "{ds:?}");
    ensure!(mailer.sent.lock().unwrap().len() == 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mailer_an_email_dies_saying_why() -> Result<()> {
    let (store, _dir) = store().await?;
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::new(),
        Arc::new(Catalog::parse(CATALOG)?),
        config(),
    );
    ensure!(!engine.can_email());
    let ds = run(&engine, "e1", true).await?;
    ensure!(
        ds[0].state == "dead"
            && ds[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("no SMTP server")),
        "{ds:?}"
    );
    Ok(())
}
