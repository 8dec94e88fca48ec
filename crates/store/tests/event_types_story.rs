//! Event types as rows, on SQLite and on PostgreSQL: the catalog seeds them once, a change
//! raises the version every node watches, and a type still named somewhere is deactivated.

use anyhow::Result;
use psabridge_core::email::{EmailRule, parse_address_list};
use psabridge_core::event::Severity;
use psabridge_core::event_types::{EventTypeDef, active_catalog};
use psabridge_store::event_types::Removal;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};

fn def(key: &str, title: &str) -> EventTypeDef {
    EventTypeDef {
        key: key.into(),
        name: key.to_uppercase(),
        category: "Cat".into(),
        default_severity: Severity::High,
        title: title.into(),
        description: "{details}".into(),
        on_by_default: true,
        active: true,
    }
}

async fn story(store: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;
    let v0 = store.event_types_version().await?;

    // Seeding adds missing types once and raises the version only when it added any.
    assert_eq!(
        store
            .seed_event_types(&[def("a", "A {user}"), def("b", "B")], t0)
            .await?,
        2
    );
    let v1 = store.event_types_version().await?;
    assert!(v1 > v0);
    assert_eq!(store.seed_event_types(&[def("a", "other")], t0).await?, 0);
    assert_eq!(store.event_types_version().await?, v1);

    // A change through the API is kept across a later seeding, and raises the version.
    let mut a = def("a", "Changed {client_name}");
    a.on_by_default = false;
    assert!(!store.put_event_type(&a, t0 + 1).await?);
    assert!(store.put_event_type(&def("c", "C"), t0 + 1).await?);
    store
        .seed_event_types(&[def("a", "A {user}")], t0 + 2)
        .await?;
    let (v2, defs) = store.event_type_defs().await?;
    assert!(v2 > v1);
    assert_eq!(
        defs.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(defs[0], a);

    // Unused: deleted. Named by a partner's email settings: deactivated, and left out of the
    // catalog the pipeline reads.
    assert_eq!(
        store.remove_event_type("c", t0 + 3).await?,
        Removal::Deleted
    );
    store.create_partner("msp", "The MSP", t0).await?;
    store
        .put_email_rule(
            "msp",
            "b",
            &EmailRule {
                enabled: true,
                addresses: parse_address_list("x@example.com").unwrap(),
            },
            t0,
        )
        .await?;
    assert_eq!(
        store.remove_event_type("b", t0 + 3).await?,
        Removal::Deactivated
    );
    let (v3, defs) = store.event_type_defs().await?;
    assert!(v3 > v2);
    assert_eq!(defs.len(), 2);
    assert!(!defs[1].active);
    let catalog = active_catalog(&defs);
    assert!(catalog.get("a").is_some() && catalog.get("b").is_none());
    assert!(store.remove_event_type("zzz", t0).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_story_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    story(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_story_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("event_types_story_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = story(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}
