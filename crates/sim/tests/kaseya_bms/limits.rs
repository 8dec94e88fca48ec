//! The hourly quota per endpoint.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::StatusCode;

use crate::common::{msg, start};

#[tokio::test]
async fn each_endpoint_has_its_own_hourly_quota() -> Result<()> {
    let t = start(Config {
        hourly_limit_per_endpoint: 3,
        ..Config::default()
    })
    .await?;
    for _ in 0..3 {
        let (s, _) = t.get("/v2/system/queues/lookup").await?;
        ensure!(s == StatusCode::OK);
    }
    let r = t
        .request(reqwest::Method::GET, "/v2/system/queues/lookup")
        .send()
        .await?;
    ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = r.headers()["retry-after"].to_str()?.parse()?;
    ensure!(after > 3000 && after <= 3600, "{after}");
    let (_, v) = crate::common::body(r).await?;
    ensure!(
        v["success"] == false && v["error"]["code"] == 429 && msg(&v).contains("rate limit"),
        "{v}"
    );
    // Another endpoint, and the same endpoint with other ids, count apart / together.
    let (s, _) = t.get("/v2/system/statuses/lookup").await?;
    ensure!(s == StatusCode::OK, "another endpoint");
    for id in [1001, 1002, 1003] {
        let (s, _) = t.get(&format!("/v2/servicedesk/tickets/{id}")).await?;
        ensure!(s == StatusCode::OK);
    }
    let (s, _) = t.get("/v2/servicedesk/tickets/1001").await?;
    ensure!(
        s == StatusCode::TOO_MANY_REQUESTS,
        "one endpoint whatever the id"
    );
    // The login endpoint has its quota too (one login was made by the harness).
    for _ in 0..2 {
        let (s, _) = t.login(&[]).await?;
        ensure!(s == StatusCode::OK);
    }
    let (s, v) = t.login(&[]).await?;
    ensure!(
        s == StatusCode::TOO_MANY_REQUESTS && v["success"] == false,
        "{s} {v}"
    );
    // A reset clears the quotas.
    t.control(reqwest::Method::POST, "reset", None).await?;
    let (s, _) = t.get("/v2/system/queues/lookup").await?;
    ensure!(s == StatusCode::OK);
    Ok(())
}
