//! Ticket webhooks: registration, signed callouts, retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use psabridge_sim::autotask::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::{T, start};

/// A tiny receiver on 127.0.0.1; it refuses the first `fail_first` callouts with 500.
async fn receiver(fail_first: u32) -> Result<(String, UnboundedReceiver<(String, Vec<u8>)>)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let seen = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                let seen = seen.clone();
                async move {
                    if seen.fetch_add(1, Ordering::SeqCst) < fail_first {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
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
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, rx))
}

async fn register(
    t: &T,
    url: &str,
    creates: bool,
    fields: &[(i64, bool, bool)],
) -> Result<(i64, String)> {
    let (s, v) = t
        .call(
            Method::POST,
            "TicketWebhooks",
            Some(json!({"name": "PSA Bridge", "webhookUrl": url, "secretKey": "k3y-s3cret", "isActive": true,
                        "isSubscribedToCreateEvents": creates, "isSubscribedToUpdateEvents": true,
                        "isSubscribedToDeleteEvents": false, "sendThresholdExceededNotification": false,
                        "deactivationUrl": "http://127.0.0.1:9/deactivated", "notificationEmailAddress": "ops@bridgewater-it.example"})),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{v}");
    let hook = v["itemId"].as_i64().context("itemId")?;
    for (field, subscribed, always) in fields {
        let (s, v) = t
            .call(
                Method::POST,
                &format!("TicketWebhooks/{hook}/Fields"),
                Some(json!({"webhookID": hook, "fieldID": field, "isSubscribedField": subscribed, "isDisplayAlwaysField": always})),
            )
            .await?;
        ensure!(s == StatusCode::OK, "{v}");
    }
    let (_, w) = t
        .call(Method::GET, &format!("TicketWebhooks/{hook}"), None)
        .await?;
    let guid = w["item"]["webhookGUID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(guid.len() == 36 && w["item"]["isReady"] == true, "{w}");
    Ok((hook, guid))
}

fn verify(sig: &str, body: &[u8], secret: &[u8]) -> Result<Value> {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret)?;
    mac.update(body);
    let expected = format!(
        "sha1={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    ensure!(sig == expected, "signature {sig} != {expected}");
    Ok(serde_json::from_slice(body)?)
}

async fn next(rx: &mut UnboundedReceiver<(String, Vec<u8>)>) -> Result<(String, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await?
        .context("a callout")
}

#[tokio::test]
async fn signed_callouts_on_create_and_on_subscribed_changes() -> Result<()> {
    let t = start(Config::default()).await?;
    let (url, mut rx) = receiver(0).await?;
    // Status subscribed; title always displayed.
    let (hook, guid) = register(&t, &url, true, &[(13, true, false), (16, false, true)]).await?;

    let id = t.new_ticket("watched").await?;
    let (sig, body) = next(&mut rx).await?;
    let created = verify(&sig, &body, b"k3y-s3cret")?;
    ensure!(
        created["Action"] == "Create" && created["Id"] == id && created["EntityType"] == "Ticket",
        "{created}"
    );
    ensure!(
        created["Fields"]["Status"] == 1 && created["Fields"]["Title"] == "watched",
        "{created}"
    );
    ensure!(
        created["Guid"] == guid.as_str() && created["PersonID"] == 29682885,
        "{created}"
    );
    ensure!(
        created["EventTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some(),
        "{created}"
    );

    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "title": "renamed"})),
    )
    .await?;
    let (s, _) = t
        .control(Method::POST, &format!("tickets/{id}/complete"), None)
        .await?;
    ensure!(s == StatusCode::OK);
    let (sig, body) = next(&mut rx).await?;
    let updated = verify(&sig, &body, b"k3y-s3cret")?;
    ensure!(
        updated["Action"] == "Update" && updated["Fields"]["Status"] == 5,
        "{updated}"
    );
    ensure!(
        updated["Fields"]["Title"] == "renamed",
        "display-always fields ride along: {updated}"
    );
    ensure!(updated["PersonID"] == 29682886, "the technician: {updated}");
    ensure!(
        updated["SequenceNumber"].as_i64() > created["SequenceNumber"].as_i64(),
        "{created} {updated}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        rx.try_recv().is_err(),
        "the title change (not subscribed) called out nothing"
    );

    // Deactivated: nothing.
    t.call(
        Method::PATCH,
        "TicketWebhooks",
        Some(json!({"id": hook, "isActive": false})),
    )
    .await?;
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "status": 8})),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        rx.try_recv().is_err(),
        "an inactive webhook calls out nothing"
    );
    let (_, fields) = t
        .call(Method::GET, &format!("TicketWebhooks/{hook}/Fields"), None)
        .await?;
    ensure!(
        fields["items"].as_array().map(Vec::len) == Some(2),
        "{fields}"
    );
    let found = t
        .items(
            "TicketWebhookFields",
            json!([{"op": "eq", "field": "webhookID", "value": hook}]),
        )
        .await?;
    ensure!(found.len() == 2);
    let (s, _) = t
        .call(Method::DELETE, &format!("TicketWebhooks/{hook}"), None)
        .await?;
    ensure!(s == StatusCode::OK);
    ensure!(
        t.items(
            "TicketWebhookFields",
            json!([{"op": "eq", "field": "webhookID", "value": hook}])
        )
        .await?
        .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn failed_callouts_are_retried_and_the_status_field_id_is_configurable() -> Result<()> {
    let t = start(Config {
        status_webhook_field_id: 4,
        ..Config::default()
    })
    .await?;
    let (url, mut rx) = receiver(1).await?;
    register(&t, &url, false, &[(4, true, false)]).await?;
    let id = t.new_ticket("retried").await?;
    t.call(
        Method::PATCH,
        "Tickets",
        Some(json!({"id": id, "status": 8})),
    )
    .await?;
    let (sig, body) = next(&mut rx).await?;
    let v = verify(&sig, &body, b"k3y-s3cret")?;
    ensure!(v["Fields"]["Status"] == 8 && v["Action"] == "Update", "{v}");
    let (_, d) = t.control(Method::GET, "webhook-deliveries", None).await?;
    ensure!(
        d["deliveries"][0]["attempts"] == 2 && d["deliveries"][0]["delivered"] == true,
        "{d}"
    );
    ensure!(t.sim.webhook_deliveries().len() == 1);
    Ok(())
}
