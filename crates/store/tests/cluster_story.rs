//! What nodes of a cluster share through the database, on SQLite and PostgreSQL: a periodic
//! job's lease is held by one node at a time, renewed by its holder, taken over by another
//! node once it expires (its holder died), and given up at shutdown; the schema is current.

use anyhow::Result;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};

async fn lease_story(a: Store, b: Store) -> Result<()> {
    assert!(
        a.migrations_missing().await?.is_empty(),
        "a fresh store is current"
    );
    let t0 = 1_800_000_000_000i64;
    let lease = 30_000;
    assert_eq!(a.job_lease("sweep").await?, None);
    assert!(
        a.hold_job("sweep", "node-a", t0, lease).await?,
        "a free job is taken"
    );
    assert!(
        !b.hold_job("sweep", "node-b", t0 + 1, lease).await?,
        "a held job is not taken by another node"
    );
    // The holder renews, and keeps it past its first lease.
    assert!(a.hold_job("sweep", "node-a", t0 + 20_000, lease).await?);
    assert!(!b.hold_job("sweep", "node-b", t0 + 40_000, lease).await?);
    assert_eq!(
        b.job_lease("sweep").await?,
        Some(("node-a".to_string(), t0 + 50_000))
    );
    // node-a dies: once its lease ran out, node-b takes over, and node-a cannot renew.
    assert!(b.hold_job("sweep", "node-b", t0 + 50_000, lease).await?);
    assert!(!a.hold_job("sweep", "node-a", t0 + 50_001, lease).await?);
    // Another job is leased on its own.
    assert!(a.hold_job("billing", "node-a", t0 + 50_001, lease).await?);
    // Giving up: only the holder's release counts; then anyone may take it at once.
    a.release_job("sweep", "node-a").await?;
    assert!(!a.hold_job("sweep", "node-a", t0 + 50_002, lease).await?);
    b.release_job("sweep", "node-b").await?;
    assert!(a.hold_job("sweep", "node-a", t0 + 50_003, lease).await?);
    Ok(())
}

/// A pause recorded by one node holds the connection on every node until it ends; a shorter
/// pause never shortens a longer one.
async fn pause_story(a: Store, b: Store) -> Result<()> {
    let t0 = 1_800_000_000_000i64;
    assert!(b.paused_connections(t0).await?.is_empty());
    a.pause_connection(7, t0 + 30_000).await?;
    a.pause_connection(7, t0 + 5_000).await?;
    a.pause_connection(8, t0 + 1_000).await?;
    let mut seen = b.paused_connections(t0).await?;
    seen.sort();
    assert_eq!(seen, vec![7, 8]);
    assert_eq!(b.paused_connections(t0 + 10_000).await?, vec![7]);
    assert!(b.paused_connections(t0 + 30_000).await?.is_empty());
    Ok(())
}

/// Many nodes racing for an expired lease: exactly one wins each round.
async fn one_winner(stores: Vec<Store>) -> Result<()> {
    let t0 = 1_900_000_000_000i64;
    for round in 0..10i64 {
        let now = t0 + round * 100_000; // every earlier lease has expired
        let mut races = Vec::new();
        for (i, s) in stores.iter().enumerate() {
            let s = s.clone();
            races.push(tokio::spawn(async move {
                s.hold_job("race", &format!("node-{i}"), now, 10_000).await
            }));
        }
        let mut winners = 0;
        for r in races {
            if r.await?? {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    Ok(())
}

/// Nodes racing to reserve chunks of one budget slice: together they get exactly its limit,
/// never more; another slice, scope or connection has its own; old slices are forgotten.
async fn budget_story(stores: Vec<Store>) -> Result<()> {
    let t0 = 1_900_000_000_000i64;
    let mut races = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        for _ in 0..8 {
            let s = s.clone();
            races.push(tokio::spawn(async move {
                let mut got = 0u32;
                loop {
                    let n = s.reserve_budget(5, "", t0, 100, 7).await?;
                    if n == 0 {
                        return Ok::<_, anyhow::Error>((i, got));
                    }
                    assert!(n <= 7);
                    got += n;
                }
            }));
        }
    }
    let mut total = 0;
    for r in races {
        total += r.await??.1;
    }
    assert_eq!(
        total, 100,
        "the nodes together reserved exactly the slice's limit"
    );
    let s = &stores[0];
    assert_eq!(s.reserve_budget(5, "", t0, 100, 7).await?, 0);
    assert_eq!(s.reserve_budget(5, "", t0 + 60_000, 100, 7).await?, 7);
    assert_eq!(s.reserve_budget(5, "GET /tickets", t0, 100, 7).await?, 7);
    assert_eq!(s.reserve_budget(6, "", t0, 3, 7).await?, 3);
    assert_eq!(s.reserve_budget(6, "", t0, 3, 7).await?, 0);
    // A lower limit set meanwhile is honoured, never negative.
    assert_eq!(s.reserve_budget(5, "", t0 + 60_000, 5, 7).await?, 0);
    assert_eq!(s.forget_budgets(t0 + 60_000).await?, 3);
    Ok(())
}

fn keys() -> KeyRing {
    KeyRing::parse(&KeyRing::generate_key()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_leases_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&StoreOptions::new(url), keys()).await?;
    lease_story(store.clone(), store.clone()).await?;
    pause_story(store.clone(), store.clone()).await?;
    one_winner(vec![store.clone(); 4]).await?;
    budget_story(vec![store.clone(); 3]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_leases_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("job_leases_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let key = KeyRing::generate_key();
    // Three nodes: three stores (three pools) on one database.
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Store::open(&StoreOptions::new(&db.url), KeyRing::parse(&key).unwrap()).await?);
    }
    let result = async {
        lease_story(nodes[0].clone(), nodes[1].clone()).await?;
        pause_story(nodes[1].clone(), nodes[2].clone()).await?;
        one_winner(nodes.clone()).await?;
        budget_story(nodes.clone()).await
    }
    .await;
    for n in &nodes {
        n.close().await;
    }
    db.drop_database().await;
    result
}
