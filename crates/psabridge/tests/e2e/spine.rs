//! Event → ticket: company, contact, queue, grouping, catch-all, duplicates.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use psabridge_core::settings::PsaKind;

use crate::harness::{Db, Product, Sim, delivery, ticket_id};
use crate::{on_both, on_every_psa};

const WAIT: Duration = Duration::from_secs(30);

async fn setup(kind: PsaKind, db: Db, test: &str) -> Result<Option<(Sim, Product)>> {
    let sim = Sim::start_psa(kind).await?;
    Ok(Product::start(&sim, db, test).await?.map(|p| (sim, p)))
}

fn ev(id: &str, client: &str, ty: &str, email: Option<&str>) -> Value {
    let mut v = json!({"id": id, "client": client, "type": ty, "severity": "high", "details": "seen by the test"});
    if let Some(e) = email {
        v["user"] = json!({"email": e, "name": "Test User"});
    }
    v
}

async fn first_alert_creates_the_right_ticket(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "first_alert_creates_the_right_ticket").await? else {
        return Ok(());
    };
    let company = p
        .client_company("client-001")
        .expect("client-001 is mapped");
    let contacts = p.contacts(&company).await?;
    let contact = contacts.first().expect("a contact with an email");
    let email = contact["email"].as_str().unwrap().to_uppercase();

    let (status, body) = p
        .post_events(&ev(
            "e-1",
            "client-001",
            "saas.too_many_downloads",
            Some(&email),
        ))
        .await?;
    ensure!(status == 202, "{status} {body}");
    ensure!(body == json!({"id": "e-1", "status": "accepted"}), "{body}");
    let e = &p.wait_done(&["e-1".into()], WAIT).await?[0];
    let d = delivery(e);
    ensure!(
        d["status"] == "delivered" && d["psa_action"] == "created",
        "{e}"
    );
    ensure!(
        d["contact"]["source"] == "user_email",
        "found by the user's email: {e}"
    );

    let t = sim.ticket(&ticket_id(e)).await?;
    ensure!(t["company_id"] == company.as_str(), "company: {t}");
    ensure!(t["contact_id"] == contact["id"], "contact: {t}");
    ensure!(
        t["reference"]
            .as_str()
            .is_some_and(|r| r.contains("psabridge:")),
        "reference: {t}"
    );
    ensure!(
        t["title"]
            .as_str()
            .is_some_and(|s| s.contains("Too many downloads")),
        "title: {t}"
    );
    ensure!(
        t["description"]
            .as_str()
            .is_some_and(|s| s.contains("seen by the test")),
        "description: {t}"
    );
    // The connection's defaults, as the demo chose them from the PSA's lists.
    let (_, conn) = p
        .call(
            reqwest::Method::GET,
            &format!(
                "/api/v1/partners/{}/connections/{}",
                p.partner_id(),
                p.connection()
            ),
            None,
        )
        .await?;
    let defaults = conn["defaults"].as_object().cloned().unwrap_or_default();
    ensure!(!defaults.is_empty(), "the demo chose defaults: {conn}");
    for (field, want) in defaults {
        if field == "close_status" {
            continue;
        }
        ensure!(t["fields"][&field] == want, "{field} should be {want}: {t}");
    }
    p.cleanup().await;
    Ok(())
}
on_every_psa!(first_alert_creates_the_right_ticket);

async fn grouping_by_user_then_closed_means_new_ticket(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "grouping_by_user").await? else {
        return Ok(());
    };
    let user = Some("ann@contoso.example");
    p.post_events(&ev("g-1", "client-001", "saas.too_many_downloads", user))
        .await?;
    let first = p.wait_done(&["g-1".into()], WAIT).await?;
    // Another alert type of the same user: a note on the same ticket.
    p.post_events(&ev("g-2", "client-001", "saas.too_many_uploads", user))
        .await?;
    let second = p.wait_done(&["g-2".into()], WAIT).await?;
    ensure!(
        delivery(&second[0])["psa_action"] == "noted",
        "{}",
        second[0]
    );
    ensure!(ticket_id(&second[0]) == ticket_id(&first[0]));
    ensure!(sim.notes_of(&ticket_id(&first[0])).await?.len() == 1);

    // The technician completes the ticket; once the product knows (webhook, or the sweep
    // where the PSA has no webhook), the next alert opens a new one.
    sim.complete(&ticket_id(&first[0])).await?;
    p.wait_group_closed(&ticket_id(&first[0]), Duration::from_secs(90))
        .await?;
    p.post_events(&ev("g-3", "client-001", "saas.multiple_mfa_failures", user))
        .await?;
    let third = p.wait_done(&["g-3".into()], WAIT).await?;
    ensure!(
        delivery(&third[0])["psa_action"] == "created",
        "{}",
        third[0]
    );
    ensure!(ticket_id(&third[0]) != ticket_id(&first[0]));
    ensure!(
        sim.notes_of(&ticket_id(&first[0])).await?.len() == 1,
        "no note on the closed ticket"
    );
    ensure!(sim.our_tickets().await?.len() == 2);
    p.cleanup().await;
    Ok(())
}
on_every_psa!(grouping_by_user_then_closed_means_new_ticket);

async fn grouping_by_user_and_alert(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "grouping_by_user_and_alert").await? else {
        return Ok(());
    };
    let (status, body) = p
        .call(
            reqwest::Method::PATCH,
            &format!(
                "/api/v1/partners/{}/connections/{}",
                p.partner_id(),
                p.connection()
            ),
            Some(json!({"grouping": "user_and_alert"})),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let user = Some("bob@fabrikam.example");
    p.post_events(&ev("u-1", "client-002", "saas.too_many_downloads", user))
        .await?;
    p.wait_done(&["u-1".into()], WAIT).await?;
    p.post_events(&ev("u-2", "client-002", "saas.too_many_uploads", user))
        .await?;
    p.wait_done(&["u-2".into()], WAIT).await?;
    p.post_events(&ev("u-3", "client-002", "saas.too_many_uploads", user))
        .await?;
    let all = p
        .wait_done(&["u-1".into(), "u-2".into(), "u-3".into()], WAIT)
        .await?;
    let actions: Vec<&str> = all
        .iter()
        .map(|e| delivery(e)["psa_action"].as_str().unwrap_or(""))
        .collect();
    ensure!(actions == ["created", "created", "noted"], "{actions:?}");
    ensure!(ticket_id(&all[2]) == ticket_id(&all[1]));
    ensure!(sim.our_tickets().await?.len() == 2);
    p.cleanup().await;
    Ok(())
}
on_every_psa!(grouping_by_user_and_alert);

async fn contacts_and_catch_all(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "contacts_and_catch_all").await? else {
        return Ok(());
    };
    // Unknown email → the mapping's default contact.
    p.post_events(&ev(
        "c-1",
        "client-001",
        "saas.too_many_downloads",
        Some("nobody@nowhere.example"),
    ))
    .await?;
    // Unmapped client → the catch-all company and contact.
    p.post_events(&ev("c-2", "client-004", "dark_web.breach_report", None))
        .await?;
    // A client never seen before → catch-all too, and it appears in the client list.
    p.post_events(&ev(
        "c-3",
        "brand-new-client",
        "email.bounced",
        Some("x@y.example"),
    ))
    .await?;
    let all = p
        .wait_done(&["c-1".into(), "c-2".into(), "c-3".into()], WAIT)
        .await?;
    ensure!(
        delivery(&all[0])["contact"]["source"] == "mapping_default",
        "{}",
        all[0]
    );
    let catch_all = p.catch_all();
    for e in &all[1..] {
        let t = sim.ticket(&ticket_id(e)).await?;
        ensure!(t["company_id"] == catch_all["company_id"], "{t}");
        ensure!(t["contact_id"] == catch_all["contact_id"], "{t}");
        ensure!(delivery(e)["contact"]["source"] == "catch_all", "{e}");
    }
    let (_, clients) = p
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/partners/{}/clients", p.partner_id()),
            None,
        )
        .await?;
    let new = clients["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == "brand-new-client");
    ensure!(
        new.is_some_and(|c| c["status"] == "not_configured"),
        "{clients}"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(contacts_and_catch_all);

async fn duplicates_and_bad_input(db: Db) -> Result<()> {
    let Some((sim, p)) = setup(PsaKind::Autotask, db, "duplicates_and_bad_input").await? else {
        return Ok(());
    };
    let (s1, _) = p
        .post_events(&ev(
            "d-1",
            "client-003",
            "email.bounced",
            Some("a@b.example"),
        ))
        .await?;
    let (s2, b2) = p
        .post_events(&ev(
            "d-1",
            "client-003",
            "email.bounced",
            Some("other@b.example"),
        ))
        .await?;
    ensure!(
        s1 == 202 && s2 == 202 && b2["status"] == "duplicate",
        "{b2}"
    );
    // A batch with a bad event stores the good ones and says exactly what happened.
    let (s3, b3) = p
        .post_events(&json!({"events": [
            ev("d-2", "client-003", "email.bounced", None),
            {"id": "d-3", "client": "client-003", "type": "no.such.type"},
            ev("d-1", "client-003", "email.bounced", None),
        ]}))
        .await?;
    ensure!(s3 == 422, "{s3} {b3}");
    ensure!(
        b3["accepted"] == 1 && b3["duplicates"] == 1 && b3["rejected"] == 1,
        "{b3}"
    );
    ensure!(
        b3["results"][1]["errors"][0]["path"] == "events[1].type",
        "{b3}"
    );
    let done = p.wait_done(&["d-1".into(), "d-2".into()], WAIT).await?;
    ensure!(
        done[0]["user"]["email"] == "a@b.example",
        "the duplicate changed nothing"
    );
    // d-1 groups by its user, d-2 (no user) by client and type: two groups, two tickets.
    ensure!(sim.our_tickets().await?.len() == 2, "one ticket per group");
    // Malformed JSON and a missing token.
    let r = p
        .http
        .post(format!("{}/api/v1/events", p.api()))
        .bearer_auth(p.token())
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await?;
    ensure!(r.status() == 400);
    ensure!(r.headers()["content-type"] == "application/problem+json");
    let r = p
        .http
        .post(format!("{}/api/v1/events", p.api()))
        .json(&ev("d-9", "c", "email.bounced", None))
        .send()
        .await?;
    ensure!(r.status() == 401);
    p.cleanup().await;
    Ok(())
}
on_both!(duplicates_and_bad_input);

async fn cloudevents_are_accepted(db: Db) -> Result<()> {
    let Some((_sim, p)) = setup(PsaKind::Autotask, db, "cloudevents_are_accepted").await? else {
        return Ok(());
    };
    let r = p
        .http
        .post(format!("{}/api/v1/events", p.api()))
        .bearer_auth(p.token())
        .header("content-type", "application/cloudevents+json")
        .body(
            json!({"specversion": "1.0", "id": "ce-1", "source": "/vendor/test", "type": "saas.too_many_deletions",
                   "time": "2026-11-22T10:00:00Z", "subject": "client-002",
                   "data": {"user": {"email": "carol@fabrikam.example"}, "files": 99}})
            .to_string(),
        )
        .send()
        .await?;
    ensure!(r.status() == 202, "{}", r.text().await?);
    let e = &p.wait_done(&["ce-1".into()], WAIT).await?[0];
    ensure!(
        delivery(e)["psa_action"] == "created"
            && e["client"] == "client-002"
            && e["data"]["files"] == 99,
        "{e}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(cloudevents_are_accepted);

async fn restart_keeps_everything(db: Db) -> Result<()> {
    let Some((sim, mut p)) = setup(PsaKind::Autotask, db, "restart_keeps_everything").await? else {
        return Ok(());
    };
    p.post_events(&ev(
        "r-1",
        "client-001",
        "email.spam_report",
        Some("dan@contoso.example"),
    ))
    .await?;
    let before = p.wait_done(&["r-1".into()], WAIT).await?;
    let token = p.token();
    p.stop();
    p.launch()?;
    ensure!(p.token() == token, "the same token");
    let again = p.event("r-1").await?;
    ensure!(ticket_id(&again) == ticket_id(&before[0]));
    p.post_events(&ev(
        "r-2",
        "client-001",
        "email.spam_report",
        Some("dan@contoso.example"),
    ))
    .await?;
    let after = p.wait_done(&["r-2".into()], WAIT).await?;
    ensure!(
        delivery(&after[0])["psa_action"] == "noted",
        "the group survived the restart: {}",
        after[0]
    );
    ensure!(sim.our_tickets().await?.len() == 1);
    p.cleanup().await;
    Ok(())
}
on_both!(restart_keeps_everything);

async fn a_test_notification_makes_a_real_ticket_or_names_the_error(
    kind: PsaKind,
    db: Db,
) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "test_notification").await? else {
        return Ok(());
    };
    let path = format!(
        "/api/v1/partners/{}/clients/client-001/test-notification",
        p.partner_id()
    );
    let (status, v) = p
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({"event_type": "saas.too_many_downloads"})),
        )
        .await?;
    ensure!(status == 201 && v["status"] == "delivered", "{status} {v}");
    let id = v["ticket"]["id"].as_str().unwrap_or_default().to_string();
    let t = sim.ticket(&id).await?;
    ensure!(
        Some(t["company_id"].as_str().unwrap_or_default().to_string())
            == p.client_company("client-001"),
        "{t}"
    );
    ensure!(
        t["title"]
            .as_str()
            .is_some_and(|s| s.contains("Too many downloads")),
        "{t}"
    );
    // A second test makes a second ticket, never a note on the first.
    let (status, again) = p
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({"event_type": "saas.too_many_downloads"})),
        )
        .await?;
    ensure!(
        status == 201 && again["ticket"]["id"] != v["ticket"]["id"],
        "{again}"
    );

    // The PSA refuses: the exact error comes back.
    let create_path = match kind {
        PsaKind::Autotask => json!({"entity": "Tickets"}),
        PsaKind::HaloPsa => json!({"path_contains": "/api/Tickets"}),
        PsaKind::KaseyaBms => json!({"path_contains": "/v2/servicedesk/tickets"}),
        PsaKind::ConnectWise => json!({"path_contains": "/service/tickets"}),
    };
    let mut rule = json!({"kind": "status", "status": 403, "method": "POST", "count": 1});
    for (k, v) in create_path.as_object().into_iter().flatten() {
        rule[k] = v.clone();
    }
    sim.fault(rule).await?;
    let (status, v) = p
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({"event_type": "saas.too_many_uploads"})),
        )
        .await?;
    ensure!(
        status == 502
            && v["status"] == "dead"
            && v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status} {v}"
    );
    let (status, v) = p
        .call(
            reqwest::Method::POST,
            &path,
            Some(json!({"event_type": "no.such.type"})),
        )
        .await?;
    ensure!(
        status == 422 && v["errors"][0]["path"] == "event_type",
        "{status} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(a_test_notification_makes_a_real_ticket_or_names_the_error);

async fn resolves_close_the_ticket_once_every_alert_resolved(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "resolves_close_the_ticket").await? else {
        return Ok(());
    };
    let path = format!(
        "/api/v1/partners/{}/connections/{}",
        p.partner_id(),
        p.connection()
    );
    let (status, conn) = p
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"close_on_resolve": true})),
        )
        .await?;
    ensure!(status == 200 && conn["close_on_resolve"] == true, "{conn}");
    let user = Some("erin@contoso.example");
    let resolve = |id: &str, ty: &str| {
        let mut e = ev(id, "client-002", ty, user);
        e["action"] = json!("resolve");
        e
    };
    for e in [
        ev("z-1", "client-002", "saas.too_many_downloads", user),
        ev("z-2", "client-002", "saas.multiple_mfa_failures", user),
        resolve("z-3", "saas.too_many_downloads"),
        resolve("z-4", "saas.multiple_mfa_failures"),
    ] {
        let id = e["id"].as_str().unwrap_or_default().to_string();
        let (s, b) = p.post_events(&e).await?;
        ensure!(s == 202, "{s} {b}");
        // One at a time, so each sees the group as the previous one left it.
        p.wait_done(&[id], WAIT).await?;
    }
    let done = p.wait_done(&["z-3".into(), "z-4".into()], WAIT).await?;
    ensure!(delivery(&done[0])["psa_action"] == "noted", "{}", done[0]);
    ensure!(delivery(&done[1])["psa_action"] == "closed", "{}", done[1]);
    let t = sim.ticket(&ticket_id(&done[1])).await?;
    ensure!(t["closed"] == true, "closed in the PSA: {t}");
    if let Some(close) = conn["defaults"]["close_status"].as_str() {
        ensure!(t["status"] == close, "with the close status {close}: {t}");
    }
    ensure!(
        t["notes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["text"]
                .as_str()
                .is_some_and(|s| s.contains("has resolved")))),
        "a note says why: {t}"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(resolves_close_the_ticket_once_every_alert_resolved);
