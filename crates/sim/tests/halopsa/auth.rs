//! Discovery, the token endpoint and bearer authentication.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::{ApiClient, Config};
use reqwest::{Method, StatusCode};

use crate::common::{body, start};

#[tokio::test]
async fn authinfo_names_the_auth_server_without_authentication() -> Result<()> {
    let t = start(Config::default()).await?;
    let v = body(
        t.http
            .get(format!("{}/api/AuthInfo", t.sim.base_url()))
            .send()
            .await?,
    )
    .await?;
    ensure!(v.0 == StatusCode::OK, "{v:?}");
    ensure!(v.1["auth_url"] == t.sim.auth_url(), "{v:?}");
    Ok(())
}

#[tokio::test]
async fn token_success_and_each_failure() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t
        .token("demo", "psabridge-demo", "halo-demo-secret")
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    ensure!(
        v["token_type"] == "Bearer" && v["expires_in"] == 3600 && v["scope"] == "all",
        "{v}"
    );

    let (s, v) = t.token("demo", "psabridge-demo", "wrong").await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && v["error"] == "invalid_client",
        "{s} {v}"
    );
    let (s, v) = t.token("demo", "someone-else", "halo-demo-secret").await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && v["error"] == "invalid_client",
        "{s} {v}"
    );
    let (s, v) = t
        .token("nosuchtenant", "psabridge-demo", "halo-demo-secret")
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR,
        "an unknown tenant fails as reported: {s} {v}"
    );
    ensure!(
        v["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("tenant"),
        "{v}"
    );

    // Without ?tenant= (as the PyPI client sends it): accepted by default.
    let r = t
        .http
        .post(format!("{}/AUTH/Token", t.sim.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=psabridge-demo&client_secret=halo-demo-secret&scope=all")
        .send()
        .await?;
    ensure!(r.status() == StatusCode::OK);

    // JSON instead of a form, and another grant.
    let (s, v) = body(
        t.http
            .post(format!("{}/auth/token?tenant=demo", t.sim.base_url()))
            .json(&serde_json::json!({"grant_type": "client_credentials"}))
            .send()
            .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && v["error"] == "invalid_request",
        "{s} {v}"
    );
    let (s, v) = body(
        t.http
            .post(format!("{}/auth/token?tenant=demo", t.sim.base_url()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=password&client_id=psabridge-demo&client_secret=halo-demo-secret")
            .send()
            .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && v["error"] == "unsupported_grant_type",
        "{s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn the_api_wants_a_live_bearer_token() -> Result<()> {
    let mut t = start(Config::default()).await?;
    t.get("Status").await?;
    let r = t
        .http
        .get(format!("{}/api/Status", t.sim.base_url()))
        .send()
        .await?;
    ensure!(r.status() == StatusCode::UNAUTHORIZED);
    ensure!(r.headers().contains_key("www-authenticate"));
    t.sim.expire_tokens();
    let (s, _) = t.call(Method::GET, "Status", None).await?;
    ensure!(s == StatusCode::UNAUTHORIZED, "an expired token");
    let (_, v) = t
        .token("demo", "psabridge-demo", "halo-demo-secret")
        .await?;
    t.token = v["access_token"].as_str().unwrap_or_default().to_string();
    t.get("Status").await?;
    Ok(())
}

#[tokio::test]
async fn an_application_without_permissions_gets_403() -> Result<()> {
    let mut config = Config::default();
    config.api_clients.push(ApiClient {
        client_id: "no-perms".into(),
        client_secret: "s".into(),
        forbidden: true,
    });
    let mut t = start(config).await?;
    let (s, v) = t.token("demo", "no-perms", "s").await?;
    ensure!(s == StatusCode::OK, "{v}");
    t.token = v["access_token"].as_str().unwrap_or_default().to_string();
    let (s, v) = t.call(Method::GET, "Agent/me", None).await?;
    ensure!(
        s == StatusCode::FORBIDDEN && v["Message"].is_string(),
        "{s} {v}"
    );
    Ok(())
}
