//! The email channel end to end: the real binary sending through a real SMTP server (aiosmtpd,
//! `clients/smtp-python`), beside the ticket and alone, with a transient failure retried and a
//! permanent one dead and then retried through the API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use psabridge_core::catalog::Catalog;
use psabridge_core::email::render_email;
use psabridge_core::event::parse_event;
use psabridge_core::settings::PsaKind;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};
use crate::on_both;

const WAIT: Duration = Duration::from_secs(40);
const CATALOG: &str = include_str!("../../catalog/default.toml");

/// The recording SMTP server of `clients/smtp-python`, in its own process.
pub(crate) struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
    control: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// `None` (after saying so loudly) when Python or the server's venv is missing.
    pub(crate) fn start(test: &str) -> Result<Option<SmtpServer>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/smtp-python");
        let python = dir.join(".venv/bin/python");
        if !python.exists() {
            eprintln!(
                "\n*** SKIPPED (SMTP server) {test}: {} is missing: run `python3 -m venv .venv && .venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.txt` in clients/smtp-python (./scripts/test does) ***\n",
                python.display()
            );
            return Ok(None);
        }
        let tmp = tempfile::tempdir()?;
        let out = tmp.path().join("messages.jsonl");
        let control = tmp.path().join("control.json");
        let mut child = Command::new(&python)
            .arg(dir.join("server.py"))
            .args(["--port", "0", "--out"])
            .arg(&out)
            .arg("--control")
            .arg(&control)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the SMTP server")?;
        let mut first = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut first)?;
        let port = serde_json::from_str::<Value>(&first)
            .ok()
            .and_then(|v| v["port"].as_u64())
            .with_context(|| format!("the SMTP server did not say its port: {first:?}"))?;
        Ok(Some(SmtpServer {
            child,
            port: port as u16,
            out,
            control,
            _dir: tmp,
        }))
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The file where every message is recorded, one JSON line each.
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    /// Refuse the next `count` messages with `code message`.
    fn refuse_next(&self, count: u32, code: u16, message: &str) -> Result<()> {
        std::fs::write(
            &self.control,
            json!({"code": code, "message": message, "count": count}).to_string(),
        )?;
        Ok(())
    }

    /// Every message received so far (refused ones carry `"refused": true`).
    fn messages(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(Into::into))
            .collect()
    }

    /// The accepted messages of one event (its id is in the body's footer).
    fn accepted_for(&self, event_id: &str) -> Result<Vec<Value>> {
        let footer = format!("Event {event_id} (");
        Ok(self
            .messages()?
            .into_iter()
            .filter(|m| m["refused"] == false && m["body"].as_str().unwrap_or("").contains(&footer))
            .collect())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ev(id: &str, ty: &str) -> Value {
    json!({"id": id, "client": "client-001", "type": ty, "severity": "high",
           "details": "seen by the email test",
           "user": {"email": "someone@acme.example", "name": "Some One"},
           "data": {"files": 412, "app": "OneDrive"}})
}

/// The event's delivery on `channel`.
fn on_channel<'a>(e: &'a Value, channel: &str) -> Vec<&'a Value> {
    e["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["channel"] == channel)
        .collect()
}

/// The subject and body the catalog's templates give for `event`.
fn expected_text(p: &Product, event: &Value) -> Result<(String, String)> {
    let catalog = Catalog::parse(CATALOG)?;
    let parsed = parse_event(event, "", &catalog).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let client = event["client"].as_str().unwrap_or_default();
    let name = p.partner()["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == client)
        .and_then(|c| c["name"].as_str())
        .map(str::to_string);
    let t = render_email(&parsed, catalog.get(&parsed.event_type), name.as_deref());
    Ok((t.subject, t.body))
}

async fn put_email(p: &Product, ty: &str, body: Value) -> Result<(u16, Value)> {
    p.call(
        Method::PUT,
        &format!("/api/v1/partners/{}/email-settings/{ty}", p.partner_id()),
        Some(body),
    )
    .await
}

async fn wait_delivery_state(p: &Product, id: i64, state: &str) -> Result<Value> {
    let end = Instant::now() + WAIT;
    loop {
        let (status, v) = p
            .call(
                Method::GET,
                &format!("/api/v1/partners/{}/deliveries?limit=1000", p.partner_id()),
                None,
            )
            .await?;
        ensure!(status == 200, "deliveries: {status} {v}");
        let d = v["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["id"] == id)
            .cloned()
            .unwrap_or(Value::Null);
        if d["status"] == state {
            return Ok(d);
        }
        if Instant::now() > end {
            bail!("delivery {id} is not {state} after {WAIT:?}: {d}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn email_beside_and_instead_of_tickets(db: Db) -> Result<()> {
    let test = "email_beside_and_instead_of_tickets";
    let Some(smtp) = SmtpServer::start(test)? else {
        return Ok(());
    };
    let sim = Sim::start_psa(PsaKind::Autotask).await?;
    let url = smtp.url();
    let Some(p) = Product::start_with(&sim, db, test, &["--smtp-url", &url]).await? else {
        return Ok(());
    };
    let partner = p.partner_id();

    // Every catalog event type is listed, off.
    let (status, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{partner}/email-settings"),
            None,
        )
        .await?;
    ensure!(
        status == 200 && v["smtp_configured"] == true,
        "{status} {v}"
    );
    let types = v["event_types"].as_array().cloned().unwrap_or_default();
    ensure!(
        types.len() == Catalog::parse(CATALOG)?.len()
            && types
                .iter()
                .all(|t| t["enabled"] == false && t["addresses"] == ""),
        "{v}"
    );

    // Bad input is named.
    let (status, v) = put_email(
        &p,
        "saas.too_many_downloads",
        json!({"enabled": true, "addresses": "alice@msp.example; bob@"}),
    )
    .await?;
    ensure!(status == 422, "{status} {v}");
    ensure!(
        v["errors"][0]["path"] == "addresses"
            && v["errors"][0]["problem"]
                .as_str()
                .is_some_and(|s| s.starts_with("addresses[1] \"bob@\" is not an email address")),
        "{v}"
    );
    let (status, v) = put_email(
        &p,
        "no.such_type",
        json!({"enabled": true, "addresses": "a@b.example"}),
    )
    .await?;
    ensure!(
        status == 404
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no.such_type")),
        "{status} {v}"
    );

    // Beside the ticket: two recipients. Alone: the event type makes no ticket.
    let (status, v) = put_email(
        &p,
        "saas.too_many_downloads",
        json!({"enabled": true, "addresses": "alice@msp.example; Bob@msp.example;"}),
    )
    .await?;
    ensure!(
        status == 200 && v["addresses"] == "alice@msp.example; Bob@msp.example",
        "{status} {v}"
    );
    let (status, v) = p
        .call(
            Method::PUT,
            &format!(
                "/api/v1/partners/{partner}/connections/{}/rules/saas.multiple_mfa_failures",
                p.connection()
            ),
            Some(json!({"create_ticket": false})),
        )
        .await?;
    ensure!(status == 200, "{status} {v}");
    let (status, v) = put_email(
        &p,
        "saas.multiple_mfa_failures",
        json!({"enabled": true, "addresses": "soc@msp.example"}),
    )
    .await?;
    ensure!(status == 200, "{status} {v}");

    let beside = ev("mail-1", "saas.too_many_downloads");
    let alone = ev("mail-2", "saas.multiple_mfa_failures");
    for e in [&beside, &alone] {
        let (status, v) = p.post_events(e).await?;
        ensure!(status == 202, "{status} {v}");
    }
    let done = p
        .wait_done(&["mail-1".into(), "mail-2".into()], WAIT)
        .await?;
    let psa = on_channel(&done[0], "psa");
    let mail = on_channel(&done[0], "email");
    ensure!(
        psa.len() == 1 && psa[0]["psa_action"] == "created" && psa[0]["status"] == "delivered",
        "{}",
        done[0]
    );
    ensure!(
        mail.len() == 1 && mail[0]["status"] == "delivered" && mail[0]["connection"] == 0,
        "{}",
        done[0]
    );
    ensure!(
        on_channel(&done[1], "psa").is_empty() && on_channel(&done[1], "email").len() == 1,
        "email alone: {}",
        done[1]
    );
    ensure!(
        on_channel(&done[1], "email")[0]["status"] == "delivered",
        "{}",
        done[1]
    );
    ensure!(
        sim.our_tickets().await?.len() == 1,
        "only mail-1 made a ticket"
    );
    // The delivery log filters by channel.
    for (channel, want) in [("email", 2), ("psa", 1)] {
        let (status, v) = p
            .call(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/partners/{}/deliveries?channel={channel}",
                    p.partner_id()
                ),
                None,
            )
            .await?;
        let list = v["deliveries"].as_array().cloned().unwrap_or_default();
        ensure!(
            status == 200 && list.len() == want && list.iter().all(|d| d["channel"] == channel),
            "{channel}: {status} {v}"
        );
    }

    let got = smtp.accepted_for("mail-1")?;
    ensure!(got.len() == 1, "{got:?}");
    let m = &got[0];
    let (subject, body) = expected_text(&p, &beside)?;
    ensure!(
        m["rcpt_tos"] == json!(["alice@msp.example", "Bob@msp.example"]),
        "both recipients: {m}"
    );
    ensure!(m["subject"] == subject.as_str(), "subject {subject:?}: {m}");
    ensure!(
        m["body"].as_str().map(str::trim_end) == Some(body.trim_end()),
        "body {body:?}: {m}"
    );
    ensure!(
        subject.contains("Too many downloads") && body.contains("seen by the email test"),
        "the catalog's templates: {subject} / {body}"
    );
    ensure!(
        m["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("<psabridge.") && id.ends_with("@demo.example>")),
        "{m}"
    );
    let got = smtp.accepted_for("mail-2")?;
    ensure!(
        got.len() == 1 && got[0]["rcpt_tos"] == json!(["soc@msp.example"]),
        "{got:?}"
    );

    // A transient refusal (451) is retried, then delivered, with the same Message-ID.
    smtp.refuse_next(1, 451, "4.3.0 try again later")?;
    p.post_events(&ev("mail-3", "saas.too_many_downloads"))
        .await?;
    let e = &p.wait_done(&["mail-3".into()], WAIT).await?[0];
    let d = on_channel(e, "email")[0];
    ensure!(d["status"] == "delivered" && d["attempts"] == 2, "{e}");
    ensure!(
        d["history"][0]["outcome"] == "retry"
            && d["history"][0]["error"]
                .as_str()
                .is_some_and(|s| s.contains("451")),
        "{e}"
    );
    let tried: Vec<Value> = smtp
        .messages()?
        .into_iter()
        .filter(|m| m["body"].as_str().unwrap_or("").contains("Event mail-3 ("))
        .collect();
    ensure!(
        tried.len() == 2
            && tried[0]["refused"] == true
            && tried[1]["refused"] == false
            && tried[0]["message_id"] == tried[1]["message_id"],
        "{tried:?}"
    );

    // A permanent refusal (550) makes the delivery dead with the server's reply; a retry
    // through the API sends it.
    smtp.refuse_next(1, 550, "5.1.1 mailbox unavailable")?;
    p.post_events(&ev("mail-4", "saas.too_many_downloads"))
        .await?;
    let e = &p.wait_done(&["mail-4".into()], WAIT).await?[0];
    let d = on_channel(e, "email")[0].clone();
    ensure!(
        d["status"] == "dead"
            && d["last_error"]
                .as_str()
                .is_some_and(|s| s.contains("550") && s.contains("mailbox unavailable")),
        "{e}"
    );
    ensure!(
        smtp.accepted_for("mail-4")?.is_empty(),
        "nothing accepted yet"
    );
    let id = d["id"].as_i64().context("delivery id")?;
    let (status, v) = p
        .call(
            Method::POST,
            &format!("/api/v1/partners/{partner}/deliveries/{id}/retry"),
            None,
        )
        .await?;
    ensure!((200..300).contains(&status), "{status} {v}");
    wait_delivery_state(&p, id, "delivered").await?;
    ensure!(
        smtp.accepted_for("mail-4")?.len() == 1,
        "sent after the retry"
    );

    // Every change is in the audit log.
    let (status, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{partner}/audit"),
            None,
        )
        .await?;
    ensure!(status == 200, "{status} {v}");
    let changes = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["action"] == "email_settings.put")
        .count();
    ensure!(changes == 2, "{v}");

    p.cleanup().await;
    Ok(())
}

on_both!(email_beside_and_instead_of_tickets);

/// Without an SMTP server, email cannot be switched on (and says why); switching off is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_cannot_be_switched_on_without_smtp() -> Result<()> {
    let sim = Sim::start_psa(PsaKind::Autotask).await?;
    let Some(p) =
        Product::start(&sim, Db::Sqlite, "email_cannot_be_switched_on_without_smtp").await?
    else {
        return Ok(());
    };
    let (status, v) = put_email(
        &p,
        "saas.too_many_downloads",
        json!({"enabled": true, "addresses": "alice@msp.example"}),
    )
    .await?;
    ensure!(
        status == 409
            && v["errors"][0]["path"] == "enabled"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no SMTP server is configured")),
        "{status} {v}"
    );
    let (status, v) = put_email(
        &p,
        "saas.too_many_downloads",
        json!({"enabled": false, "addresses": "alice@msp.example"}),
    )
    .await?;
    ensure!(status == 200 && v["enabled"] == false, "{status} {v}");
    p.cleanup().await;
    Ok(())
}
