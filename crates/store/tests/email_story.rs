//! The email channel's storage, on SQLite and on PostgreSQL: settings per event type, and email
//! deliveries made beside PSA deliveries that never wait on them.

use std::collections::BTreeMap;

use anyhow::Result;
use psabridge_core::email::{
    EMAIL_CHANNEL, EMAIL_CONNECTION_ID, EmailRule, email_group_key, parse_address_list,
};
use psabridge_core::event::{Action, NewEvent, Severity};
use psabridge_core::settings::{GroupingMode, PsaKind};
use psabridge_store::config::NewConnection;
use psabridge_store::ingest::Incoming;
use psabridge_store::outbox::{Attempt, DeliveryFilter, Failure, NewDelivery, RoutingResult};
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};
use serde_json::{Map, json};

fn event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        partner: None,
        client: "c1".into(),
        event_type: "saas.too_many_downloads".into(),
        action: Action::Trigger,
        occurred_at: None,
        severity: Severity::High,
        user: None,
        title: None,
        details: None,
        data: Map::new(),
    }
}

async fn email_story(store: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;
    store.create_partner("msp", "The MSP", t0).await?;

    // Settings: off until set; a change returns what it replaced.
    assert!(store.email_settings("msp").await?.by_event_type.is_empty());
    let rule = EmailRule {
        enabled: true,
        addresses: parse_address_list("a@x.com; b@y.com").unwrap(),
    };
    let before = store
        .put_email_rule("msp", "saas.too_many_downloads", &rule, t0)
        .await?;
    assert_eq!(before, EmailRule::default());
    let off = EmailRule {
        enabled: false,
        ..rule.clone()
    };
    let before = store
        .put_email_rule("msp", "saas.too_many_downloads", &off, t0 + 1)
        .await?;
    assert_eq!(before, rule);
    let got = store.email_settings("msp").await?;
    assert_eq!(got.by_event_type["saas.too_many_downloads"], off);
    assert!(
        store
            .put_email_rule("nobody", "saas.too_many_downloads", &rule, t0)
            .await
            .is_err(),
        "settings belong to an existing partner"
    );

    // One event: a PSA delivery and an email delivery, recorded together.
    let conn = store
        .create_connection(
            &NewConnection {
                partner_id: "msp".into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Map::new(),
                secrets: BTreeMap::new(),
            },
            t0,
        )
        .await?;
    let incoming = ["e1", "e2"].map(|id| Incoming {
        partner_id: "msp".into(),
        event: event(id),
    });
    store.accept_events(incoming.to_vec(), t0).await?;
    let unrouted = store.unrouted_events(10).await?;
    let decisions: Vec<_> = unrouted
        .iter()
        .map(|e| {
            (
                e.clone(),
                RoutingResult::Deliver(vec![
                    NewDelivery {
                        channel: "psa",
                        connection_id: conn,
                        group_key: "one-group".into(),
                        route: json!({"company_id": "1"}),
                    },
                    NewDelivery {
                        channel: EMAIL_CHANNEL,
                        connection_id: EMAIL_CONNECTION_ID,
                        group_key: email_group_key("msp", &e.event.id),
                        route: json!({"recipients": ["a@x.com", "b@y.com"]}),
                    },
                ]),
            )
        })
        .collect();
    assert_eq!(store.record_routing(&decisions, t0).await?, 4);

    // The PSA connection is paused: both emails are claimed anyway, and neither waits on the
    // other or on the event's PSA delivery.
    let claimed = store
        .claim_deliveries("w1", t0, 60_000, 10, &[conn], 0)
        .await?;
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|d| d.channel == EMAIL_CHANNEL
        && d.connection_id == EMAIL_CONNECTION_ID
        && d.route["recipients"][1] == "b@y.com"));

    // A permanent failure makes it dead; it shows in the log with its channel and is retried
    // like any other delivery.
    let d = &claimed[0];
    let attempt = Attempt {
        attempt: 1,
        started_at: t0,
        finished_at: t0,
        outcome: "dead".into(),
        psa_calls: 0,
        summary: None,
        error: Some("550 no such user".into()),
    };
    let failure = Failure {
        error: "550 no such user",
        retry_at: None,
        outcome_unknown: false,
        expired: false,
    };
    assert!(store.fail_delivery(d, "w1", &failure, &attempt, t0).await?);
    let log = store
        .list_deliveries(
            "msp",
            &DeliveryFilter {
                state: Some("dead".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].channel, "email");
    assert_eq!(log[0].last_error.as_deref(), Some("550 no such user"));
    let all = DeliveryFilter {
        limit: 10,
        ..Default::default()
    };
    for (channel, n) in [(Some("email"), 2), (Some("psa"), 2), (None, 4)] {
        let list = store
            .list_deliveries_on_channel("msp", channel, &all)
            .await?;
        assert_eq!(list.len(), n, "{channel:?}");
        assert!(list.iter().all(|v| channel.is_none_or(|c| v.channel == c)));
    }
    assert_eq!(store.retry_deliveries("msp", &[d.id], t0 + 5).await?, 1);
    let again = store
        .claim_deliveries("w2", t0 + 5, 60_000, 10, &[conn], 0)
        .await?;
    assert_eq!(again.iter().map(|x| x.id).collect::<Vec<_>>(), vec![d.id]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_story_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    email_story(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_story_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("email_story_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = email_story(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}
