//! `system/callbacks`: records like the other collections, and signed callouts on ticket
//! changes, verifiable with the key the callout's `Metadata.key_url` names.

use anyhow::{Result, ensure};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use psabridge_sim::connectwise::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{ids, start};

fn callback(url: &str, description: &str) -> Value {
    json!({"url": url, "objectId": 1, "type": "Ticket", "level": "owner",
           "description": description, "inactiveFlag": false})
}

#[tokio::test]
async fn callbacks_are_listed_filtered_paged_changed_and_deleted() -> Result<()> {
    let t = start(Config::default()).await?;
    for i in 1..=3 {
        let a = t
            .send(
                Method::POST,
                "system/callbacks",
                callback(&format!("https://hooks.example/{i}"), &format!("cb {i}")),
            )
            .await?;
        ensure!(a.status == StatusCode::CREATED, "{}", a.body);
        ensure!(a.body.get("__signingKey").is_none(), "{}", a.body);
    }
    let bad = t
        .send(Method::POST, "system/callbacks", json!({"type": "Ticket"}))
        .await?;
    ensure!(bad.status == StatusCode::BAD_REQUEST, "{}", bad.body);
    ensure!(bad.body["errors"][0]["field"] == "url", "{}", bad.body);

    let found = t
        .get_q(
            "system/callbacks",
            &[("conditions", "url=\"https://hooks.example/2\"")],
        )
        .await?;
    ensure!(ids(&found.body).len() == 1, "{}", found.body);
    let id = ids(&found.body)[0];
    let page = t
        .get_q("system/callbacks", &[("pageSize", "2"), ("page", "2")])
        .await?;
    ensure!(ids(&page.body).len() == 1, "{}", page.body);
    let count = t.get("system/callbacks/count").await?;
    ensure!(count.body["count"] == 3, "{}", count.body);

    let patched = t
        .send(
            Method::PATCH,
            &format!("system/callbacks/{id}"),
            json!([{"op": "replace", "path": "inactiveFlag", "value": true}]),
        )
        .await?;
    ensure!(patched.body["inactiveFlag"] == true, "{}", patched.body);
    let gone = t
        .send(
            Method::DELETE,
            &format!("system/callbacks/{id}"),
            Value::Null,
        )
        .await?;
    ensure!(gone.status == StatusCode::NO_CONTENT, "{}", gone.body);
    let again = t.get(&format!("system/callbacks/{id}")).await?;
    ensure!(again.status == StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn a_technicians_close_is_called_back_signed() -> Result<()> {
    let t = start(Config::default()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/cb", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let a = t
        .send(Method::POST, "system/callbacks", callback(&url, "ours"))
        .await?;
    ensure!(a.status == StatusCode::CREATED, "{}", a.body);

    let fx = t.fixtures().await?;
    let ticket = t
        .send(
            Method::POST,
            "service/tickets",
            json!({"summary": "x", "company": {"id": fx["company_id"].as_str().unwrap_or("").parse::<i64>()?}}),
        )
        .await?;
    ensure!(ticket.status == StatusCode::CREATED, "{}", ticket.body);
    let tid = ticket.body["id"].as_i64().unwrap_or_default();
    let (_, added) = rx.recv().await.expect("a callout for the create");
    let added: Value = serde_json::from_slice(&added)?;
    ensure!(added["Action"] == "added" && added["ID"] == tid, "{added}");

    let closed = t
        .control(Method::POST, &format!("tickets/{tid}/close"), None)
        .await?;
    ensure!(closed.status.is_success(), "{}", closed.body);
    let (headers, body) = rx.recv().await.expect("a callout for the close");
    let v: Value = serde_json::from_slice(&body)?;
    ensure!(v["Action"] == "updated" && v["Type"] == "ticket", "{v}");
    let entity: Value = serde_json::from_str(v["Entity"].as_str().unwrap_or("null"))?;
    ensure!(entity["closedFlag"] == true, "{entity}");
    let key_url = v["Metadata"]["key_url"].as_str().unwrap_or_default();
    let key = t.request(Method::GET, key_url).send().await?;
    let key: Value = key.json().await?;
    let key = key["signing_key"].as_str().unwrap_or_default();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes())?;
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    ensure!(
        headers
            .get("x-content-signature")
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str()),
        "signed with the callback's key"
    );
    Ok(())
}
