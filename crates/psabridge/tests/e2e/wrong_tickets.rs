//! Wrong or dead tickets: an event in two places after a lost answer, retries that keep
//! stale settings, contacts of another company, notes on tickets a technician just closed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use psabridge_core::settings::PsaKind;

use crate::harness::{Db, Product, Sim, delivery, ticket_id};
use crate::on_every_psa;

const WAIT: Duration = Duration::from_secs(30);

fn ev(id: &str, client: &str, ty: &str, email: &str) -> Value {
    json!({"id": id, "client": client, "type": ty, "severity": "high",
           "user": {"email": email, "name": "Test User"}})
}

/// A fault rule that picks the requests adding a note to a ticket.
fn note_adds(kind: PsaKind, rule: Value) -> Value {
    pick(
        rule,
        match kind {
            PsaKind::HaloPsa => json!({"path_contains": "/api/Actions", "method": "POST"}),
            _ => json!({"path_contains": "/notes", "method": "POST"}),
        },
    )
}

/// A fault rule that picks the requests looking for a ticket's notes.
fn note_lookups(kind: PsaKind, rule: Value) -> Value {
    pick(
        rule,
        match kind {
            PsaKind::Autotask => json!({"path_contains": "TicketNotes/query", "method": "POST"}),
            PsaKind::HaloPsa => json!({"path_contains": "/api/Actions", "method": "GET"}),
            _ => json!({"path_contains": "/notes", "method": "GET"}),
        },
    )
}

fn pick(mut rule: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().into_iter().flatten() {
        rule[k] = v.clone();
    }
    rule
}

/// Wait until the event's delivery has `status` (`retrying`: it failed an attempt).
async fn wait_status(p: &Product, id: &str, status: &str, timeout: Duration) -> Result<Value> {
    let end = Instant::now() + timeout;
    loop {
        let e = p.event(id).await?;
        if delivery(&e)["status"] == status {
            return Ok(e);
        }
        if Instant::now() > end {
            bail!("event {id} not {status} in {timeout:?}: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A note the PSA made but whose answer was lost, then the ticket closed by a technician
/// before the retry: the retry finds the note on that closed ticket and opens no other.
async fn lost_note_answer_then_closed_ticket_stays_in_one_place(
    kind: PsaKind,
    db: Db,
) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "lost_note_answer_then_closed").await? else {
        return Ok(());
    };
    let user = "ann@contoso.example";
    p.post_events(&ev("n-1", "client-001", "saas.too_many_downloads", user))
        .await?;
    let first = &p.wait_done(&["n-1".into()], WAIT).await?[0];
    let ticket = ticket_id(first);
    // The next note is made by the PSA but its answer is lost; and the retry's look-up waits
    // until the product has learnt that the technician closed the ticket.
    sim.fault(note_adds(kind, json!({"kind": "after_commit", "count": 1})))
        .await?;
    sim.fault(note_lookups(kind, json!({"kind": "status", "status": 503})))
        .await?;
    p.post_events(&ev("n-2", "client-001", "saas.too_many_uploads", user))
        .await?;
    wait_status(&p, "n-2", "retrying", WAIT).await?;
    ensure!(
        sim.notes_of(&ticket).await?.len() == 1,
        "the PSA made the note whose answer was lost"
    );
    sim.complete(&ticket).await?;
    p.wait_group_closed(&ticket, Duration::from_secs(90))
        .await?;
    let notes_after_close = sim.notes_of(&ticket).await?.len();
    sim.clear_faults().await?;

    let second = &p
        .wait_done(&["n-2".into()], Duration::from_secs(150))
        .await?[0];
    let d = delivery(second);
    ensure!(
        d["status"] == "delivered" && d["psa_action"] == "noted",
        "{second}"
    );
    ensure!(ticket_id(second) == ticket, "on the first ticket: {second}");
    ensure!(
        sim.our_tickets().await?.len() == 1,
        "no second ticket: {:?}",
        sim.our_tickets().await?
    );
    ensure!(
        sim.notes_of(&ticket).await?.len() == notes_after_close,
        "the note is not sent again"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(lost_note_answer_then_closed_ticket_stays_in_one_place);

/// A fault rule that picks the requests creating a ticket.
fn ticket_creates(kind: PsaKind, rule: Value) -> Value {
    pick(
        rule,
        match kind {
            PsaKind::Autotask => json!({"entity": "Tickets", "method": "POST"}),
            PsaKind::HaloPsa => json!({"path_contains": "/api/Tickets", "method": "POST"}),
            PsaKind::KaseyaBms => {
                json!({"path_contains": "/v2/servicedesk/tickets", "method": "POST"})
            }
            PsaKind::ConnectWise => json!({"path_contains": "/service/tickets", "method": "POST"}),
        },
    )
}

/// A delivery the PSA refused (dead), the connection's default fixed, then retried through
/// the API: the retry goes out with today's default, and the history keeps both attempts.
async fn retry_goes_out_with_todays_settings(kind: PsaKind, db: Db) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "retry_with_todays_settings").await? else {
        return Ok(());
    };
    let conn_path = format!(
        "/api/v1/partners/{}/connections/{}",
        p.partner_id(),
        p.connection()
    );
    let (_, conn) = p.call(Method::GET, &conn_path, None).await?;
    let before = conn["defaults"]["priority"].clone();
    let (_, lists) = p
        .call(Method::GET, &format!("{conn_path}/lists"), None)
        .await?;
    let priorities = lists["lists"]["priority"]
        .as_array()
        .or_else(|| lists["priority"].as_array())
        .cloned()
        .unwrap_or_default();
    let Some(fixed) = priorities
        .iter()
        .filter(|i| i["active"] != false)
        .filter_map(|i| i["id"].as_str())
        .find(|id| json!(id) != before)
        .map(str::to_string)
    else {
        bail!("a second priority in the PSA's lists: {lists}");
    };
    // The PSA refuses the ticket (as it refuses a field it does not take): dead.
    sim.fault(ticket_creates(
        kind,
        json!({"kind": "status", "status": 400, "count": 1}),
    ))
    .await?;
    p.post_events(&ev(
        "r-1",
        "client-001",
        "saas.too_many_downloads",
        "bo@contoso.example",
    ))
    .await?;
    let dead = &p.wait_done(&["r-1".into()], WAIT).await?[0];
    ensure!(delivery(dead)["status"] == "dead", "{dead}");
    let id = delivery(dead)["id"].as_i64().unwrap_or_default();

    let mut defaults = conn["defaults"].as_object().cloned().unwrap_or_default();
    defaults.insert("priority".into(), json!(fixed));
    let (s, v) = p
        .call(
            Method::PATCH,
            &conn_path,
            Some(json!({"defaults": defaults})),
        )
        .await?;
    ensure!(s == 200, "{s} {v}");
    let (s, v) = p
        .call(
            Method::POST,
            &format!("/api/v1/partners/{}/deliveries/retry", p.partner_id()),
            Some(json!({"ids": [id]})),
        )
        .await?;
    ensure!(s == 200 && v["retried"] == 1, "{s} {v}");
    let e = wait_status(&p, "r-1", "delivered", WAIT).await?;
    let d = delivery(&e);
    ensure!(d["psa_action"] == "created", "{e}");
    let t = sim.ticket(&ticket_id(&e)).await?;
    ensure!(
        t["fields"]["priority"] == json!(fixed),
        "today's priority: {t}"
    );
    let history = d["history"].as_array().cloned().unwrap_or_default();
    let outcomes: Vec<&str> = history
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    ensure!(outcomes == ["dead", "created"], "both attempts: {e}");
    ensure!(d["attempts"] == 2, "attempts counts both: {e}");
    p.cleanup().await;
    Ok(())
}
on_every_psa!(retry_goes_out_with_todays_settings);

/// A mapping without a default contact: a user who is not a contact gets the mapped
/// company's primary contact, never the catch-all company's. Where the PSA names no primary
/// contact and refuses tickets without one (Kaseya BMS), such a mapping, and a catch-all
/// without a contact, are refused with the field named.
async fn a_mapping_without_a_default_contact_keeps_to_its_company(
    kind: PsaKind,
    db: Db,
) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "mapping_without_default_contact").await? else {
        return Ok(());
    };
    let company = p
        .client_company("client-002")
        .expect("client-002 is mapped");
    let (s, v) = p
        .call(
            Method::PUT,
            &format!(
                "/api/v1/partners/{}/clients/client-002/mappings/{}",
                p.partner_id(),
                p.connection()
            ),
            Some(json!({"company": company, "client_name": "Blue Harbor Legal"})),
        )
        .await?;
    if kind == PsaKind::KaseyaBms {
        ensure!(
            s == 422 && v["errors"][0]["path"] == "default_contact",
            "{s} {v}"
        );
        let catch_all = p.catch_all()["company_id"].clone();
        let (s, v) = p
            .call(
                Method::PATCH,
                &format!(
                    "/api/v1/partners/{}/connections/{}",
                    p.partner_id(),
                    p.connection()
                ),
                Some(json!({"catch_all": {"company": catch_all}})),
            )
            .await?;
        ensure!(
            s == 422 && v["errors"][0]["path"] == "catch_all.contact",
            "{s} {v}"
        );
        p.cleanup().await;
        return Ok(());
    }
    ensure!((200..300).contains(&s), "{s} {v}");
    p.post_events(&ev(
        "c-1",
        "client-002",
        "saas.too_many_downloads",
        "not.a.contact@example.test",
    ))
    .await?;
    let e = &p.wait_done(&["c-1".into()], WAIT).await?[0];
    let d = delivery(e);
    ensure!(
        d["status"] == "delivered" && d["psa_action"] == "created",
        "{e}"
    );
    ensure!(d["contact"]["source"] == "company_primary", "{e}");
    let t = sim.ticket(&ticket_id(e)).await?;
    // (A HaloPSA company may be a client's site: `client/site`.)
    let site_company = format!(
        "{}/{}",
        t["company_id"].as_str().unwrap_or_default(),
        t["site_id"].as_str().unwrap_or_default()
    );
    ensure!(
        t["company_id"] == company.as_str() || site_company == company,
        "company {company}: {t}"
    );
    ensure!(
        t["contact_id"] != p.catch_all()["contact_id"],
        "not the catch-all company's contact: {t}"
    );
    let own = p.contacts(&company.replace('/', "%2F")).await?;
    ensure!(
        own.iter().any(|c| c["id"] == t["contact_id"]),
        "a contact of the ticket's company: {t} {own:?}"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(a_mapping_without_a_default_contact_keeps_to_its_company);

/// A technician closes the ticket and the next alert comes within a second: where the PSA
/// pushes no ticket changes, the ticket is read before the note, so the alert opens a new
/// ticket and the closed one gets no note. (Autotask pushes its changes through its webhook:
/// see `grouping_by_user_then_closed_means_new_ticket`.)
async fn an_alert_just_after_a_close_opens_a_new_ticket(kind: PsaKind, db: Db) -> Result<()> {
    if kind == PsaKind::Autotask {
        return Ok(());
    }
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "alert_just_after_a_close").await? else {
        return Ok(());
    };
    let user = "dee@contoso.example";
    p.post_events(&ev("k-1", "client-001", "saas.too_many_downloads", user))
        .await?;
    let first = &p.wait_done(&["k-1".into()], WAIT).await?[0];
    let ticket = ticket_id(first);
    // The technician works on it a little, then closes it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sim.complete(&ticket).await?;
    let notes = sim.notes_of(&ticket).await?.len();
    let (s, v) = p
        .post_events(&ev("k-2", "client-001", "saas.too_many_uploads", user))
        .await?;
    ensure!(s == 202, "{s} {v}");
    let second = &p.wait_done(&["k-2".into()], WAIT).await?[0];
    ensure!(
        delivery(second)["psa_action"] == "created" && ticket_id(second) != ticket,
        "a new ticket: {second}"
    );
    ensure!(
        sim.notes_of(&ticket).await?.len() == notes,
        "no note on the closed ticket"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(an_alert_just_after_a_close_opens_a_new_ticket);

/// ConnectWise and HaloPSA push ticket changes to us once "Connect" registered our callback
/// (the demo has a public URL): a technician's close reaches the product before the next
/// alert, which opens a new ticket with one PSA call, without reading the ticket first.
async fn a_pushed_close_means_a_new_ticket_without_a_read(kind: PsaKind, db: Db) -> Result<()> {
    if !matches!(kind, PsaKind::ConnectWise | PsaKind::HaloPsa) {
        return Ok(());
    }
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "pushed_close").await? else {
        return Ok(());
    };
    let path = format!(
        "/api/v1/partners/{}/connections/{}",
        p.partner_id(),
        p.connection()
    );
    let (s, conn) = p.call(Method::GET, &path, None).await?;
    ensure!(
        s == 200 && conn["webhook"]["id"].is_string(),
        "a push channel is registered: {s} {conn}"
    );
    let user = "pat@contoso.example";
    p.post_events(&ev("p-1", "client-001", "saas.too_many_downloads", user))
        .await?;
    let first = &p.wait_done(&["p-1".into()], WAIT).await?[0];
    let ticket = ticket_id(first);
    // A second alert of the group is one note: the open ticket is trusted, not read.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = sim.requests().await?;
    p.post_events(&ev("p-2", "client-001", "saas.too_many_uploads", user))
        .await?;
    let second = &p.wait_done(&["p-2".into()], WAIT).await?[0];
    ensure!(
        delivery(second)["psa_action"] == "noted" && ticket_id(second) == ticket,
        "{second}"
    );
    let spent = sim.requests().await? - before;
    ensure!(spent == 1, "one PSA call for the note, not {spent}");

    // The technician closes it; an alert a second later opens a new ticket.
    sim.complete(&ticket).await?;
    let notes = sim.notes_of(&ticket).await?.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sim.requests().await?;
    p.post_events(&ev("p-3", "client-001", "saas.multiple_mfa_failures", user))
        .await?;
    let third = &p.wait_done(&["p-3".into()], WAIT).await?[0];
    ensure!(
        delivery(third)["psa_action"] == "created" && ticket_id(third) != ticket,
        "a new ticket: {third}"
    );
    let spent = sim.requests().await? - before;
    ensure!(
        spent == 1,
        "one PSA call for the create, no read first: {spent}"
    );
    ensure!(
        sim.notes_of(&ticket).await?.len() == notes,
        "no note on the closed ticket"
    );
    // A forged callout is refused and changes nothing.
    let hook = format!("{}/hooks/{}/{}", p.api(), kind.as_str(), p.connection());
    let r = p
        .http
        .post(&hook)
        .header("content-type", "application/json")
        .header("authorization", "Basic cHNhYnJpZGdlOmd1ZXNz")
        .header("x-content-signature", "AAAA")
        .body(
            json!({"ID": 1, "Type": "ticket", "Metadata": {"key_url": "http://127.0.0.1:9/key"},
                     "ticket": {"id": 1, "status_id": 9}})
            .to_string(),
        )
        .send()
        .await?;
    ensure!(r.status() == 401, "forged callout: {}", r.status());
    p.cleanup().await;
    Ok(())
}
on_every_psa!(a_pushed_close_means_a_new_ticket_without_a_read);
