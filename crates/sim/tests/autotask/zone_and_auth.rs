//! Zone discovery, authentication, versions and routing.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{body, err, start};

#[tokio::test]
async fn zone_discovery_points_back_without_auth() -> Result<()> {
    let t = start(Config::default()).await?;
    for path in [
        "atservicesrest/v1.0/zoneInformation",
        "ATServicesRest/V1.0/ZoneInformation/",
    ] {
        let r = t
            .http
            .get(format!("{}/{path}", t.sim.base_url()))
            .query(&[("user", t.user.to_uppercase())])
            .send()
            .await?;
        let (s, v) = body(r).await?;
        ensure!(s == StatusCode::OK, "{s} {v}");
        ensure!(v["url"] == t.sim.zone_url().as_str(), "{v}");
        ensure!(
            v["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/ATServicesRest/")),
            "trailing slash, no version: {v}"
        );
        ensure!(
            v["zoneName"].is_string() && v["webUrl"].is_string() && v["ci"].is_i64(),
            "{v}"
        );
    }
    for user in ["nobody@x.example", ""] {
        let r = t
            .http
            .get(format!(
                "{}/ATServicesRest/V1.0/zoneInformation",
                t.sim.base_url()
            ))
            .query(&[("user", user)])
            .send()
            .await?;
        let (s, v) = body(r).await?;
        ensure!(s == StatusCode::INTERNAL_SERVER_ERROR, "{s}");
        ensure!(err(&v) == "Zone information could not be determined", "{v}");
    }
    // Zone discovery is not limited: a database over its threshold still answers it.
    let limited = start(Config {
        hourly_limit: 1,
        latency_tiers: false,
        ..Config::default()
    })
    .await?;
    limited.call(Method::GET, "Companies/0", None).await?;
    let (s, _) = limited.call(Method::GET, "Companies/0", None).await?;
    ensure!(s == StatusCode::TOO_MANY_REQUESTS);
    let r = limited
        .http
        .get(format!(
            "{}/ATServicesRest/V1.0/zoneInformation?user={}",
            limited.sim.base_url(),
            limited.user
        ))
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn versions_modules_and_live_thresholds() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = body(
        t.http
            .get(format!(
                "{}/ATServicesRest/VersionInformation",
                t.sim.base_url()
            ))
            .send()
            .await?,
    )
    .await?;
    ensure!(s == StatusCode::OK && v["apiVersions"][0] == "1.0", "{v}");
    let (_, v) = t.call(Method::GET, "Version", None).await?;
    ensure!(
        v["majorVersion"].is_string() && v["build"].is_string(),
        "{v}"
    );
    let (_, v) = t.call(Method::GET, "Modules", None).await?;
    ensure!(
        v["modules"][0]["key"].is_i64() && v["modules"][0]["value"].is_boolean(),
        "{v}"
    );
    let (_, a) = t.call(Method::GET, "ThresholdInformation/", None).await?;
    let (_, b) = t.call(Method::GET, "thresholdinformation", None).await?;
    ensure!(
        a["externalRequestThreshold"] == 10000 && a["requestThresholdTimeframe"] == 60,
        "{a}"
    );
    let n = |v: &Value| v["currentTimeframeRequestCount"].as_i64().unwrap_or(-1);
    ensure!(
        n(&a) >= 1 && n(&b) == n(&a) + 1,
        "live counts, the call itself included: {a} {b}"
    );
    Ok(())
}

#[tokio::test]
async fn each_authentication_failure() -> Result<()> {
    let t = start(Config::default()).await?;
    let url = format!("{}V1.0/Companies/0", t.sim.zone_url());
    let send = |user: &str, secret: &str, code: &str| {
        t.http
            .get(&url)
            .header("UserName", user)
            .header("Secret", secret)
            .header("ApiIntegrationCode", code)
            .send()
    };
    ensure!(
        send(&t.user, "wrong", &t.code).await?.status() == StatusCode::UNAUTHORIZED,
        "bad secret"
    );
    ensure!(
        send("someone@else.example", &t.secret, &t.code)
            .await?
            .status()
            == StatusCode::UNAUTHORIZED,
        "bad user"
    );
    ensure!(
        t.http.get(&url).send().await?.status() == StatusCode::UNAUTHORIZED,
        "no headers"
    );
    let (s, v) = body(send(&t.user, &t.secret, "NOTTHECODE").await?).await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v) == "IntegrationCode is invalid.",
        "{s} {v}"
    );
    // Header names in any case (apigrate sends `ApiIntegrationcode`).
    let r = t
        .http
        .get(&url)
        .header("username", &t.user)
        .header("SECRET", &t.secret)
        .header("ApiIntegrationcode", &t.code)
        .send()
        .await?;
    let (s, v) = body(r).await?;
    ensure!(s == StatusCode::OK && v["item"]["id"] == 0, "{s} {v}");
    Ok(())
}

#[tokio::test]
async fn routes_versions_and_verbs() -> Result<()> {
    let t = start(Config::default()).await?;
    let base = t.sim.base_url();
    let (s, v) = body(
        t.request(
            Method::GET,
            &format!("{base}/ATServicesRest/V1.05/Companies/0"),
        )
        .send()
        .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::NOT_FOUND,
        "a wrong version segment: {s} {v}"
    );
    let (s, v) = body(
        t.request(
            Method::GET,
            &format!("{base}/ATServicesRest/V1.0/Gadgets/query"),
        )
        .send()
        .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::NOT_FOUND && v.as_str().is_some_and(|h| h.contains("404")),
        "{s} {v}"
    );
    let (s, _) = body(
        t.request(Method::GET, &format!("{base}/somewhere/else"))
            .send()
            .await?,
    )
    .await?;
    ensure!(s == StatusCode::NOT_FOUND);
    let (s, v) = t.call(Method::DELETE, "Tickets", None).await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED
            && v["Message"] == "The requested resource does not support http method 'DELETE'.",
        "{s} {v}"
    );
    let (s, v) = t.call(Method::PUT, "Tickets/query", None).await?;
    ensure!(s == StatusCode::METHOD_NOT_ALLOWED, "{s} {v}");
    let (s, _) = t
        .call(
            Method::POST,
            "Resources",
            Some(serde_json::json!({"firstName": "x"})),
        )
        .await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED,
        "resources are not created through the API"
    );
    // Case-insensitive paths, trailing slashes.
    let (s, v) = body(
        t.request(
            Method::GET,
            &format!("{base}/atservicesrest/v1.0/companies/0/"),
        )
        .send()
        .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::OK && v["item"]["companyName"] == "Bridgewater IT Services",
        "{s} {v}"
    );
    // IIS refuses query strings over 2048 characters.
    let long = "x".repeat(2100);
    let (s, _) = body(
        t.request(
            Method::GET,
            &format!("{}V1.0/Tickets/query?search={long}", t.sim.zone_url()),
        )
        .send()
        .await?,
    )
    .await?;
    ensure!(s == StatusCode::NOT_FOUND);
    Ok(())
}
