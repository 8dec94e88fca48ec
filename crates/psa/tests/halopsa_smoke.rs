//! The HaloPSA connector against the HaloPSA simulator over real HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_core::secret::Secret;
use psabridge_core::settings::{PsaKind, TicketDefaults};
use psabridge_psa::{Connector, NewNote, NewTicket, PsaError, halopsa};
use psabridge_sim::halopsa::{ApiClient, Config, FaultRule, Simulator};
use serde_json::{Value, json};

struct H {
    sim: Simulator,
    http: reqwest::Client,
    fixtures: Value,
}

async fn start(config: Config) -> Result<H> {
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    let fixtures = sim.fixtures();
    Ok(H {
        sim,
        http: reqwest::Client::new(),
        fixtures,
    })
}

impl H {
    fn connector_with(&self, extra: Value, secret: &str) -> Result<Arc<dyn Connector>> {
        let mut settings = json!({
            "resource_url": format!("{}/api/", self.sim.base_url()),
            "tenant": "demo",
            "client_id": "psabridge-demo",
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            settings[k] = v;
        }
        let mut secrets = BTreeMap::new();
        secrets.insert("client_secret".to_string(), Secret::new(secret));
        let map = settings.as_object().cloned().unwrap_or_default();
        Ok(halopsa::from_settings(self.http.clone(), &map, &secrets)?)
    }

    fn connector(&self) -> Result<Arc<dyn Connector>> {
        self.connector_with(json!({}), "halo-demo-secret")
    }

    fn fault(&self, rule: Value) -> Result<()> {
        let rule: FaultRule = serde_json::from_value(rule)?;
        self.sim.add_fault(rule).map_err(anyhow::Error::msg)
    }

    async fn view(&self, id: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}/_sim/tickets/{id}", self.sim.base_url()))
            .send()
            .await?;
        Ok(r.json().await?)
    }

    fn defaults(&self) -> TicketDefaults {
        let mut d = TicketDefaults::new();
        for (k, v) in self.fixtures["defaults"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            d.set(&k, v.as_str().unwrap_or_default());
        }
        d
    }

    fn ticket(&self, reference: &str) -> NewTicket {
        NewTicket {
            company_id: self.fixtures["company_id"]
                .as_str()
                .unwrap_or_default()
                .into(),
            contact_id: Some(
                self.fixtures["contact_id"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            ),
            title: "Multiple MFA failures – bob@acme.test".into(),
            description: "Seven failed MFA prompts in ten minutes.".into(),
            fields: self.defaults(),
            reference: reference.into(),
            contract_id: None,
            configuration_item_id: None,
        }
    }
}

fn note(reference: &str) -> NewNote {
    NewNote {
        title: "New alert".into(),
        text: format!("Another MFA failure. [{reference}]"),
        reference: reference.into(),
    }
}

#[tokio::test]
async fn check_says_what_is_wrong() -> Result<()> {
    let mut config = Config::default();
    config.api_clients.push(ApiClient {
        client_id: "no-perms".into(),
        client_secret: "s".into(),
        forbidden: true,
    });
    let h = start(config).await?;
    let ok = h.connector()?.check().await?;
    ensure!(ok.description.contains("API Agent"), "{ok:?}");

    let e = h.connector_with(json!({}), "wrong")?.check().await;
    ensure!(
        matches!(&e, Err(PsaError::Auth(m)) if m.contains("client ID or client secret")),
        "{e:?}"
    );
    let e = h
        .connector_with(json!({"tenant": "other"}), "halo-demo-secret")?
        .check()
        .await;
    ensure!(
        matches!(&e, Err(PsaError::Auth(m)) if m.contains("tenant 'other'")),
        "{e:?}"
    );
    let e = h
        .connector_with(json!({"client_id": "no-perms"}), "s")?
        .check()
        .await;
    ensure!(
        matches!(&e, Err(PsaError::Auth(m)) if m.contains("403")),
        "{e:?}"
    );
    let e = h
        .connector_with(
            json!({"resource_url": "http://127.0.0.1:1"}),
            "halo-demo-secret",
        )?
        .check()
        .await;
    ensure!(matches!(&e, Err(PsaError::Unreachable(_))), "{e:?}");
    // An explicit auth URL skips discovery.
    let c = h.connector_with(
        json!({"auth_url": format!("{}/", h.sim.auth_url())}),
        "halo-demo-secret",
    )?;
    c.check().await?;
    Ok(())
}

#[tokio::test]
async fn lists_use_the_ticket_field_names() -> Result<()> {
    let h = start(Config::default()).await?;
    let lists = h.connector()?.lists().await?;
    for f in PsaKind::HaloPsa
        .ticket_fields()
        .iter()
        .filter(|f| f.name != "close_status")
    {
        let items = lists.get(f.name).cloned().unwrap_or_default();
        ensure!(items.len() >= 3, "{}: {items:?}", f.name);
        let default = h.fixtures["defaults"][f.name].as_str().unwrap_or_default();
        ensure!(
            items.iter().any(|i| i.id == default && i.active),
            "{}: default {default} listed",
            f.name
        );
    }
    let agents = &lists["agent"];
    let alice: Vec<_> = agents
        .iter()
        .filter(|a| a.label == "Alice Turner")
        .collect();
    ensure!(alice.len() == 2, "once per team: {alice:?}");
    let erin = agents
        .iter()
        .find(|a| a.id == h.fixtures["defaults"]["agent"])
        .cloned();
    ensure!(erin.and_then(|e| e.parent).as_deref() == h.fixtures["defaults"]["team"].as_str());
    ensure!(
        agents.iter().any(|a| !a.active),
        "the disabled agent is listed inactive"
    );
    ensure!(lists["urgency"].iter().any(|u| !u.active));
    ensure!(lists["status"].iter().any(|s| s.id == "9"));
    Ok(())
}

#[tokio::test]
async fn companies_page_through_clients_and_sites() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector_with(json!({"page_size": 50}), "halo-demo-secret")?;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c.companies(None, cursor.as_deref()).await?;
        pages += 1;
        all.extend(page.companies);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let ids: BTreeSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
    ensure!(ids.len() == all.len(), "no company twice");
    ensure!(
        all.len() as u64 == h.fixtures["active_companies"].as_u64().unwrap_or(0),
        "{}",
        all.len()
    );
    ensure!(pages >= 3, "{pages}");
    let acme = c.companies(Some("acme"), None).await?;
    let got: Vec<(&str, &str)> = acme
        .companies
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    ensure!(
        got == [
            ("12", "Acme Ltd"),
            ("12/3", "Acme Ltd / Head Office"),
            ("12/4", "Acme Ltd / Warehouse")
        ],
        "{got:?}"
    );
    ensure!(acme.next.is_none());
    ensure!(matches!(
        c.companies(None, Some("bogus")).await,
        Err(PsaError::Invalid(_))
    ));
    Ok(())
}

#[tokio::test]
async fn contacts_by_email_found_missing_and_two() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector()?;
    let f = &h.fixtures;
    let company = f["company_id"].as_str().unwrap_or_default();
    let bob = c.find_contacts_by_email(company, "BOB@acme.test").await?;
    ensure!(bob.len() == 1 && bob[0].id == f["contact_id"], "{bob:?}");
    let two = c
        .find_contacts_by_email(company, f["duplicate_email"].as_str().unwrap_or(""))
        .await?;
    let mut ids: Vec<&str> = two.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = f["duplicate_contact_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    want.sort();
    ensure!(
        ids == want,
        "both active, the inactive one left out: {two:?}"
    );
    ensure!(
        c.find_contacts_by_email(company, f["missing_email"].as_str().unwrap_or(""))
            .await?
            .is_empty()
    );
    let site = c.find_contacts_by_email("12/4", "shared@acme.test").await?;
    ensure!(
        site.len() == 1 && site[0].id == "9" && site[0].company_id == "12/4",
        "{site:?}"
    );
    let all = c.contacts(company).await?;
    ensure!(
        all.iter().all(|c| c.active) && all.iter().any(|c| c.id == "7"),
        "{all:?}"
    );
    Ok(())
}

#[tokio::test]
async fn create_note_close_and_states() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector()?;
    let t = c.create_ticket(&h.ticket("PSAB-100")).await?;
    let v = h.view(&t.id).await?;
    for (k, want) in h.fixtures["defaults"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        ensure!(v["fields"][&k] == want, "{k}: {v}");
    }
    ensure!(
        v["reference"] == "PSAB-100" && v["company_id"] == "12" && v["contact_id"] == "7",
        "{v}"
    );
    ensure!(c.find_ticket_by_reference("PSAB-100").await?.map(|r| r.id) == Some(t.id.clone()));
    ensure!(
        c.find_ticket_by_reference("PSAB-10").await?.is_none(),
        "exact, not a prefix"
    );

    c.add_note(&t.id, &note("N-1")).await?;
    ensure!(c.find_note_by_reference(&t.id, "N-1").await?);
    ensure!(!c.find_note_by_reference(&t.id, "N-2").await?);
    let v = h.view(&t.id).await?;
    ensure!(
        v["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n["internal"] == true && n["text"].as_str().unwrap_or("").contains("N-1"))),
        "{v}"
    );

    let states = c
        .ticket_states(&[t.id.clone(), "101".into(), "102".into(), "99999".into()])
        .await?;
    let closed: BTreeMap<String, bool> = states.iter().map(|s| (s.id.clone(), s.closed)).collect();
    ensure!(
        closed.len() == 3 && !closed[&t.id] && !closed["101"] && closed["102"],
        "{states:?}"
    );

    c.close_ticket(&t.id, None, &note("C-1")).await?;
    let v = h.view(&t.id).await?;
    ensure!(
        v["closed"] == true && v["status"] == h.fixtures["close_status"],
        "{v}"
    );
    ensure!(
        c.find_note_by_reference(&t.id, "C-1").await?,
        "the close left its note"
    );
    let s = c.ticket_states(std::slice::from_ref(&t.id)).await?;
    ensure!(s.len() == 1 && s[0].closed, "{s:?}");

    // A site company, a close status of our choosing, a too-long title.
    let mut long = h.ticket("PSAB-101");
    long.company_id = "12/4".into();
    long.contact_id = Some("9".into());
    long.title = "x".repeat(400);
    let t2 = c.create_ticket(&long).await?;
    let v = h.view(&t2.id).await?;
    ensure!(v["company_id"] == "12/4" && v["site_id"] == "4", "{v}");
    ensure!(
        v["title"].as_str().map(|s| s.chars().count()) == Some(250),
        "{v}"
    );
    c.close_ticket(&t2.id, Some("8"), &note("C-2")).await?;
    ensure!(h.view(&t2.id).await?["status"] == "8");
    let e = c.add_note("424242", &note("x")).await;
    ensure!(matches!(e, Err(PsaError::NotFound(_))), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_once() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector()?;
    c.check().await?;
    h.fault(json!({"kind": "after_commit", "method": "POST", "entity": "Tickets", "count": 1}))?;
    let e = c.create_ticket(&h.ticket("PSAB-LOST")).await;
    ensure!(matches!(&e, Err(e) if e.outcome_unknown()), "{e:?}");
    let found = c.find_ticket_by_reference("PSAB-LOST").await?;
    let made: Vec<Value> = h
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t["supplier_reference"] == "PSAB-LOST")
        .collect();
    ensure!(
        made.len() == 1 && found.map(|f| f.id) == made[0]["id"].as_i64().map(|i| i.to_string()),
        "{made:?}"
    );
    Ok(())
}

#[tokio::test]
async fn rate_limits_and_failures_are_classified() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector()?;
    c.check().await?;
    h.fault(json!({"kind": "status", "status": 429, "retry_after_secs": 7, "count": 1}))?;
    match c.lists().await {
        Err(PsaError::RateLimited { retry_after, .. }) => {
            ensure!(retry_after == Some(Duration::from_secs(7)))
        }
        other => anyhow::bail!("{other:?}"),
    }
    h.fault(json!({"kind": "status", "status": 500, "count": 1, "method": "POST"}))?;
    let e = c.create_ticket(&h.ticket("PSAB-500")).await;
    ensure!(
        matches!(
            &e,
            Err(PsaError::Transient {
                outcome_unknown: true,
                ..
            })
        ),
        "{e:?}"
    );
    h.fault(json!({"kind": "status", "status": 503, "count": 1}))?;
    let e = c.ticket_states(&["101".into()]).await;
    ensure!(
        matches!(
            &e,
            Err(PsaError::Transient {
                outcome_unknown: false,
                ..
            })
        ),
        "{e:?}"
    );
    h.fault(json!({"kind": "drop", "count": 1, "method": "POST"}))?;
    let e = c.add_note("101", &note("D-1")).await;
    ensure!(
        matches!(
            &e,
            Err(PsaError::Transient {
                outcome_unknown: true,
                ..
            })
        ),
        "{e:?}"
    );
    let mut bad = h.ticket("PSAB-BAD");
    bad.fields.set("team", "Nobody");
    let e = c.create_ticket(&bad).await;
    ensure!(
        matches!(&e, Err(PsaError::Invalid(m)) if m.contains("Team 'Nobody'")),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_simulators_window_is_a_rate_limit_and_tokens_are_renewed() -> Result<()> {
    let h = start(Config {
        rate_limit: 3,
        rate_window_secs: 60,
        ..Config::default()
    })
    .await?;
    let closed = json!({"closed_statuses": ["8", "9", "10"]});
    let c = h.connector_with(closed.clone(), "halo-demo-secret")?;
    // authinfo, token, tickets: the window's three.
    c.ticket_states(&["101".into()]).await?;
    match c.ticket_states(&["101".into()]).await {
        Err(PsaError::RateLimited {
            retry_after: Some(d),
            message,
        }) => ensure!(
            // The simulator answers in plain text, as HaloPSA does: the error describes it
            // and never repeats a foreign body.
            d <= Duration::from_secs(60) && !message.contains("Rate Limit Reached"),
            "{message}"
        ),
        other => anyhow::bail!("{other:?}"),
    }

    let h = start(Config::default()).await?;
    let c = h.connector_with(closed, "halo-demo-secret")?;
    c.ticket_states(&["101".into()]).await?;
    let before = c.meter().total();
    h.sim.expire_tokens();
    c.ticket_states(&["101".into()]).await?;
    ensure!(
        c.meter().total() == before + 3,
        "401, token, again: {}",
        c.meter().total() - before
    );
    ensure!(
        c.meter().total() == h.sim.total_requests(),
        "every request counted"
    );
    Ok(())
}

#[tokio::test]
async fn the_reference_can_live_in_the_details() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector_with(json!({"reference_field": "details"}), "halo-demo-secret")?;
    let t = c.create_ticket(&h.ticket("PSAB-D1")).await?;
    let v = h.view(&t.id).await?;
    ensure!(
        v["description"]
            .as_str()
            .unwrap_or("")
            .ends_with("PSA Bridge reference: PSAB-D1"),
        "{v}"
    );
    ensure!(c.find_ticket_by_reference("PSAB-D1").await?.map(|r| r.id) == Some(t.id));
    ensure!(c.find_ticket_by_reference("PSAB-D").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn the_webhook_is_registered_once_and_its_calls_authenticated() -> Result<()> {
    let h = start(Config::default()).await?;
    let c = h.connector()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hooks/halopsa/3",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/halopsa/3", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let reg = c
        .register_status_webhook(&url, "first-secret")
        .await?
        .expect("Halo takes webhooks");
    // Connecting again updates ours with the new password instead of adding one.
    let again = c.register_status_webhook(&url, "second-secret").await?;
    ensure!(again.map(|r| r.id) == Some(reg.id.clone()));
    let hooks: Value = h
        .http
        .get(format!("{}/api/Webhook", h.sim.base_url()))
        .bearer_auth(bearer(&h).await?)
        .send()
        .await?
        .json()
        .await?;
    ensure!(hooks.as_array().map(Vec::len) == Some(1), "{hooks}");
    ensure!(hooks[0].get("basic_password").is_none(), "{hooks}");

    let t = c.create_ticket(&h.ticket("wh-1")).await?;
    h.http
        .post(format!("{}/_sim/tickets/{}/close", h.sim.base_url(), t.id))
        .send()
        .await?
        .error_for_status()?;
    let (hd, body) = rx.recv().await.expect("a callout for the close");
    let p = c
        .read_push(&hd, &body, "second-secret")
        .await?
        .expect("a ticket");
    ensure!(p.ticket_id == t.id && p.closed == Some(true), "{p:?}");
    // The old password, or none, is refused.
    ensure!(matches!(
        c.read_push(&hd, &body, "first-secret").await,
        Err(psabridge_psa::PushError::Unauthenticated(_))
    ));
    ensure!(matches!(
        c.read_push(&reqwest::header::HeaderMap::new(), &body, "second-secret")
            .await,
        Err(psabridge_psa::PushError::Unauthenticated(_))
    ));
    // A reopen through the API (a status change by an action) calls out too: open.
    h.http
        .post(format!("{}/_sim/tickets/{}/reopen", h.sim.base_url(), t.id))
        .send()
        .await?
        .error_for_status()?;
    let (hd, body) = rx.recv().await.expect("a callout for the reopen");
    let p = c
        .read_push(&hd, &body, "second-secret")
        .await?
        .expect("a ticket");
    ensure!(p.closed == Some(false), "{p:?}");
    c.close_ticket(&t.id, None, &note("wh-2")).await?;
    let (hd, body) = rx.recv().await.expect("a callout for the API close");
    let p = c
        .read_push(&hd, &body, "second-secret")
        .await?
        .expect("a ticket");
    ensure!(p.closed == Some(true), "{p:?}");
    Ok(())
}

async fn bearer(h: &H) -> Result<String> {
    let v: Value = h
        .http
        .post(format!("{}/auth/token?tenant=demo", h.sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=psabridge-demo&client_secret=halo-demo-secret&scope=all")
        .send()
        .await?
        .json()
        .await?;
    Ok(v["access_token"].as_str().unwrap_or_default().to_string())
}
