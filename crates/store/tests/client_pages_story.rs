//! Pages of a partner's clients on SQLite and PostgreSQL: searched by id or name in any case
//! (wildcards taken literally), filtered by mapped or not and by a list, ordered by name, cut
//! into pages with the right total, and each client's mappings read for the page only.

use std::collections::BTreeMap;

use anyhow::{Result, ensure};
use psabridge_core::settings::{GroupingMode, PsaKind};
use psabridge_store::client_pages::ClientFilter;
use psabridge_store::config::{MappingRow, NewConnection};
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};
use serde_json::Map;

fn ids(page: &psabridge_store::client_pages::ClientPage) -> Vec<&str> {
    page.clients.iter().map(|c| c.id.as_str()).collect()
}

async fn client_pages_story(store: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;
    for p in ["msp", "other"] {
        store.create_partner(p, p, t0).await?;
    }
    // 30 clients named out of id order; two with LIKE's wildcards in their names.
    for i in 0..30 {
        let id = format!("c{i:02}");
        let name = format!("Client {:02}", 29 - i);
        store.put_client("msp", &id, &name, t0).await?;
    }
    store
        .put_client("msp", "pct", "Zeta 100% Dental_Care", t0)
        .await?;
    store
        .put_client("msp", "plain", "Zeta 1000 Dentalxcare", t0)
        .await?;
    store.put_client("other", "c00", "Someone Else", t0).await?;
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
    for id in ["c00", "c05", "c10"] {
        store
            .put_mapping(
                "msp",
                &MappingRow {
                    connection_id: conn,
                    client_id: id.into(),
                    company_id: format!("co-{id}"),
                    default_contact_id: None,
                    create_tickets: true,
                    mapped_at: t0,
                    event_set_id: None,
                    template_id: None,
                    contract_id: None,
                    refire: Default::default(),
                },
                None,
            )
            .await?;
    }

    // Everything, by name: "Client 00" (c29) … "Client 29" (c00), then the two "Zeta …" (in
    // the database's collation: punctuation may or may not count).
    let all = store
        .client_page("msp", &ClientFilter::default(), 0, 10)
        .await?;
    ensure!(all.total == 32, "{}", all.total);
    ensure!(
        ids(&all)[..4] == ["c29", "c28", "c27", "c26"],
        "{:?}",
        ids(&all)
    );
    let last = store
        .client_page("msp", &ClientFilter::default(), 28, 2)
        .await?;
    ensure!(ids(&last) == ["c01", "c00"], "{:?}", ids(&last));
    ensure!(
        last.clients[1].mapped_on == vec![conn],
        "mapped on the connection"
    );
    ensure!(last.clients[0].mapped_on.is_empty());

    // Search: any case, in the id or the name; % and _ are literal.
    let search = |s: &str| ClientFilter {
        search: s.into(),
        ..ClientFilter::default()
    };
    let found = store.client_page("msp", &search("CLIENT 2"), 0, 50).await?;
    ensure!(found.total == 10, "Client 20..29: {}", found.total);
    let found = store.client_page("msp", &search("c1"), 0, 50).await?;
    ensure!(found.total == 10, "ids c10..c19: {}", found.total);
    let found = store.client_page("msp", &search("0%"), 0, 50).await?;
    ensure!(ids(&found) == ["pct"], "{:?}", ids(&found));
    let found = store.client_page("msp", &search("dental_"), 0, 50).await?;
    ensure!(ids(&found) == ["pct"], "{:?}", ids(&found));

    // Mapped, not mapped, among a list, excluding some.
    let mapped = store
        .client_page(
            "msp",
            &ClientFilter {
                mapped: Some(true),
                excluding: vec!["c05".into()],
                ..ClientFilter::default()
            },
            0,
            50,
        )
        .await?;
    ensure!(ids(&mapped) == ["c10", "c00"], "{:?}", ids(&mapped));
    let unmapped = store
        .client_page(
            "msp",
            &ClientFilter {
                mapped: Some(false),
                ..ClientFilter::default()
            },
            0,
            50,
        )
        .await?;
    ensure!(unmapped.total == 29, "{}", unmapped.total);
    let among = store
        .client_page(
            "msp",
            &ClientFilter {
                among: Some(vec!["c05".into(), "plain".into(), "nobody".into()]),
                search: "client".into(),
                ..ClientFilter::default()
            },
            0,
            50,
        )
        .await?;
    ensure!(ids(&among) == ["c05"], "{:?}", ids(&among));
    let none = store
        .client_page(
            "msp",
            &ClientFilter {
                among: Some(Vec::new()),
                ..ClientFilter::default()
            },
            0,
            50,
        )
        .await?;
    ensure!(none.total == 0 && none.clients.is_empty());

    // Another partner's clients are never listed.
    let other = store
        .client_page("other", &ClientFilter::default(), 0, 50)
        .await?;
    ensure!(ids(&other) == ["c00"] && other.clients[0].mapped_on.is_empty());

    // Mappings of a page's clients, and one client read by its key.
    let m = store
        .mappings_of("msp", &["c05".into(), "c06".into(), "c10".into()])
        .await?;
    ensure!(m.iter().map(|m| m.client_id.as_str()).collect::<Vec<_>>() == ["c05", "c10"]);
    ensure!(store.mappings_of("msp", &[]).await?.is_empty());
    let c = store.client("msp", "c05").await?;
    ensure!(c.name == "Client 24" && c.mapped_on == vec![conn]);
    ensure!(store.client("other", "c05").await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pages_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    client_pages_story(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pages_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("client_pages_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = client_pages_story(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}
