//! Usage intake and high-water marks over real HTTP, on SQLite and PostgreSQL: single reports
//! and batches, each bad field named while the good reports are kept, resends that change
//! nothing, the billing calendar, and one partner's usage invisible to another.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::Server;

fn report(id: &str, client: &str, units: u64, at: &str) -> Value {
    json!({"id": id, "partner": "msp-a", "client": client, "metric": "users",
           "units": units, "observed_at": at})
}

async fn usage_over_http(s: &Server) -> Result<()> {
    let vendor = s.vendor_token.clone();
    let b_token = psabridge_web::auth::new_token();
    s.store
        .create_token(
            &psabridge_web::auth::token_hash(&b_token),
            Some("msp-b"),
            "b",
            0,
        )
        .await?;

    // One report.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/usage",
            Some(report("u1", "c1", 12, "2026-11-03T10:00:00Z")),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v, json!({"id": "u1", "status": "accepted"}));

    // A batch with one bad report: the good ones are kept, the bad one named by its path.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/usage",
            Some(json!({"usage": [
                report("u2", "c1", 20, "2026-11-20T10:00:00Z"),
                report("u1", "c1", 99, "2026-11-03T10:00:00Z"),
                {"id": "u3", "partner": "msp-a", "client": "c2", "metric": "users", "units": -4,
                 "observed_at": "2026-11-20T10:00:00Z"},
                report("u4", "c1", 15, "2026-11-25T10:00:00Z"),
            ]})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        (
            v["accepted"].clone(),
            v["duplicates"].clone(),
            v["rejected"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    assert_eq!(v["results"][2]["errors"][0]["path"], "usage[2].units");
    assert_eq!(v["results"][1]["status"], "duplicate");

    // The mark is the period's highest count, not the last one nor the resent 99.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::GET,
            "/api/v1/partners/msp-a/usage?period=2026-11",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["usage"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["usage"][0]["units"], 20);
    assert_eq!(v["usage"][0]["reports"], 3);
    assert_eq!(v["usage"][0]["period_start"], "2026-11-01T00:00:00+00:00");

    // Partner B sees none of it, and cannot report for A.
    let (st, v) = s
        .bearer(
            &b_token,
            Method::GET,
            "/api/v1/partners/msp-a/usage?period=2026-11",
            None,
        )
        .await?;
    assert!(
        st == StatusCode::NOT_FOUND || st == StatusCode::FORBIDDEN,
        "{st} {v}"
    );
    let (st, v) = s
        .bearer(
            &b_token,
            Method::POST,
            "/api/v1/usage",
            Some(report("b1", "c1", 1, "2026-11-03T10:00:00Z")),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "partner");
    let (st, v) = s
        .bearer(
            &b_token,
            Method::GET,
            "/api/v1/partners/msp-b/usage?period=2026-11",
            None,
        )
        .await?;
    assert_eq!((st, v["usage"].clone()), (StatusCode::OK, json!([])));

    // The calendar: bad settings named; a good one moves later reports' periods.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/partners/msp-a/billing-calendar",
            Some(json!({"time_zone": "Mars/Olympus"})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "time_zone");
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/partners/msp-a/billing-calendar",
            Some(json!({"time_zone": "Europe/Berlin", "anchor_day": 31})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "anchor_day");
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/partners/msp-a/billing-calendar",
            Some(json!({"time_zone": "Europe/Berlin", "anchor_day": 15})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["time_zone"], &v["anchor_day"], &v["sync_hour"]),
        (&json!("Europe/Berlin"), &json!(15), &json!(2)),
        "{v}"
    );
    assert!(
        v["next_sync_at"].is_string(),
        "the nightly sync is scheduled: {v}"
    );
    // The nightly hour is kept when left out, changed when given, and checked.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/partners/msp-a/billing-calendar",
            Some(json!({"time_zone": "Europe/Berlin", "anchor_day": 15, "sync_hour": 24})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "sync_hour");
    let (st, v) = s
        .bearer(
            &vendor,
            Method::GET,
            "/api/v1/partners/msp-a/billing-calendar",
            None,
        )
        .await?;
    assert_eq!((st, &v["sync_hour"]), (StatusCode::OK, &json!(2)), "{v}");
    s.bearer(
        &vendor,
        Method::POST,
        "/api/v1/usage",
        Some(report("u5", "c1", 7, "2026-12-03T10:00:00Z")),
    )
    .await?;
    let (_, v) = s
        .bearer(
            &vendor,
            Method::GET,
            "/api/v1/partners/msp-a/usage?period=2026-11",
            None,
        )
        .await?;
    let c1 = v["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["period_start"] == "2026-11-14T23:00:00+00:00")
        .cloned();
    assert_eq!(c1.map(|m| m["units"].clone()), Some(json!(7)), "{v}");
    let (st, v) = s
        .bearer(
            &vendor,
            Method::GET,
            "/api/v1/partners/msp-a/usage?period=2026-13",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "period");

    // The calendar change is audited.
    let audit = s.store.audit_log("msp-a", None, 50).await?;
    assert!(audit.iter().any(|e| e.action == "billing_calendar.put"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_sqlite() -> Result<()> {
    let s = Server::start(false, "usage_on_sqlite").await?.unwrap();
    let r = usage_over_http(&s).await;
    s.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_postgres() -> Result<()> {
    let Some(s) = Server::start(true, "usage_on_postgres").await? else {
        return Ok(());
    };
    let r = usage_over_http(&s).await;
    s.stop().await;
    r
}
