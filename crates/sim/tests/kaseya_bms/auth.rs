//! Logging in, tokens, and what a bad credential gets.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{body, form, msg, start};

#[tokio::test]
async fn a_url_encoded_login_gives_a_bearer_token() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t.login(&[]).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    ensure!(v["success"] == true && v["error"].is_null(), "{v}");
    let r = &v["result"];
    for k in [
        "accessToken",
        "refreshToken",
        "accessTokenExpireOn",
        "refreshTokenExpireOn",
    ] {
        ensure!(r[k].is_string(), "camelCase {k}: {v}");
    }
    ensure!(
        r["accessToken"]
            .as_str()
            .is_some_and(|a| a.split('.').count() == 3),
        "JWT-shaped"
    );
    ensure!(v.get("totalRecords").is_none(), "not a paged endpoint");
    let info = t.result(Method::GET, "/v2/security/userinfo", None).await?;
    ensure!(
        info["userId"].is_i64() && info["fullName"].is_string(),
        "{info}"
    );
    Ok(())
}

#[tokio::test]
async fn a_multipart_login_works_too_and_names_are_case_insensitive() -> Result<()> {
    let t = start(Config::default()).await?;
    let c = t.sim.config();
    let b = "----psabridge42";
    let mut text = String::new();
    for (k, v) in [
        ("GRANTTYPE", "password"),
        ("UserName", c.username.as_str()),
        ("Password", c.password.as_str()),
        ("Tenant", "DEMO-MSP"),
    ] {
        text.push_str(&format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    text.push_str(&format!("--{b}--\r\n"));
    let (s, v) = body(
        t.http
            .post(t.url("/V2/Security/Authenticate"))
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(text)
            .send()
            .await?,
    )
    .await?;
    ensure!(s == StatusCode::OK && v["success"] == true, "{s} {v}");
    Ok(())
}

#[tokio::test]
async fn each_bad_credential_is_refused_with_the_failure_envelope() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t.login(&[("tenant", "no-such-msp")]).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && v["success"] == false,
        "{s} {v}"
    );
    ensure!(msg(&v).contains("tenant"), "{v}");
    ensure!(v["result"].is_null() && v["error"]["code"] == 401, "{v}");
    let (s, v) = t.login(&[("password", "wrong")]).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && msg(&v).contains("password"),
        "{s} {v}"
    );
    let (s, v) = t.login(&[("userName", "nobody")]).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && msg(&v).contains("username"),
        "{s} {v}"
    );
    let (s, v) = t.login(&[("grantType", "")]).await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && msg(&v).contains("GrantType"),
        "{s} {v}"
    );
    // JSON is not a form.
    let (s, v) = body(
        t.http
            .post(t.url("/v2/security/authenticate"))
            .json(&serde_json::json!({"GrantType": "password"}))
            .send()
            .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::UNSUPPORTED_MEDIA_TYPE && v["success"] == false,
        "{s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn the_failure_status_of_a_login_is_configurable() -> Result<()> {
    let t = start(Config {
        auth_failure_status: 200,
        ..Config::default()
    })
    .await?;
    let (s, v) = t.login(&[("password", "wrong")]).await?;
    ensure!(s == StatusCode::OK && v["success"] == false, "{s} {v}");
    Ok(())
}

#[tokio::test]
async fn calls_need_a_valid_bearer_token() -> Result<()> {
    let t = start(Config::default()).await?;
    let path = "/v2/system/queues/lookup";
    let (s, v) = body(t.http.get(t.url(path)).send().await?).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && v["success"] == false,
        "{s} {v}"
    );
    let (s, v) = body(t.http.get(t.url(path)).bearer_auth("forged").send().await?).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && msg(&v).contains("invalid"),
        "{s} {v}"
    );
    let (s, _) = t.get(path).await?;
    ensure!(s == StatusCode::OK);
    // A revoked token (the tenant logged the user out) meets 401.
    t.control(Method::POST, "revoke-tokens", None).await?;
    let (s, _) = t.get(path).await?;
    ensure!(s == StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn tokens_expire_and_refresh() -> Result<()> {
    let t = start(Config {
        token_ttl_secs: 1,
        ..Config::default()
    })
    .await?;
    let (_, v) = t.login(&[]).await?;
    let access = v["result"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refresh = v["result"]["refreshToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (s, v) = body(
        t.http
            .get(t.url("/v2/system/queues/lookup"))
            .bearer_auth(&access)
            .send()
            .await?,
    )
    .await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && msg(&v).contains("expired"),
        "{s} {v}"
    );
    let refreshed = |a: &str, r: &str| {
        t.http
            .post(t.url("/v2/security/refreshtoken"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("AccessToken", a), ("RefreshToken", r)]))
            .send()
    };
    let (s, v) = body(refreshed(&access, &refresh).await?).await?;
    ensure!(
        s == StatusCode::OK && v["result"]["accessToken"].is_string(),
        "{s} {v}"
    );
    // A refresh token is used once.
    let (s, v): (StatusCode, Value) = body(refreshed(&access, &refresh).await?).await?;
    ensure!(
        s == StatusCode::UNAUTHORIZED && v["success"] == false,
        "{s} {v}"
    );
    Ok(())
}
