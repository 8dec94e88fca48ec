//! Chat messages from the real binary, on every PSA's simulator and both engines: a Slack
//! channel added through the API gets each event beside its ticket, and the message names the
//! ticket and links to it where the PSA has a ticket page (all but Kaseya BMS), because a
//! message waits for its event's ticket before it goes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use psabridge_core::settings::PsaKind;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};
use crate::on_every_psa;

/// A Slack incoming webhook on this machine: keeps what it is sent, answers "ok".
async fn slack_receiver() -> Result<(String, u16, Arc<Mutex<Vec<Value>>>)> {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/services/T0001/B0001/{token}",
            post(
                |State(got): State<Arc<Mutex<Vec<Value>>>>, body: axum::Json<Value>| async move {
                    got.lock().unwrap().push(body.0);
                    "ok"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://127.0.0.1:{port}"), port, got))
}

async fn chat_messages_link_their_ticket(kind: PsaKind, db: Db) -> Result<()> {
    let (base, port, got) = slack_receiver().await?;
    let sim = Sim::start_psa(kind).await?;
    let allow = format!("127.0.0.1:{port}");
    let Some(p) = Product::start_with(
        &sim,
        db,
        "chat_messages_link_their_ticket",
        &["--outbound-allow", &allow],
    )
    .await?
    else {
        return Ok(());
    };
    let ty = "saas.too_many_downloads";
    let (s, body) = p
        .call(
            Method::POST,
            &format!("/api/v1/partners/{}/channels", p.partner_id()),
            Some(json!({"kind": "slack", "name": "SOC",
                        "url": format!("{base}/services/T0001/B0001/xoxsecret123"),
                        "event_types": [ty]})),
        )
        .await?;
    ensure!(s == 201, "{s} {body}");

    let (s, body) = p
        .post_events(&json!({"id": "chat-1", "client": "client-001", "type": ty,
                             "severity": "high", "user": {"email": "a@example.com"}}))
        .await?;
    ensure!(s == 202, "{s} {body}");
    let e = &p
        .wait_done(&["chat-1".into()], Duration::from_secs(40))
        .await?[0];
    let on = |channel: &str| {
        e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["channel"] == channel)
            .cloned()
            .unwrap_or_default()
    };
    let psa = on("psa");
    ensure!(psa["psa_action"] == "created", "{e}");
    let ticket = psa["ticket"]["id"].as_str().unwrap_or("none").to_string();
    let number = psa["ticket"]["number"]
        .as_str()
        .unwrap_or(&ticket)
        .to_string();
    // The channel's delivery is in the log beside the ticket's, posted.
    ensure!(on("slack")["psa_action"] == "posted", "{e}");
    ensure!(
        !e.to_string().contains("xoxsecret123"),
        "the URL leaked: {e}"
    );
    let mut message = None;
    for _ in 0..200 {
        if let Some(m) = got.lock().unwrap().first().cloned() {
            message = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = message.ok_or_else(|| anyhow::anyhow!("no Slack message came"))?;
    let text = message.to_string();
    ensure!(
        text.contains(&number),
        "the message names ticket {number}: {text}"
    );
    let button = message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["type"] == "actions")
        .map(|b| {
            b["elements"][0]["url"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
    match kind {
        // Kaseya BMS has no ticket address we can build: the number alone.
        PsaKind::KaseyaBms => ensure!(button.is_none(), "{text}"),
        _ => {
            let url = button.ok_or_else(|| anyhow::anyhow!("no ticket button: {text}"))?;
            ensure!(
                url.ends_with(&format!("={ticket}")),
                "the button opens ticket {ticket}: {url}"
            );
        }
    }
    p.cleanup().await;
    Ok(())
}
on_every_psa!(chat_messages_link_their_ticket);
