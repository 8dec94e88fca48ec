//! Usage storage on SQLite and PostgreSQL: reports are idempotent by id, the high-water mark of
//! each period only rises (also under concurrent writers), and periods follow the partner's
//! billing calendar.

use anyhow::Result;
use chrono::{DateTime, Utc};
use psabridge_core::billing::BillingCalendar;
use psabridge_core::usage::NewUsage;
use psabridge_store::ingest::Outcome;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn report(id: &str, client: &str, units: u64, observed: &str) -> NewUsage {
    NewUsage {
        id: id.into(),
        partner: None,
        client: client.into(),
        metric: "users".into(),
        units,
        observed_at: at(observed),
    }
}

async fn usage_story(store: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;
    store.create_partner("msp", "The MSP", t0).await?;
    assert_eq!(
        store.billing_calendar("msp").await?,
        BillingCalendar::utc_months()
    );

    let outcomes = store
        .record_usage(
            "msp",
            &[
                report("u1", "c1", 10, "2026-12-01T10:00:00Z"),
                report("u2", "c1", 14, "2026-12-02T10:00:00Z"),
                report("u3", "c1", 9, "2026-12-03T10:00:00Z"),
                report("u4", "c2", 3, "2026-11-30T23:00:00Z"),
            ],
            t0,
        )
        .await?;
    assert_eq!(outcomes, vec![Outcome::Accepted; 4]);
    // A resend changes nothing, even with another count.
    let again = store
        .record_usage(
            "msp",
            &[report("u2", "c1", 99, "2026-12-02T10:00:00Z")],
            t0 + 1,
        )
        .await?;
    assert_eq!(again, vec![Outcome::Duplicate]);

    let december = store.high_water_marks("msp", "2026-12").await?;
    assert_eq!(december.len(), 1);
    assert_eq!(
        (december[0].client_id.as_str(), december[0].units),
        ("c1", 14)
    );
    assert_eq!(december[0].reports, 3);
    let november = store.high_water_marks("msp", "2026-11").await?;
    assert_eq!(
        (november[0].client_id.as_str(), november[0].units),
        ("c2", 3)
    );

    // Unknown clients are registered, as events do.
    assert!(store.clients("msp").await?.iter().any(|c| c.id == "c2"));

    // A partner in New York: 23:00 UTC on 30 November is still November there, and 03:00 UTC
    // on 1 December too.
    store
        .set_billing_calendar("msp", &BillingCalendar::new("America/New_York", 1).unwrap())
        .await?;
    store
        .record_usage(
            "msp",
            &[report("u5", "c3", 5, "2026-12-01T03:00:00Z")],
            t0 + 2,
        )
        .await?;
    let november = store.high_water_marks("msp", "2026-11").await?;
    assert!(november.iter().any(|m| m.client_id == "c3" && m.units == 5));

    // Concurrent reports never lower the mark.
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_usage(
                    "msp",
                    &[report(
                        &format!("c-{i}"),
                        "busy",
                        (i * 37) % 101,
                        "2026-12-10T12:00:00Z",
                    )],
                    t0 + 10,
                )
                .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let marks = store.high_water_marks("msp", "2026-12").await?;
    let busy = marks.iter().find(|m| m.client_id == "busy").unwrap();
    let highest = (0..40u64).map(|i| (i * 37) % 101).max().unwrap();
    assert_eq!((busy.units, busy.reports), (highest, 40));

    assert!(matches!(
        store.billing_calendar("nobody").await,
        Err(psabridge_store::StoreError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_story_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    usage_story(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_story_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("usage_story_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = usage_story(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}
