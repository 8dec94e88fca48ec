//! The Autotask simulator over real HTTP: what a client of the real API relies on.

use std::time::Duration;

use anyhow::{Result, ensure};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use psabridge_sim::autotask::{Config, Simulator, ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;

struct T {
    sim: Simulator,
    http: reqwest::Client,
    user: String,
    secret: String,
    code: String,
}

async fn start(config: Config) -> Result<T> {
    let user = config.api_users[0].clone();
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    Ok(T {
        sim,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        user: user.username,
        secret: user.secret,
        code: user.integration_code,
    })
}

impl T {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}V1.0/{path}", self.sim.zone_url()))
            .header("ApiIntegrationCode", &self.code)
            .header("UserName", &self.user)
            .header("Secret", &self.secret);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn query(&self, entity: &str, q: Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, &format!("{entity}/query"), Some(q))
            .await
    }

    async fn new_ticket(&self, title: &str) -> Result<i64> {
        let (s, v) = self
            .call(
                Method::POST,
                "Tickets",
                Some(json!({"companyID": 29684101, "title": title, "status": 1, "priority": 2})),
            )
            .await?;
        ensure!(s == StatusCode::OK, "{s} {v}");
        Ok(v["itemId"].as_i64().unwrap_or_default())
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Result<StatusCode> {
        let mut req = self
            .http
            .request(method, format!("{}/_sim/{path}", self.sim.base_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(req.send().await?.status())
    }
}

#[tokio::test]
async fn zone_discovery_points_back_and_names_unknown_users() -> Result<()> {
    let t = start(Config::default()).await?;
    let url = format!("{}/atservicesrest/v1.0/zoneInformation", t.sim.base_url());
    let v: Value = t
        .http
        .get(&url)
        .query(&[("user", &t.user)])
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        v["url"] == t.sim.zone_url() && v["url"].as_str().unwrap_or("").ends_with('/'),
        "{v}"
    );
    let r = t
        .http
        .get(&url)
        .query(&[("user", "nobody@x.example")])
        .send()
        .await?;
    ensure!(r.status() == StatusCode::INTERNAL_SERVER_ERROR);
    ensure!(r.json::<Value>().await?["errors"][0] == "Zone information could not be determined");
    Ok(())
}

#[tokio::test]
async fn authentication_failures_answer_like_autotask() -> Result<()> {
    let t = start(Config::default()).await?;
    let url = format!("{}V1.0/Companies/0", t.sim.zone_url());
    let bad_secret = t
        .http
        .get(&url)
        .header("UserName", &t.user)
        .header("Secret", "wrong")
        .header("ApiIntegrationCode", &t.code)
        .send()
        .await?;
    ensure!(bad_secret.status() == StatusCode::UNAUTHORIZED);
    let bad_code = t
        .http
        .get(&url)
        .header("username", &t.user)
        .header("SECRET", &t.secret)
        .header("apiintegrationcode", "nope")
        .send()
        .await?;
    ensure!(bad_code.status() == StatusCode::INTERNAL_SERVER_ERROR);
    ensure!(bad_code.json::<Value>().await?["errors"][0] == "IntegrationCode is invalid.");
    let (s, v) = t.call(Method::GET, "Companies/0", None).await?;
    ensure!(s == StatusCode::OK && v["item"]["id"] == 0, "{v}");
    Ok(())
}

#[tokio::test]
async fn tickets_validate_like_autotask() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t
        .call(
            Method::POST,
            "Tickets",
            Some(json!({"companyID": 29684101, "status": 1, "priority": 2})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR
            && v["errors"][0]
                .as_str()
                .unwrap_or("")
                .contains("title is required"),
        "{v}"
    );
    let (_, v) = t
        .call(Method::POST, "Tickets", Some(json!({"companyID": 29684101, "title": "x", "status": 1, "priority": 2, "queueID": 99})))
        .await?;
    ensure!(
        v["errors"][0].as_str().unwrap_or("").contains("queueID"),
        "{v}"
    );
    let (_, v) = t
        .call(Method::POST, "Tickets", Some(json!({"companyID": 29684101, "title": "x", "status": 1, "priority": 2, "issueType": 11, "subIssueType": 101})))
        .await?;
    ensure!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("subIssueType"),
        "{v}"
    );
    let (_, v) = t
        .call(Method::POST, "Tickets", Some(json!({"companyID": 29684101, "contactID": ids::CATCH_ALL_CONTACT, "title": "x", "status": 1, "priority": 2})))
        .await?;
    ensure!(
        v["errors"][0].as_str().unwrap_or("").contains("contactID"),
        "a contact of another company: {v}"
    );
    let (_, v) = t
        .call(
            Method::POST,
            "Companies/29684101/Contacts",
            Some(json!({"firstName": "A", "lastName": "B", "isActive": true})),
        )
        .await?;
    ensure!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("Unexpected character"),
        "Json.NET typing: {v}"
    );
    let id = t.new_ticket("Fine").await?;
    let (_, v) = t.call(Method::GET, &format!("Tickets/{id}"), None).await?;
    ensure!(
        v["item"]["ticketNumber"]
            .as_str()
            .is_some_and(|n| n.starts_with('T')),
        "{v}"
    );
    let (s, _) = t
        .call(
            Method::PATCH,
            &format!("Tickets/{id}"),
            Some(json!({"status": 5})),
        )
        .await?;
    ensure!(s == StatusCode::METHOD_NOT_ALLOWED, "no PATCH by id");
    let (s, _) = t
        .call(Method::POST, "TicketNotes", Some(json!({"ticketID": id})))
        .await?;
    ensure!(
        s == StatusCode::METHOD_NOT_ALLOWED,
        "notes are created under their ticket"
    );
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Tickets/{id}/Notes"),
            Some(json!({"title": "n", "description": "d", "noteType": 1, "publish": 1})),
        )
        .await?;
    ensure!(s == StatusCode::OK && v["itemId"].is_i64(), "{v}");
    let (_, v) = t
        .call(
            Method::PATCH,
            "Tickets",
            Some(json!({"id": id, "status": "5"})),
        )
        .await?;
    ensure!(v["itemId"] == id, "{v}");
    let (_, v) = t.call(Method::GET, &format!("tickets/{id}/"), None).await?;
    ensure!(
        v["item"]["status"] == 5 && !v["item"]["completedDate"].is_null(),
        "case-insensitive path, trailing slash: {v}"
    );
    let (s, v) = t.call(Method::GET, "Tickets/123456789", None).await?;
    ensure!(s == StatusCode::OK && v["item"].is_null());
    Ok(())
}

#[tokio::test]
async fn queries_filter_and_page_by_id() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t.query("Contacts", json!({"MaxRecords": 5})).await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR,
        "a filter is required: {v}"
    );
    let (_, v) = t.query("Contacts", json!({"filter": []})).await?;
    ensure!(
        v["items"].as_array().is_some_and(Vec::is_empty),
        "an empty filter matches nothing"
    );
    let (_, v) = t
        .query(
            "Contacts",
            json!({"filter": [{"op": "eq", "field": "shoeSize", "value": 1}]}),
        )
        .await?;
    ensure!(
        v["errors"][0] == "Unable to find shoeSize in the Contacts Entity.",
        "{v}"
    );
    let (_, v) = t
        .query(
            "Tickets",
            json!({"filter": [{"op": "eq", "field": "creatorType", "value": 1}]}),
        )
        .await?;
    ensure!(
        v["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("not queryable"),
        "{v}"
    );
    let (_, v) = t
        .query(
            "Contacts",
            json!({"FILTER": [{"op": "and", "items": [
                {"op": "EQ", "field": "CompanyId", "value": "29684101"},
                {"op": "eq", "field": "emailaddress", "value": "FRONT.DESK@ACMEDENTAL.EXAMPLE"}]}],
                "includeFields": ["emailAddress"]}),
        )
        .await?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        items.len() == 2,
        "two contacts share the front desk's email: {v}"
    );
    ensure!(
        items[0].as_object().is_some_and(|o| o.len() == 3),
        "id, the included field, userDefinedFields: {v}"
    );

    for i in 0..520 {
        t.new_ticket(&format!("bulk {i}")).await?;
    }
    let q = json!({"filter": [{"op": "beginsWith", "field": "title", "value": "bulk"}]});
    let (_, first) = t.query("Tickets", q.clone()).await?;
    ensure!(first["items"].as_array().map(Vec::len) == Some(500));
    ensure!(first["pageDetails"]["prevPageUrl"].is_null());
    let next = first["pageDetails"]["nextPageUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(next.contains("/query/next?paging="), "{next}");
    for method in [Method::GET, Method::POST] {
        let page: Value = t
            .http
            .request(method, &next)
            .header("ApiIntegrationCode", &t.code)
            .header("UserName", &t.user)
            .header("Secret", &t.secret)
            .send()
            .await?
            .json()
            .await?;
        ensure!(page["items"].as_array().map(Vec::len) == Some(20), "{page}");
        ensure!(page["pageDetails"]["nextPageUrl"].is_null());
        let last_first = first["items"][499]["id"].as_i64().unwrap_or_default();
        ensure!(
            page["items"][0]["id"].as_i64().unwrap_or_default() > last_first,
            "ascending ids across pages"
        );
    }
    let (_, c) = t.call(Method::POST, "Tickets/query/count", Some(q)).await?;
    ensure!(c["queryCount"] == 520, "{c}");
    Ok(())
}

#[tokio::test]
async fn thread_and_hourly_limits() -> Result<()> {
    let t = start(Config {
        hourly_limit: 30,
        latency_tiers: false,
        ..Config::default()
    })
    .await?;
    ensure!(
        t.control(
            Method::POST,
            "faults",
            Some(json!({"kind": "delay", "delay_ms": 400, "entity": "Companies"}))
        )
        .await?
            == StatusCode::CREATED
    );
    let calls = (0..5).map(|_| t.call(Method::GET, "Companies/0", None));
    let results = futures::future::join_all(calls).await;
    let limited = results
        .iter()
        .filter(|r| matches!(r, Ok((s, v)) if *s == StatusCode::TOO_MANY_REQUESTS && v.to_string().contains("Itgenatr005")))
        .count();
    ensure!(
        limited == 2,
        "three in flight per endpoint, the rest refused: {results:?}"
    );
    t.control(Method::DELETE, "faults", None).await?;
    let mut refused = None;
    for i in 0..40 {
        let (s, v) = t.call(Method::GET, "ThresholdInformation", None).await?;
        if s == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(i);
            break;
        }
        ensure!(v["externalRequestThreshold"] == 30, "{v}");
    }
    ensure!(
        refused.is_some(),
        "the hourly threshold refuses requests past it"
    );
    Ok(())
}

#[tokio::test]
async fn faults_on_demand() -> Result<()> {
    let t = start(Config::default()).await?;
    t.control(
        Method::POST,
        "faults",
        Some(json!({"kind": "status", "status": 429, "retry_after_secs": 7, "count": 1})),
    )
    .await?;
    let r = t
        .http
        .get(format!("{}V1.0/Companies/0", t.sim.zone_url()))
        .header("ApiIntegrationCode", &t.code)
        .header("UserName", &t.user)
        .header("Secret", &t.secret)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::TOO_MANY_REQUESTS && r.headers()["retry-after"] == "7");
    let (s, _) = t.call(Method::GET, "Companies/0", None).await?;
    ensure!(s == StatusCode::OK, "count: 1 hits once");

    t.control(
        Method::POST,
        "faults",
        Some(json!({"kind": "html", "status": 500, "count": 1})),
    )
    .await?;
    let (s, v) = t.call(Method::GET, "Companies/0", None).await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && v.as_str().is_some_and(|h| h.contains("<html>")),
        "{v}"
    );

    t.control(
        Method::POST,
        "faults",
        Some(json!({"kind": "drop", "count": 1})),
    )
    .await?;
    ensure!(
        t.call(Method::GET, "Companies/0", None).await.is_err(),
        "the connection is dropped"
    );

    t.control(
        Method::POST,
        "faults",
        Some(json!({"kind": "after_commit", "count": 1, "entity": "Tickets", "method": "POST"})),
    )
    .await?;
    ensure!(
        t.call(
            Method::POST,
            "Tickets",
            Some(
                json!({"companyID": 29684101, "title": "lost answer", "status": 1, "priority": 2})
            )
        )
        .await
        .is_err()
    );
    let (_, v) = t
        .query(
            "Tickets",
            json!({"filter": [{"op": "eq", "field": "title", "value": "lost answer"}]}),
        )
        .await?;
    ensure!(
        v["items"].as_array().map(Vec::len) == Some(1),
        "the write was carried out: {v}"
    );

    t.control(
        Method::POST,
        "faults",
        Some(json!({"kind": "timeout", "hold_ms": 3000, "count": 1})),
    )
    .await?;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;
    let r = quick
        .get(format!("{}V1.0/Companies/0", t.sim.zone_url()))
        .header("ApiIntegrationCode", &t.code)
        .header("UserName", &t.user)
        .header("Secret", &t.secret)
        .send()
        .await;
    ensure!(r.is_err_and(|e| e.is_timeout()));
    let stats: Value = t
        .http
        .get(format!("{}/_sim/stats", t.sim.base_url()))
        .send()
        .await?
        .json()
        .await?;
    ensure!(stats["total_requests"].as_u64().unwrap_or(0) > 0, "{stats}");
    ensure!(
        t.control(Method::POST, "faults", Some(json!({"kind": "explode"})))
            .await?
            == StatusCode::BAD_REQUEST
    );
    Ok(())
}

#[tokio::test]
async fn webhooks_are_signed_and_sent_on_status_changes() -> Result<()> {
    let t = start(Config::default()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = headers
                        .get("x-hook-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send((sig, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_, v) = t
        .call(
            Method::POST,
            "TicketWebhooks",
            Some(json!({"name": "test", "webhookUrl": hook_url, "secretKey": "k3y", "isActive": true,
                        "isSubscribedToCreateEvents": false, "isSubscribedToUpdateEvents": true,
                        "isSubscribedToDeleteEvents": false, "sendThresholdExceededNotification": false})),
        )
        .await?;
    let hook = v["itemId"].as_i64().unwrap_or_default();
    let (_, v) = t
        .call(
            Method::POST,
            &format!("TicketWebhooks/{hook}/Fields"),
            Some(json!({"fieldID": 13, "isSubscribedField": true, "isDisplayAlwaysField": false})),
        )
        .await?;
    ensure!(v["itemId"].is_i64(), "{v}");
    let (_, w) = t
        .call(Method::GET, &format!("TicketWebhooks/{hook}"), None)
        .await?;
    let guid = w["item"]["webhookGUID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(guid.len() == 36, "{w}");

    let id = t.new_ticket("watched").await?;
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "title": "renamed"})),
    )
    .await?;
    ensure!(
        t.control(Method::POST, &format!("tickets/{id}/complete"), None)
            .await?
            == StatusCode::OK
    );
    let (sig, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await?
        .expect("a callout");
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(b"k3y")?;
    mac.update(&body);
    let expected = format!(
        "sha1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    ensure!(sig == expected, "signature {sig} != {expected}");
    let payload: Value = serde_json::from_slice(&body)?;
    ensure!(
        payload["Id"] == id && payload["Fields"]["Status"] == 5 && payload["Guid"] == guid.as_str(),
        "{payload}"
    );
    ensure!(
        rx.try_recv().is_err(),
        "the title change (not subscribed) called out nothing"
    );
    Ok(())
}

#[tokio::test]
async fn a_state_file_keeps_data_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        state_file: Some(dir.path().join("sim.json")),
        ..Config::default()
    };
    let t = start(config.clone()).await?;
    let id = t.new_ticket("persisted").await?;
    t.sim.clone().shutdown().await;
    let t2 = start(config).await?;
    let (_, v) = t2.call(Method::GET, &format!("Tickets/{id}"), None).await?;
    ensure!(v["item"]["title"] == "persisted", "{v}");
    Ok(())
}

/// A public Autotask client library (npm `@apigrate/autotask-restapi`) against the simulator.
#[tokio::test]
async fn a_public_client_library_works_against_the_simulator() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/autotask-node");
    if !dir.join("node_modules/@apigrate/autotask-restapi").exists() {
        eprintln!(
            "SKIPPED (client library): run `npm ci` in clients/autotask-node (./scripts/test does)"
        );
        return Ok(());
    }
    let t = start(Config::default()).await?;
    let out = tokio::process::Command::new("node")
        .arg("check.mjs")
        .current_dir(&dir)
        .env("AT_BASE_URL", t.sim.zone_url())
        .env("AT_USER", &t.user)
        .env("AT_SECRET", &t.secret)
        .env("AT_CODE", &t.code)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "the client library check failed:\n{text}"
    );
    ensure!(text.contains("OK:"), "{text}");
    Ok(())
}
