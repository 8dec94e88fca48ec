//! Templates, event sets, integration rules, copy settings, the re-fire policy and contracts,
//! through the API over HTTP, seen in the PSA's tickets.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use psabridge_core::settings::PsaKind;

use crate::harness::{Db, Product, Sim, delivery, ticket_id};
use crate::{on_both, on_every_psa};

const WAIT: Duration = Duration::from_secs(30);
const SWEEP: Duration = Duration::from_secs(90);

async fn setup(kind: PsaKind, db: Db, test: &str) -> Result<Option<(Sim, Product)>> {
    let sim = Sim::start_psa(kind).await?;
    Ok(Product::start(&sim, db, test).await?.map(|p| (sim, p)))
}

fn ev(id: &str, client: &str, ty: &str, email: &str) -> Value {
    json!({"id": id, "client": client, "type": ty, "severity": "high",
           "details": "seen by the profiles test", "user": {"email": email}})
}

/// Post one event and wait for it to be finished (delivered, dead or skipped).
async fn fire(p: &Product, e: Value) -> Result<Value> {
    let id = e["id"].as_str().unwrap_or_default().to_string();
    let (s, b) = p.post_events(&e).await?;
    ensure!(s == 202, "{s} {b}");
    Ok(p.wait_done(&[id], WAIT).await?.remove(0))
}

/// The mapping of `client` on the test's connection, as the API shows it.
async fn mapping_of(p: &Product, client: &str) -> Result<Value> {
    let (s, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/mappings", p.partner_id()),
            None,
        )
        .await?;
    ensure!(s == 200, "{s} {v}");
    v["mappings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["client"] == client && m["connection"] == p.connection())
        .cloned()
        .with_context(|| format!("{client} is not mapped: {v}"))
}

/// PUT the mapping of `client` again with its company and contact, plus `extra`.
async fn remap(p: &Product, client: &str, extra: Value) -> Result<(u16, Value)> {
    let m = mapping_of(p, client).await?;
    let mut body = json!({"company": m["company"]});
    if m["default_contact"].is_string() {
        body["default_contact"] = m["default_contact"].clone();
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    p.call(
        Method::PUT,
        &format!(
            "/api/v1/partners/{}/clients/{client}/mappings/{}",
            p.partner_id(),
            p.connection()
        ),
        Some(body),
    )
    .await
}

fn names_field(problem: &Value, path: &str) -> bool {
    problem["errors"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["path"] == path))
}

async fn refire_policies(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "refire_policies").await? else {
        return Ok(());
    };
    let user = "rita@contoso.example";
    let (s, b) = remap(&p, "client-001", json!({"refire": {"mode": "reopen"}})).await?;
    ensure!(
        s == 422 && names_field(&b, "refire.reopen_within_hours"),
        "{s} {b}"
    );
    let (s, b) = remap(&p, "client-001", json!({"refire": {"mode": "forever"}})).await?;
    ensure!(s == 422 && names_field(&b, "refire.mode"), "{s} {b}");
    let (s, m) = remap(
        &p,
        "client-001",
        json!({"refire": {"mode": "reopen", "reopen_within_hours": 24}}),
    )
    .await?;
    ensure!(s == 200, "{s} {m}");
    ensure!(
        m["refire"]["behaviour"]
            .as_str()
            .is_some_and(|b| b.contains("reopens") && b.contains("24 hours")),
        "the settings say what the policy does: {m}"
    );

    let first = fire(
        &p,
        ev("rf-1", "client-001", "saas.too_many_downloads", user),
    )
    .await?;
    ensure!(delivery(&first)["psa_action"] == "created", "{first}");
    let t1 = ticket_id(&first);
    sim.complete(&t1).await?;
    p.wait_group_closed(&t1, SWEEP).await?;

    // Reopen within the window: the same ticket, open again, with a note saying why.
    let again = fire(&p, ev("rf-2", "client-001", "saas.too_many_uploads", user)).await?;
    ensure!(delivery(&again)["psa_action"] == "reopened", "{again}");
    ensure!(ticket_id(&again) == t1, "{again}");
    let t = sim.ticket(&t1).await?;
    ensure!(t["closed"] == false, "reopened in the PSA: {t}");
    ensure!(
        sim.notes_of(&t1)
            .await?
            .iter()
            .any(|n| n["text"].as_str().is_some_and(|s| s.contains("reopened"))),
        "a note says why: {t}"
    );
    // The group is open again: the next alert is a plain note.
    let note = fire(&p, ev("rf-3", "client-001", "saas.too_many_uploads", user)).await?;
    ensure!(
        delivery(&note)["psa_action"] == "noted" && ticket_id(&note) == t1,
        "{note}"
    );

    // Note only: the closed ticket gets the alert and stays closed.
    let (s, m) = remap(&p, "client-001", json!({"refire": {"mode": "note_only"}})).await?;
    ensure!(s == 200 && m["refire"]["mode"] == "note_only", "{s} {m}");
    sim.complete(&t1).await?;
    p.wait_group_closed(&t1, SWEEP).await?;
    let noted = fire(
        &p,
        ev("rf-4", "client-001", "saas.too_many_downloads", user),
    )
    .await?;
    ensure!(
        delivery(&noted)["psa_action"] == "noted" && ticket_id(&noted) == t1,
        "{noted}"
    );
    ensure!(
        sim.ticket(&t1).await?["closed"] == true,
        "still closed in the PSA"
    );

    // The default again: a new ticket.
    let (s, m) = remap(&p, "client-001", json!({})).await?;
    ensure!(s == 200 && m["refire"]["mode"] == "new_ticket", "{s} {m}");
    let new = fire(
        &p,
        ev("rf-5", "client-001", "saas.too_many_downloads", user),
    )
    .await?;
    ensure!(delivery(&new)["psa_action"] == "created", "{new}");
    ensure!(ticket_id(&new) != t1);
    p.cleanup().await;
    Ok(())
}
on_every_psa!(refire_policies);

async fn tickets_carry_the_mapped_contract(kind: PsaKind, db: Db) -> Result<()> {
    let Some((sim, p)) = setup(kind, db, "contracts").await? else {
        return Ok(());
    };
    // A mapped client whose company has an active contract in the PSA.
    let mut chosen = None;
    for client in ["client-001", "client-002", "client-003"] {
        let company = p.client_company(client).context("mapped")?;
        let (s, v) = p
            .call(
                Method::GET,
                &format!(
                    "/api/v1/partners/{}/connections/{}/companies/{company}/contracts",
                    p.partner_id(),
                    p.connection()
                ),
                None,
            )
            .await?;
        ensure!(s == 200, "{s} {v}");
        let list = v["contracts"].as_array().cloned().unwrap_or_default();
        if let Some(c) = list.iter().find(|c| c["active"] == true) {
            let inactive = list.iter().find(|c| c["active"] == false).cloned();
            chosen = Some((
                client,
                c["id"].as_str().unwrap_or_default().to_string(),
                inactive,
            ));
            break;
        }
    }
    let (client, contract, inactive) =
        chosen.context("the simulator seeds an active contract for a mapped company")?;

    let (s, b) = remap(&p, client, json!({"contract": "99999"})).await?;
    ensure!(s == 422 && names_field(&b, "contract"), "unknown: {s} {b}");
    if let Some(old) = inactive {
        let (s, b) = remap(&p, client, json!({"contract": old["id"]})).await?;
        ensure!(s == 422 && names_field(&b, "contract"), "inactive: {s} {b}");
    }
    let (s, m) = remap(&p, client, json!({"contract": contract})).await?;
    ensure!(s == 200 && m["contract"] == contract.as_str(), "{s} {m}");

    let e = fire(
        &p,
        ev(
            "k-1",
            client,
            "saas.too_many_downloads",
            "kim@contoso.example",
        ),
    )
    .await?;
    ensure!(delivery(&e)["psa_action"] == "created", "{e}");
    let t = sim.ticket(&ticket_id(&e)).await?;
    ensure!(
        t["contract_id"] == contract.as_str(),
        "the ticket carries contract {contract}: {t}"
    );
    // Another client without a contract: none on its ticket.
    let other = ["client-001", "client-002", "client-003"]
        .into_iter()
        .find(|c| *c != client)
        .unwrap_or("client-002");
    remap(&p, other, json!({})).await?;
    let e = fire(
        &p,
        ev(
            "k-2",
            other,
            "saas.too_many_downloads",
            "kim@contoso.example",
        ),
    )
    .await?;
    let t = sim.ticket(&ticket_id(&e)).await?;
    ensure!(t["contract_id"].is_null(), "no contract: {t}");
    p.cleanup().await;
    Ok(())
}
on_every_psa!(tickets_carry_the_mapped_contract);

/// An id of `list` in the connection's lists other than `not`.
fn other_id(lists: &Value, list: &str, not: Option<&str>) -> Result<String> {
    lists[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["active"] != false && i["parent"].is_null())
        .filter_map(|i| i["id"].as_str())
        .find(|id| Some(*id) != not)
        .map(str::to_string)
        .with_context(|| format!("a second {list} in {lists}"))
}

async fn templates_event_sets_rules_and_copy(db: Db) -> Result<()> {
    let Some((sim, p)) = setup(PsaKind::Autotask, db, "templates_event_sets").await? else {
        return Ok(());
    };
    let pid = p.partner_id();
    let conn = p.connection();
    let base = format!("/api/v1/partners/{pid}/connections/{conn}");
    let (_, c) = p.call(Method::GET, &base, None).await?;
    let (_, lists) = p.call(Method::GET, &format!("{base}/lists"), None).await?;
    let lists = &lists["lists"];
    let priority = other_id(lists, "priority", c["defaults"]["priority"].as_str())?;

    // Templates: checked against the PSA's lists, unique by name.
    let (s, b) = p
        .call(
            Method::POST,
            &format!("{base}/templates"),
            Some(json!({"name": "Bad", "fields": {"priority": "99999"}})),
        )
        .await?;
    ensure!(s == 422 && names_field(&b, "fields.priority"), "{s} {b}");
    let (s, tpl) = p
        .call(
            Method::POST,
            &format!("{base}/templates"),
            Some(json!({"name": "Urgent", "fields": {"priority": priority}})),
        )
        .await?;
    ensure!(s == 201, "{s} {tpl}");
    let template = tpl["id"].as_i64().context("template id")?;
    let (s, b) = p
        .call(
            Method::POST,
            &format!("{base}/templates"),
            Some(json!({"name": "Urgent", "fields": {}})),
        )
        .await?;
    ensure!(s == 409, "same name twice: {s} {b}");

    // Event sets: catalog keys only.
    let sets = format!("/api/v1/partners/{pid}/event-sets");
    let (s, b) = p
        .call(
            Method::POST,
            &sets,
            Some(json!({"name": "Bad", "event_types": ["saas.multiple_mfa_failures", "nope"]})),
        )
        .await?;
    ensure!(s == 422 && names_field(&b, "event_types[1]"), "{s} {b}");
    let (s, set) = p
        .call(
            Method::POST,
            &sets,
            Some(json!({"name": "Identity", "event_types": ["saas.multiple_mfa_failures"]})),
        )
        .await?;
    ensure!(s == 201, "{s} {set}");
    let set_id = set["id"].as_i64().context("set id")?;

    // A mapping that names both: other event types are skipped, its tickets use the template.
    let (s, b) = remap(&p, "client-001", json!({"event_set": 999, "template": 999})).await?;
    ensure!(
        s == 422 && names_field(&b, "event_set") && names_field(&b, "template"),
        "{s} {b}"
    );
    let (s, m) = remap(
        &p,
        "client-001",
        json!({"event_set": set_id, "template": template}),
    )
    .await?;
    ensure!(
        s == 200 && m["event_set"] == set_id && m["template"] == template,
        "{s} {m}"
    );
    let skipped = fire(
        &p,
        ev(
            "t-1",
            "client-001",
            "saas.too_many_downloads",
            "a@x.example",
        ),
    )
    .await?;
    ensure!(
        skipped["routing"]["state"] == "skipped"
            && skipped["routing"]["skip_reason"]
                .as_str()
                .is_some_and(|r| r.contains("event set")),
        "{skipped}"
    );
    let made = fire(
        &p,
        ev(
            "t-2",
            "client-001",
            "saas.multiple_mfa_failures",
            "a@x.example",
        ),
    )
    .await?;
    ensure!(delivery(&made)["psa_action"] == "created", "{made}");
    let t = sim.ticket(&ticket_id(&made)).await?;
    ensure!(
        t["fields"]["priority"] == priority.as_str(),
        "template priority: {t}"
    );

    // Copy settings: to client-002; a target that is not mapped fails the whole copy.
    let copy = format!("{base}/mappings/copy");
    let (s, b) = p
        .call(
            Method::POST,
            &copy,
            Some(json!({"from": "client-001", "to": ["client-002", "client-404"]})),
        )
        .await?;
    ensure!(s == 422 && names_field(&b, "to[1]"), "{s} {b}");
    ensure!(
        mapping_of(&p, "client-002").await?["template"].is_null(),
        "nothing copied on error"
    );
    let (s, b) = p
        .call(
            Method::POST,
            &copy,
            Some(json!({"from": "client-001", "to": ["client-002"]})),
        )
        .await?;
    ensure!(s == 200, "{s} {b}");
    let m2 = mapping_of(&p, "client-002").await?;
    ensure!(
        m2["event_set"] == set_id && m2["template"] == template && m2["create_tickets"] == true,
        "{m2}"
    );

    // Integration rules: the default applies to mappings that name nothing and to the
    // catch-all; "set as default" moves it.
    let rules = format!("{base}/integration-rules");
    let (s, r1) = p
        .call(
            Method::POST,
            &rules,
            Some(json!({"name": "Urgent for all", "template": template, "default": true})),
        )
        .await?;
    ensure!(s == 201 && r1["default"] == true, "{s} {r1}");
    let (s, r2) = p
        .call(
            Method::POST,
            &rules,
            Some(json!({"name": "Identity only", "event_set": set_id})),
        )
        .await?;
    ensure!(s == 201 && r2["default"] == false, "{s} {r2}");
    for (id, client) in [("t-3", "client-003"), ("t-4", "client-004")] {
        let e = fire(&p, ev(id, client, "saas.too_many_downloads", "b@x.example")).await?;
        ensure!(delivery(&e)["psa_action"] == "created", "{e}");
        let t = sim.ticket(&ticket_id(&e)).await?;
        ensure!(
            t["fields"]["priority"] == priority.as_str(),
            "{client} gets the default rule's template: {t}"
        );
    }
    let (s, b) = p
        .call(Method::POST, &format!("{rules}/{}/default", r2["id"]), None)
        .await?;
    ensure!(s == 200 && b["default"] == true, "{s} {b}");
    let (_, list) = p.call(Method::GET, &rules, None).await?;
    let defaults: Vec<&Value> = list["integration_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["default"] == true)
        .collect();
    ensure!(
        defaults.len() == 1 && defaults[0]["id"] == r2["id"],
        "one default: {list}"
    );
    let e = fire(
        &p,
        ev(
            "t-5",
            "client-003",
            "saas.too_many_downloads",
            "c@x.example",
        ),
    )
    .await?;
    ensure!(
        e["routing"]["state"] == "skipped",
        "the new default's event set applies: {e}"
    );

    // Deleting what is referenced says what references it.
    let (s, b) = p
        .call(
            Method::DELETE,
            &format!("{base}/templates/{template}"),
            None,
        )
        .await?;
    let whats: Vec<&str> = b["references"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["what"].as_str())
        .collect();
    ensure!(s == 409, "{s} {b}");
    for want in [
        format!("clients/client-001/mappings/{conn}"),
        format!("clients/client-002/mappings/{conn}"),
        format!("integration-rules/{}", r1["id"]),
    ] {
        ensure!(whats.contains(&want.as_str()), "{want} in {b}");
    }
    let (s, b) = p
        .call(Method::DELETE, &format!("{sets}/{set_id}"), None)
        .await?;
    ensure!(
        s == 409 && b["references"].as_array().is_some_and(|r| r.len() == 3),
        "two mappings and a rule: {s} {b}"
    );
    // Once nothing references them, they go.
    for client in ["client-001", "client-002"] {
        let (s, b) = remap(&p, client, json!({})).await?;
        ensure!(s == 200, "{s} {b}");
    }
    for r in [&r1, &r2] {
        let (s, b) = p
            .call(Method::DELETE, &format!("{rules}/{}", r["id"]), None)
            .await?;
        ensure!(s == 204, "{s} {b}");
    }
    let (s, b) = p
        .call(
            Method::DELETE,
            &format!("{base}/templates/{template}"),
            None,
        )
        .await?;
    ensure!(s == 204, "{s} {b}");
    let (s, b) = p
        .call(Method::DELETE, &format!("{sets}/{set_id}"), None)
        .await?;
    ensure!(s == 204, "{s} {b}");

    // Every change is in the audit log.
    let (_, audit) = p
        .call(Method::GET, &format!("/api/v1/partners/{pid}/audit"), None)
        .await?;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "template.create",
        "event_set.create",
        "mapping.copy_settings",
        "integration_rule.create",
        "integration_rule.set_default",
        "template.delete",
        "event_set.delete",
    ] {
        ensure!(actions.contains(&want), "{want} in {actions:?}");
    }
    p.cleanup().await;
    Ok(())
}
on_both!(templates_event_sets_rules_and_copy);
