//! The scenarios of a large backlog: ingestion, idle CPU and claims with a million pending
//! deliveries (`backlog`), and one partner's single events beside another partner's burst on
//! a slow PSA (`fairness`).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use psabridge_core::fair::Lane;
use psabridge_store::queues::ClaimTerms;
use psabridge_store::testing::Backlog;
use serde_json::{Value, json};

use super::{BenchArgs, Sut, client, get_json, ingest_load_as, mixed_event, ms};

/// Groups and clients the preloaded deliveries are spread over.
const GROUPS: u64 = 20_000;
const CLIENTS: u64 = 2_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Wait until every accepted event is routed (so that measurements start from a settled state).
async fn routed(store: &psabridge_store::Store, timeout: Duration) -> Result<()> {
    let end = Instant::now() + timeout;
    while store.unrouted_count().await? > 0 {
        if Instant::now() > end {
            bail!("events were not routed within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn pending(store: &psabridge_store::Store) -> Result<i64> {
    Ok(store
        .delivery_counts()
        .await?
        .iter()
        .filter(|(s, _)| matches!(s.as_str(), "pending" | "retrying" | "in_flight"))
        .map(|(_, n)| n)
        .sum())
}

fn engine_name(args: &BenchArgs) -> &'static str {
    if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

pub async fn scenario_backlog(args: &BenchArgs) -> Result<Value> {
    // The PSA budget is the bottleneck: our share is 3,600 requests an hour (one a second).
    let sut = Sut::start(args, 0, Some(3600), 10_000).await?;
    let (connection, _, partner) = sut.partner(&args.psa);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty = ingest_load_as(&sut, args, 1, "empty").await?;
    let store = sut.store().await?;
    routed(&store, Duration::from_secs(120)).await?;

    let t = Instant::now();
    let loaded = store
        .preload_backlog(&Backlog {
            partner_id: &partner,
            connection_id: connection,
            deliveries: args.preload,
            groups: GROUPS,
            clients: CLIENTS,
            now: now_ms(),
        })
        .await?;
    let preload_secs = t.elapsed().as_secs_f64();
    let before = pending(&store).await?;

    let full = ingest_load_as(&sut, args, 1, "full").await?;
    routed(&store, Duration::from_secs(120)).await?;

    // Only the PSA budget limits delivery now: the engine should be nearly idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(10);
    let cpu_before = sut.cpu_time();
    tokio::time::sleep(window).await;
    let cpu_pct = (sut.cpu_time() - cpu_before).as_secs_f64() / window.as_secs_f64() * 100.0;

    // Claims against the backlog, timed from outside (each claim is given back at once).
    let mut claims = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..200 {
        let now = now_ms();
        let terms = ClaimTerms {
            owner: "bench-claims",
            now,
            lease_ms: 60_000,
            settle_ms: 30_000,
        };
        let lanes = [Lane {
            id: connection,
            room: 8,
        }];
        let t = Instant::now();
        let got = store.claim_fairly(&terms, &lanes, 8, 0).await?;
        let _ = claims.record(t.elapsed().as_micros().max(1) as u64);
        for d in got {
            store.release_delivery(d.id, "bench-claims", now).await?;
        }
    }

    let rate = |l: &super::Load| l.events as f64 / l.elapsed.as_secs_f64();
    let (rate_empty, rate_full) = (rate(&empty), rate(&full));
    let (p99_empty, p99_full) = (
        ms(empty.hist.value_at_quantile(0.99)),
        ms(full.hist.value_at_quantile(0.99)),
    );
    println!(
        "backlog ({}, {loaded} deliveries preloaded in {preload_secs:.0} s over {GROUPS} groups of {CLIENTS} clients; {before} pending): \
         single-event ingestion {rate_full:.0} events/s vs {rate_empty:.0} empty ({:.0}%), p99 {p99_full:.2} ms vs {p99_empty:.2} ms ({:.2}x); \
         engine CPU while the PSA budget limits delivery {cpu_pct:.1}% of one core; claim p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        engine_name(args),
        rate_full / rate_empty * 100.0,
        p99_full / p99_empty,
        ms(claims.value_at_quantile(0.5)),
        ms(claims.value_at_quantile(0.99)),
        ms(claims.max()),
    );
    let out = json!({
        "scenario": "backlog", "database": engine_name(args), "preloaded": loaded, "pending": before,
        "events_per_sec_empty": rate_empty.round(), "events_per_sec_backlog": rate_full.round(),
        "p99_ms_empty": p99_empty, "p99_ms_backlog": p99_full, "engine_cpu_pct": (cpu_pct * 10.0).round() / 10.0,
        "claim_p99_ms": ms(claims.value_at_quantile(0.99)),
    });
    store.close().await;
    sut.drop_database().await;
    Ok(out)
}

/// Post `ids` single events of a partner at `per_sec`, then wait for each to be delivered
/// and return the event-to-ticket times (received → delivered).
async fn ticket_times(
    sut: &Sut,
    token: &str,
    ids: std::ops::Range<usize>,
    per_sec: f64,
) -> Result<Histogram<u64>> {
    let http = client()?;
    let gap = Duration::from_secs_f64(1.0 / per_sec);
    let start = Instant::now();
    let mut posted = Vec::new();
    for (k, i) in ids.enumerate() {
        tokio::time::sleep_until((start + gap * k as u32).into()).await;
        let e = mixed_event(i);
        let r = http
            .post(format!("{}/api/v1/events", sut.api))
            .bearer_auth(token)
            .json(&e)
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("posting: {}", r.text().await?);
        }
        posted.push(e["id"].as_str().unwrap_or_default().to_string());
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
    let end = Instant::now() + Duration::from_secs(120);
    for id in &posted {
        loop {
            let e = get_json(
                &http,
                &format!("{}/api/v1/events/{id}", sut.api),
                Some(token),
            )
            .await?;
            let received =
                chrono::DateTime::parse_from_rfc3339(e["received_at"].as_str().unwrap_or_default());
            let deliveries = e["deliveries"].as_array().cloned().unwrap_or_default();
            let done: Vec<_> = deliveries
                .iter()
                .filter_map(|d| d["delivered_at"].as_str())
                .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .collect();
            let skipped = e["skip_reason"].is_string();
            if let (Ok(r), false) = (received, done.is_empty()) {
                for d in done {
                    let _ = hist.record((d - r).num_milliseconds().max(1) as u64);
                }
                break;
            }
            if skipped || Instant::now() > end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(hist)
}

pub async fn scenario_fairness(args: &BenchArgs) -> Result<Value> {
    // Partner A: a PSA that takes 2 s per request, with a burst of pending deliveries.
    // Partner B: another PSA (its simulator inside the product, no added latency), posting
    // single events now and then. B must not wait behind A.
    const SLOW_MS: u64 = 2000;
    let other = if args.psa == "halopsa" {
        "connectwise"
    } else {
        "halopsa"
    };
    let sut = Sut::start_with(args, SLOW_MS, Some(1_000_000), 1_000_000, &[other]).await?;
    let (a_connection, a_token, a_partner) = sut.partner(&args.psa);
    let (_, b_token, _) = sut.partner(other);
    let store = sut.store().await?;

    // One event of A first, so its deliveries have a route to copy.
    let http = client()?;
    http.post(format!("{}/api/v1/events", sut.api))
        .bearer_auth(&a_token)
        .json(&mixed_event(900_000))
        .send()
        .await?;
    routed(&store, Duration::from_secs(60)).await?;

    let quiet = ticket_times(&sut, &b_token, 0..20, 2.0).await?;
    let burst = args.preload / 2;
    store
        .preload_backlog(&Backlog {
            partner_id: &a_partner,
            connection_id: a_connection,
            deliveries: burst,
            groups: GROUPS,
            clients: CLIENTS,
            now: now_ms(),
        })
        .await?;
    // Let A's slow deliveries take every slot they can.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = ticket_times(&sut, &b_token, 1000..1040, 2.0).await?;
    println!(
        "fairness ({}): {other} partner's event-to-ticket p50/p99/max {} / {} / {} ms while the {} partner has {burst} pending on a PSA taking {SLOW_MS} ms a request \
         (without that burst: {} / {} / {} ms)",
        engine_name(args),
        busy.value_at_quantile(0.5),
        busy.value_at_quantile(0.99),
        busy.max(),
        args.psa,
        quiet.value_at_quantile(0.5),
        quiet.value_at_quantile(0.99),
        quiet.max(),
    );
    let out = json!({
        "scenario": "fairness", "database": engine_name(args), "burst_pending": burst, "slow_psa_ms": SLOW_MS,
        "other_p99_ms_quiet": quiet.value_at_quantile(0.99), "other_p99_ms_beside_burst": busy.value_at_quantile(0.99),
        "other_events": busy.len(),
    });
    store.close().await;
    sut.drop_database().await;
    Ok(out)
}
