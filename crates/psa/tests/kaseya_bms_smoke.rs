//! The Kaseya BMS connector against the BMS simulator over real HTTP: every connector
//! operation, the error classes, and the reconciliation of a create whose answer was lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_core::secret::Secret;
use psabridge_core::settings::{PsaKind, TicketDefaults};
use psabridge_psa::{Connector, NewNote, NewTicket, PsaError};
use psabridge_sim::kaseya_bms::{Config, FaultKind, FaultRule, Simulator};
use serde_json::{Value, json};

struct H {
    sim: Simulator,
    bms: Arc<dyn Connector>,
    fixtures: Value,
}

fn connector(sim: &Simulator, over: Value) -> Result<Arc<dyn Connector>> {
    let c = sim.config();
    let mut settings = json!({
        "base_url": format!("{}/", sim.base_url()),
        "tenant": c.tenant,
        "username": c.username,
        "requests_per_hour": 1_000_000,
        "page_size": 50,
    });
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        settings[k] = v;
    }
    let mut secrets = BTreeMap::new();
    secrets.insert("password".to_string(), Secret::new(c.password.clone()));
    Ok(psabridge_psa::build(
        PsaKind::KaseyaBms,
        reqwest::Client::new(),
        settings.as_object().unwrap_or(&Default::default()),
        &secrets,
    )?)
}

async fn start_with(config: Config, over: Value) -> Result<H> {
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    let bms = connector(&sim, over)?;
    let fixtures = sim.fixtures();
    Ok(H { sim, bms, fixtures })
}

async fn start() -> Result<H> {
    start_with(Config::default(), json!({})).await
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

impl H {
    fn defaults(&self) -> TicketDefaults {
        let mut d = TicketDefaults::new();
        for (k, v) in self.fixtures["defaults"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            d.set(&k, s(&v));
        }
        d
    }

    fn ticket(&self, reference: &str) -> NewTicket {
        NewTicket {
            company_id: s(&self.fixtures["company_id"]),
            contact_id: Some(s(&self.fixtures["contact_id"])),
            title: format!("Impossible travel for bob@acme.test ({reference})"),
            description: "Sign-ins from two countries within 5 minutes.".into(),
            fields: self.defaults(),
            reference: reference.into(),
            contract_id: None,
            configuration_item_id: None,
        }
    }

    fn view(&self, id: &str) -> Value {
        self.sim
            .ticket(id.parse().unwrap_or_default())
            .unwrap_or_default()
    }

    fn fault(&self, kind: FaultKind, status: Option<u16>, method: &str, path: &str) {
        let rule = FaultRule {
            kind,
            status,
            retry_after_secs: Some(7),
            delay_ms: None,
            hold_ms: None,
            count: Some(1),
            probability: None,
            method: Some(method.into()),
            path_contains: Some(path.into()),
            entity: None,
            seed: None,
            body: None,
        };
        self.sim.add_fault(rule).expect("a valid rule");
    }
}

fn note(reference: &str) -> NewNote {
    NewNote {
        title: "Alert repeated".into(),
        text: format!("The alert fired again. Reference {reference}"),
        reference: reference.into(),
    }
}

#[tokio::test]
async fn check_says_what_is_wrong() -> Result<()> {
    let h = start().await?;
    let ok = h.bms.check().await?;
    ensure!(
        ok.api_url == h.sim.base_url() && ok.description.contains("demo-msp"),
        "{ok:?}"
    );
    let bad = |over: Value| {
        let sim = h.sim.clone();
        async move {
            connector(&sim, over)?
                .check()
                .await
                .err()
                .ok_or_else(|| anyhow::anyhow!("no error"))
        }
    };
    let e = bad(json!({"tenant": "other-msp"})).await?;
    ensure!(
        matches!(&e, PsaError::Auth(m) if m.contains("tenant")),
        "{e:?}"
    );
    let e = bad(json!({"username": "someone"})).await?;
    ensure!(
        matches!(&e, PsaError::Auth(m) if m.contains("user name 'someone'")),
        "{e:?}"
    );
    let mut secrets = BTreeMap::new();
    secrets.insert("password".to_string(), Secret::new("wrong"));
    let c = h.sim.config();
    let wrong_pw = psabridge_psa::build(
        PsaKind::KaseyaBms,
        reqwest::Client::new(),
        json!({"base_url": h.sim.base_url(), "tenant": c.tenant, "username": c.username})
            .as_object()
            .unwrap_or(&Default::default()),
        &secrets,
    )?;
    let e = wrong_pw.check().await.err();
    ensure!(
        matches!(&e, Some(PsaError::Auth(m)) if m.contains("password")),
        "{e:?}"
    );
    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let e = bad(json!({"base_url": format!("http://127.0.0.1:{port}")})).await?;
    ensure!(matches!(e, PsaError::Unreachable(_)), "{e:?}");
    // Something answers, but not the BMS API.
    let e = bad(json!({"base_url": format!("{}/not-bms", h.sim.base_url())})).await?;
    ensure!(
        matches!(&e, PsaError::Unreachable(m) if m.contains("base_url")),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn lists_use_our_field_names_with_parents_and_are_cached() -> Result<()> {
    let h = start().await?;
    let lists = h.bms.lists().await?;
    for f in PsaKind::KaseyaBms.ticket_fields() {
        ensure!(
            lists.contains_key(f.list),
            "{} missing: {:?}",
            f.list,
            lists.keys()
        );
    }
    ensure!(lists.contains_key("note_type"));
    let subs = &lists["sub_issue_type"];
    ensure!(subs.iter().all(|i| i.parent.is_some()), "{subs:?}");
    let other: Vec<_> = subs.iter().filter(|i| i.id == "30").collect();
    ensure!(other.len() == 4, "once per parent: {other:?}");
    ensure!(
        subs.iter()
            .any(|i| i.id == "19" && i.parent.as_deref() == Some("7"))
    );
    ensure!(
        lists["queue"].iter().any(|q| !q.active),
        "inactive values kept, marked"
    );
    ensure!(lists["source"].len() == 10 && lists["source"][5].label == "Monitoring System");
    ensure!(
        lists["ticket_type"]
            .iter()
            .any(|t| t.id == "2" && t.label == "Incident")
    );
    // Defaults of the fixtures are all in the lists.
    for (k, v) in h.defaults().iter() {
        ensure!(lists[k].iter().any(|i| i.id == v), "{k}={v}");
    }
    let calls = h.bms.meter().total();
    h.bms.lists().await?;
    ensure!(h.bms.meter().total() == calls, "cached");
    ensure!(
        h.sim.total_requests() == calls,
        "every request counted: {} vs {calls}",
        h.sim.total_requests()
    );
    Ok(())
}

#[tokio::test]
async fn sources_fall_back_to_the_fixed_ids() -> Result<()> {
    let h = start_with(
        Config {
            serve_source_table: false,
            ..Config::default()
        },
        json!({}),
    )
    .await?;
    let lists = h.bms.lists().await?;
    let sources: Vec<(&str, &str)> = lists["source"]
        .iter()
        .map(|i| (i.id.as_str(), i.label.as_str()))
        .collect();
    ensure!(
        sources.first() == Some(&("0", "Client Portal"))
            && sources.last() == Some(&("9", "Recurring")),
        "{sources:?}"
    );
    Ok(())
}

#[tokio::test]
async fn companies_page_through_every_active_account() -> Result<()> {
    let h = start().await?;
    let mut cursor = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = h.bms.companies(None, cursor.as_deref()).await?;
        pages += 1;
        ensure!(page.companies.iter().all(|c| c.active));
        all.extend(page.companies);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    ensure!(
        all.len() as u64 == h.fixtures["active_companies"].as_u64().unwrap_or(0),
        "{}",
        all.len()
    );
    ensure!(pages >= 3, "{pages}");
    let found = h.bms.companies(Some("acme"), None).await?;
    ensure!(
        found.companies.len() == 1 && found.next.is_none(),
        "{found:?}"
    );
    ensure!(
        found.companies[0].id == s(&h.fixtures["company_id"])
            && found.companies[0].name == "Acme Ltd"
    );
    let bad = h.bms.companies(None, Some("bogus")).await;
    ensure!(matches!(bad, Err(PsaError::Invalid(_))));
    Ok(())
}

#[tokio::test]
async fn contacts_by_company_and_email() -> Result<()> {
    let h = start().await?;
    let company = s(&h.fixtures["company_id"]);
    let contacts = h.bms.contacts(&company).await?;
    let mut ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ensure!(ids == ["56", "57", "58", "60"], "active only: {ids:?}");
    let bob = h
        .bms
        .find_contacts_by_email(&company, "Bob@Acme.test")
        .await?;
    ensure!(
        bob.len() == 1 && bob[0].id == s(&h.fixtures["contact_id"]) && bob[0].name == "Bob Smith",
        "{bob:?}"
    );
    let two = h
        .bms
        .find_contacts_by_email(&company, &s(&h.fixtures["duplicate_email"]))
        .await?;
    let mut ids: Vec<String> = two.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    let want: Vec<String> = h.fixtures["duplicate_contact_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    ensure!(ids == want, "{ids:?} vs {want:?}");
    let none = h
        .bms
        .find_contacts_by_email(&company, &s(&h.fixtures["missing_email"]))
        .await?;
    ensure!(none.is_empty());
    // Exact: a fragment of an address is not a match.
    ensure!(
        h.bms
            .find_contacts_by_email(&company, "acme.test")
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn a_ticket_with_every_default_is_made_as_asked() -> Result<()> {
    let h = start().await?;
    let mut t = h.ticket("psb-full-1");
    t.title = "T".repeat(400);
    t.description = "D".repeat(20_000);
    let made = h.bms.create_ticket(&t).await?;
    ensure!(
        made.number.as_deref().is_some_and(|n| n.starts_with('T')),
        "{made:?}"
    );
    let v = h.view(&made.id);
    let mut want = h.fixtures["defaults"].clone();
    if let Some(o) = want.as_object_mut() {
        o.remove("close_status");
    }
    ensure!(v["fields"] == want, "{} vs {want}", v["fields"]);
    ensure!(
        v["company_id"] == h.fixtures["company_id"] && v["contact_id"] == h.fixtures["contact_id"],
        "{v}"
    );
    ensure!(v["location_id"] == "34", "the main location: {v}");
    ensure!(
        v["reference"] == "psb-full-1" && v["closed"] == false,
        "{v}"
    );
    ensure!(
        v["title"].as_str().map(|s| s.chars().count()) == Some(255),
        "truncated title"
    );
    ensure!(
        v["description"]
            .as_str()
            .is_some_and(|d| d.chars().count() <= 8000 && d.ends_with("[psb-full-1]"))
    );
    let found = h.bms.find_ticket_by_reference("psb-full-1").await?;
    ensure!(
        found.as_ref().map(|f| f.id.as_str()) == Some(made.id.as_str()),
        "{found:?}"
    );
    ensure!(h.bms.find_ticket_by_reference("psb-none").await?.is_none());
    // A company id naming a location.
    let mut t = h.ticket("psb-loc");
    t.company_id = "12/35".into();
    let made = h.bms.create_ticket(&t).await?;
    ensure!(h.view(&made.id)["location_id"] == "35");
    Ok(())
}

#[tokio::test]
async fn missing_required_fields_are_refused_before_sending() -> Result<()> {
    let h = start().await?;
    h.bms.check().await?;
    let before = h.bms.meter().total();
    for (field, theirs) in [
        ("ticket_type", "TypeId"),
        ("status", "StatusId"),
        ("priority", "PriorityId"),
        ("source", "SourceId"),
    ] {
        let mut t = h.ticket("psb-missing");
        t.fields.remove(field);
        let e = h.bms.create_ticket(&t).await.err();
        ensure!(
            matches!(&e, Some(PsaError::Invalid(m)) if m.contains(theirs)),
            "{field}: {e:?}"
        );
    }
    ensure!(h.bms.meter().total() == before, "nothing sent");
    // What the PSA refuses comes back Invalid with its message.
    let mut t = h.ticket("psb-bad");
    t.fields.set("sub_issue_type", "22");
    let e = h.bms.create_ticket(&t).await.err();
    ensure!(
        matches!(&e, Some(PsaError::Invalid(m)) if m.contains("does not belong to issue type")),
        "{e:?}"
    );
    let mut t = h.ticket("psb-bad2");
    t.company_id = "999999".into();
    let e = h.bms.create_ticket(&t).await.err();
    ensure!(matches!(e, Some(PsaError::Invalid(_))), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn notes_close_and_states() -> Result<()> {
    let h = start().await?;
    let a = h.bms.create_ticket(&h.ticket("psb-a")).await?;
    let b = h.bms.create_ticket(&h.ticket("psb-b")).await?;
    ensure!(!h.bms.find_note_by_reference(&a.id, "psb-note-1").await?);
    h.bms.add_note(&a.id, &note("psb-note-1")).await?;
    ensure!(h.bms.find_note_by_reference(&a.id, "psb-note-1").await?);
    let v = h.view(&a.id);
    ensure!(
        v["notes"][0]["internal"] == true
            && v["notes"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("psb-note-1")),
        "{v}"
    );
    let e = h.bms.add_note("999999", &note("x")).await.err();
    ensure!(matches!(e, Some(PsaError::NotFound(_))), "{e:?}");

    let close = s(&h.fixtures["close_status"]);
    h.bms
        .close_ticket(&a.id, Some("7"), &note("psb-close-a"))
        .await?;
    h.bms
        .close_ticket(&b.id, None, &note("psb-close-b"))
        .await?;
    let va = h.view(&a.id);
    ensure!(va["closed"] == true && va["status"] == "7", "{va}");
    ensure!(
        va["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x["text"]
                .as_str()
                .is_some_and(|t| t.contains("psb-close-a")))),
        "the note stays: {va}"
    );
    let vb = h.view(&b.id);
    ensure!(
        vb["closed"] == true && vb["status"] == close.as_str(),
        "the PSA's own closed status: {vb}"
    );

    let states = h
        .bms
        .ticket_states(&[
            a.id.clone(),
            b.id.clone(),
            "1001".into(),
            "999999".into(),
            "x".into(),
        ])
        .await?;
    ensure!(states.len() == 3, "unknown ids absent: {states:?}");
    ensure!(
        states.iter().filter(|s| s.closed).count() == 2,
        "{states:?}"
    );
    ensure!(
        states
            .iter()
            .any(|s| s.id == "1001" && !s.closed && s.status == "2")
    );
    // A technician reopens; then closes from BMS with its default status.
    let client = reqwest::Client::new();
    client
        .post(format!("{}/_sim/tickets/{}/reopen", h.sim.base_url(), a.id))
        .send()
        .await?;
    let st = h.bms.ticket_states(std::slice::from_ref(&a.id)).await?;
    ensure!(!st[0].closed, "{st:?}");
    client
        .post(format!("{}/_sim/tickets/{}/close", h.sim.base_url(), a.id))
        .send()
        .await?;
    let st = h.bms.ticket_states(std::slice::from_ref(&a.id)).await?;
    ensure!(st[0].closed && st[0].number.is_some(), "{st:?}");
    ensure!(
        h.bms
            .register_status_webhook("https://x.example/h", "s")
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_made_twice() -> Result<()> {
    let h = start().await?;
    h.fault(
        FaultKind::AfterCommit,
        None,
        "POST",
        "/v2/servicedesk/tickets",
    );
    let e = h.bms.create_ticket(&h.ticket("psb-crash-1")).await.err();
    ensure!(e.as_ref().is_some_and(PsaError::outcome_unknown), "{e:?}");
    let found = h.bms.find_ticket_by_reference("psb-crash-1").await?;
    ensure!(found.is_some(), "the ticket the PSA made");
    let made: Vec<Value> = h
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t["reference"] == "psb-crash-1")
        .collect();
    ensure!(
        made.len() == 1 && made[0]["id"] == found.map(|f| f.id).unwrap_or_default(),
        "{made:?}"
    );
    // A dropped connection before anything was done: unknown too (we cannot tell).
    h.fault(FaultKind::Drop, None, "POST", "/notes");
    let e = h
        .bms
        .add_note(&s(&made[0]["id"]), &note("psb-n"))
        .await
        .err();
    ensure!(e.as_ref().is_some_and(PsaError::outcome_unknown), "{e:?}");
    ensure!(
        !h.bms
            .find_note_by_reference(&s(&made[0]["id"]), "psb-n")
            .await?
    );
    Ok(())
}

#[tokio::test]
async fn rate_limits_and_server_failures_are_classified() -> Result<()> {
    let h = start().await?;
    h.fault(FaultKind::Status, Some(429), "GET", "/queues/");
    let e = h.bms.lists().await.err();
    ensure!(
        matches!(e, Some(PsaError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(7)),
        "{e:?}"
    );
    h.fault(
        FaultKind::Status,
        Some(503),
        "POST",
        "/v2/servicedesk/tickets",
    );
    let e = h.bms.create_ticket(&h.ticket("psb-503")).await.err();
    ensure!(
        matches!(
            e,
            Some(PsaError::Transient {
                outcome_unknown: true,
                ..
            })
        ),
        "{e:?}"
    );
    h.fault(FaultKind::Status, Some(500), "GET", "/crm/accounts/summary");
    let e = h.bms.companies(None, None).await.err();
    ensure!(
        matches!(
            e,
            Some(PsaError::Transient {
                outcome_unknown: false,
                ..
            })
        ),
        "{e:?}"
    );
    h.fault(FaultKind::Html, Some(502), "GET", "/crm/contacts/search");
    let e = h.bms.contacts("12").await.err();
    ensure!(
        matches!(&e, Some(PsaError::Transient { message, .. }) if message.contains("HTML")),
        "{e:?}"
    );
    ensure!(
        h.bms.ticket_states(&["1001".into()]).await?.len() == 1,
        "faults were one-shot"
    );
    Ok(())
}

#[tokio::test]
async fn the_vendor_quota_answers_rate_limited_with_its_wait() -> Result<()> {
    let h = start_with(
        Config {
            hourly_limit_per_endpoint: 2,
            ..Config::default()
        },
        json!({}),
    )
    .await?;
    h.bms.companies(None, None).await?;
    h.bms.companies(None, None).await?;
    let e = h.bms.companies(None, None).await.err();
    ensure!(
        matches!(e, Some(PsaError::RateLimited { retry_after: Some(d), .. }) if d > Duration::from_secs(3000)),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_token_logs_in_again_once() -> Result<()> {
    let h = start().await?;
    h.bms.companies(Some("acme"), None).await?;
    ensure!(h.bms.meter().total() == 2, "login + call");
    reqwest::Client::new()
        .post(format!("{}/_sim/revoke-tokens", h.sim.base_url()))
        .send()
        .await?;
    h.bms.companies(Some("acme"), None).await?;
    ensure!(
        h.bms.meter().total() == 5,
        "401, login, call again: {}",
        h.bms.meter().total()
    );
    Ok(())
}

#[tokio::test]
async fn validation_failures_answered_200_are_still_failures() -> Result<()> {
    let h = start_with(
        Config {
            validation_status: 200,
            ..Config::default()
        },
        json!({}),
    )
    .await?;
    let mut t = h.ticket("psb-200");
    t.fields.set("priority", "99");
    let e = h.bms.create_ticket(&t).await.err();
    ensure!(
        matches!(&e, Some(PsaError::Invalid(m)) if m.contains("Priority with id 99")),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn settings_pick_tables_and_note_type() -> Result<()> {
    let h = start_with(
        Config {
            ticket_type_table: "TicketTypeList".into(),
            ..Config::default()
        },
        json!({"ticket_type_table": "TicketTypeList", "note_type_id": 3, "closed_statuses": ["7"]}),
    )
    .await?;
    let lists = h.bms.lists().await?;
    ensure!(!lists["ticket_type"].is_empty());
    let t = h.bms.create_ticket(&h.ticket("psb-nt")).await?;
    h.bms.add_note(&t.id, &note("psb-nt-note")).await?;
    let raw = h.view(&t.id);
    ensure!(raw["notes"][0]["internal"] == true, "{raw}");
    h.bms
        .close_ticket(&t.id, Some("7"), &note("psb-nt-close"))
        .await?;
    ensure!(h.bms.ticket_states(std::slice::from_ref(&t.id)).await?[0].closed);
    Ok(())
}

#[tokio::test]
async fn a_token_near_its_expiry_is_refreshed() -> Result<()> {
    let h = start_with(
        Config {
            token_ttl_secs: 2,
            ..Config::default()
        },
        json!({}),
    )
    .await?;
    h.bms.companies(Some("acme"), None).await?;
    // The token is used until a minute before it expires: here, not again.
    h.bms.companies(Some("acme"), None).await?;
    let stats = h.sim.stats();
    ensure!(
        stats["by_endpoint"]["POST /v2/security/authenticate"] == 1,
        "{stats}"
    );
    ensure!(
        stats["by_endpoint"]["POST /v2/security/refreshtoken"] == 1,
        "{stats}"
    );
    ensure!(
        stats["by_endpoint"]["GET /v2/crm/accounts/summary"] == 2,
        "no 401: {stats}"
    );
    Ok(())
}
