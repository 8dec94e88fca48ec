//! Connections as a user makes and changes them through the API: every PSA can be connected
//! with its own credentials, a refused change stores nothing, and stored secrets never go to
//! a place they were not given for.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use psabridge_core::settings::PsaKind;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::harness::{Db, Product, Sim, delivery};
use crate::on_both;

const WAIT: Duration = Duration::from_secs(30);

/// The fields of the "Connect" form of each PSA, as a user fills them in from what the
/// simulator's page (demo.json `simulators.*`) shows.
fn form_fields(kind: PsaKind) -> &'static [&'static str] {
    match kind {
        PsaKind::Autotask => &[
            "username",
            "secret",
            "integration_code",
            "zone_discovery_url",
        ],
        PsaKind::HaloPsa => &[
            "resource_url",
            "auth_url",
            "tenant",
            "client_id",
            "client_secret",
        ],
        PsaKind::KaseyaBms => &["base_url", "tenant", "username", "password"],
        PsaKind::ConnectWise => &[
            "site_url",
            "company",
            "public_key",
            "private_key",
            "client_id",
        ],
    }
}

fn credentials_of(p: &Product, kind: PsaKind) -> Result<Map<String, Value>> {
    let described = &p.info["simulators"][kind.as_str()];
    let mut out = Map::new();
    for f in form_fields(kind) {
        let v = described
            .get(*f)
            .filter(|v| !v.is_null())
            .with_context(|| format!("demo.json simulators.{}.{f}: {described}", kind.as_str()))?;
        out.insert((*f).to_string(), v.clone());
    }
    Ok(out)
}

/// Post one event and wait until it is finished.
async fn fire(p: &Product, id: &str, client: &str) -> Result<Value> {
    let (s, b) = p
        .post_events(
            &json!({"id": id, "client": client, "type": "saas.too_many_downloads",
                             "severity": "high", "details": "seen by the connections test"}),
        )
        .await?;
    ensure!(s == 202, "{s} {b}");
    Ok(p.wait_done(&[id.to_string()], WAIT).await?.remove(0))
}

/// Map `client` to a customer company of connection `conn`, as a user picks one.
async fn map_client(p: &Product, conn: i64, client: &str) -> Result<()> {
    let base = format!("/api/v1/partners/{}/connections/{conn}", p.partner_id());
    let (s, v) = p
        .call(Method::GET, &format!("{base}/companies"), None)
        .await?;
    ensure!(s == 200, "companies: {s} {v}");
    let company = v["companies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["id"] != "0"
                && !c["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains("default")
        })
        .and_then(|c| c["id"].as_str())
        .context("a customer company")?
        .to_string();
    let mapping = format!(
        "/api/v1/partners/{}/clients/{client}/mappings/{conn}",
        p.partner_id()
    );
    let (s, v) = p
        .call(Method::PUT, &mapping, Some(json!({"company": company})))
        .await?;
    if s == 422 && v["errors"][0]["path"] == "default_contact" {
        // This PSA wants a contact on every ticket and names no primary contact: the user
        // picks one of the company's contacts, as the error asks.
        let (s, c) = p
            .call(
                Method::GET,
                &format!("{base}/companies/{company}/contacts"),
                None,
            )
            .await?;
        ensure!(s == 200, "contacts of {company}: {s} {c}");
        let contact = c["contacts"][0]["id"]
            .as_str()
            .context("a contact of the company")?
            .to_string();
        let (s, v) = p
            .call(
                Method::PUT,
                &mapping,
                Some(json!({"company": company, "default_contact": contact})),
            )
            .await?;
        ensure!(s == 200, "mapping {client} with a contact: {s} {v}");
        return Ok(());
    }
    ensure!(s == 200, "mapping {client}: {s} {v}");
    Ok(())
}

/// Defaults a user would choose: the first active value of each field the PSA lists, a
/// child only under its chosen parent.
async fn choose_defaults(p: &Product, kind: PsaKind, conn: i64) -> Result<Value> {
    let base = format!("/api/v1/partners/{}/connections/{conn}", p.partner_id());
    let (s, lists) = p.call(Method::GET, &format!("{base}/lists"), None).await?;
    ensure!(s == 200, "lists: {s} {lists}");
    let mut chosen = Map::new();
    for f in kind.ticket_fields() {
        if f.name == "close_status" {
            continue;
        }
        let parent = match f.parent {
            Some(parent) => match chosen.get(parent).and_then(Value::as_str) {
                Some(v) => Some(v.to_string()),
                None => continue,
            },
            None => None,
        };
        let pick = lists["lists"][f.list]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["active"] != false)
            .find(|i| parent.is_none() || i["parent"].as_str() == parent.as_deref())
            .and_then(|i| i["id"].as_str());
        if let Some(id) = pick {
            chosen.insert(f.name.to_string(), json!(id));
        }
    }
    Ok(Value::Object(chosen))
}

/// A connection of each of the four PSAs is created through the API with exactly the
/// credentials its PSA gives, and an event is delivered through each.
async fn every_psa_can_be_connected_through_the_api(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "every_psa_connected_through_the_api").await? else {
        return Ok(());
    };
    let partner = p.partner_id();
    for kind in PsaKind::ALL {
        let credentials = credentials_of(&p, kind)?;
        let (s, conn) = p
            .call(
                Method::POST,
                &format!("/api/v1/partners/{partner}/connections"),
                Some(
                    json!({"kind": kind.as_str(), "name": format!("New {}", kind.display_name()),
                            "credentials": credentials}),
                ),
            )
            .await?;
        ensure!(s == 201, "{kind:?}: {s} {conn}");
        let id = conn["id"].as_i64().context("id")?;

        // Leaving out any required credential names it.
        for missing in form_fields(kind) {
            let mut less = credentials.clone();
            less.remove(*missing);
            let (s, v) = p
                .call(
                    Method::POST,
                    &format!("/api/v1/partners/{partner}/connections"),
                    Some(json!({"kind": kind.as_str(), "name": "Incomplete", "credentials": less})),
                )
                .await?;
            let optional = matches!(*missing, "auth_url" | "tenant" if kind == PsaKind::HaloPsa)
                || (kind == PsaKind::Autotask && *missing == "zone_discovery_url");
            if !optional {
                ensure!(
                    s == 422
                        && v["errors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|e| e["path"] == format!("credentials.{missing}")),
                    "{kind:?} without {missing}: {s} {v}"
                );
            } else if s == 201 {
                let (s, _) = p
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/partners/{partner}/connections/{}", v["id"]),
                        None,
                    )
                    .await?;
                ensure!(s == 204);
            }
        }

        let defaults = choose_defaults(&p, kind, id).await?;
        let (s, v) = p
            .call(
                Method::PATCH,
                &format!("/api/v1/partners/{partner}/connections/{id}"),
                Some(json!({"defaults": defaults})),
            )
            .await?;
        ensure!(s == 200, "{kind:?} defaults {defaults}: {s} {v}");
        let client = format!("new-{}", kind.as_str().replace('_', "-"));
        map_client(&p, id, &client).await?;
        let e = fire(&p, &format!("through-{}", kind.as_str()), &client).await?;
        let d = delivery(&e);
        ensure!(
            d["status"] == "delivered" && d["psa_action"] == "created" && d["connection"] == id,
            "{kind:?}: {e}"
        );
    }
    p.cleanup().await;
    Ok(())
}
on_both!(every_psa_can_be_connected_through_the_api);

/// The product on `db` with the Autotask simulator, and the path of its demo connection.
async fn start_with_demo_connection(db: Db, test: &str) -> Result<Option<(Sim, Product, String)>> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, test).await? else {
        return Ok(None);
    };
    let path = format!(
        "/api/v1/partners/{}/connections/{}",
        p.partner_id(),
        p.connection()
    );
    Ok(Some((sim, p, path)))
}

/// A PATCH the PSA refuses changes nothing: not the name sent with it, not the secret.
async fn a_refused_change_stores_nothing(db: Db) -> Result<()> {
    let Some((_sim, p, path)) =
        start_with_demo_connection(db, "a_refused_change_stores_nothing").await?
    else {
        return Ok(());
    };
    let (_, before) = p.call(Method::GET, &path, None).await?;
    let (s, v) = p
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "Renamed", "credentials": {"secret": "not-the-secret"}})),
        )
        .await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "credentials.secret",
        "{s} {v}"
    );
    let (_, after) = p.call(Method::GET, &path, None).await?;
    ensure!(
        after["name"] == before["name"] && after["updated_at"] == before["updated_at"],
        "nothing changed: {before} → {after}"
    );
    // The stored secret is still the good one: events are delivered.
    let e = fire(&p, "after-refused", "client-001").await?;
    ensure!(delivery(&e)["status"] == "delivered", "{e}");
    // The audit log has no update.
    let (_, log) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/audit", p.partner_id()),
            None,
        )
        .await?;
    ensure!(
        !log["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "connection.update"),
        "{log}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(a_refused_change_stores_nothing);

/// Pointing a connection somewhere else without giving its secrets again is refused before
/// any request leaves: the stored secrets never reach the new host.
async fn moving_a_connection_needs_its_secrets_again(db: Db) -> Result<()> {
    let Some((_sim, p, path)) =
        start_with_demo_connection(db, "moving_a_connection_needs_secrets").await?
    else {
        return Ok(());
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let elsewhere = format!("http://{}", listener.local_addr()?);
    for body in [
        json!({"credentials": {"zone_discovery_url": elsewhere}}),
        json!({"settings": {"zone_discovery_url": elsewhere}}),
    ] {
        let (s, v) = p.call(Method::PATCH, &path, Some(body.clone())).await?;
        let paths: Vec<&str> = v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["path"].as_str())
            .collect();
        ensure!(
            s == 422
                && paths.contains(&"credentials.secret")
                && paths.contains(&"credentials.integration_code"),
            "{body}: {s} {v}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        listener.accept().is_err(),
        "no request reached the other host"
    );
    let e = fire(&p, "after-move-refused", "client-001").await?;
    ensure!(delivery(&e)["status"] == "delivered", "{e}");
    p.cleanup().await;
    Ok(())
}
on_both!(moving_a_connection_needs_its_secrets_again);

/// A `defaults` PATCH is a JSON merge patch: it changes what it names and keeps the rest; a
/// field the PSA needs cannot be removed, and the error names it.
async fn a_defaults_patch_merges(db: Db) -> Result<()> {
    let Some((_sim, p, path)) = start_with_demo_connection(db, "a_defaults_patch_merges").await?
    else {
        return Ok(());
    };
    let (_, before) = p.call(Method::GET, &path, None).await?;
    let stored = before["defaults"].clone();
    ensure!(
        stored["status"].is_string() && stored["queue"].is_string(),
        "{before}"
    );
    let (_, lists) = p.call(Method::GET, &format!("{path}/lists"), None).await?;
    let other_priority = lists["lists"]["priority"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["active"] != false)
        .filter_map(|i| i["id"].as_str())
        .find(|id| stored["priority"] != *id)
        .context("a second priority")?
        .to_string();
    let (s, v) = p
        .call(
            Method::PATCH,
            &path,
            Some(json!({"defaults": {"priority": other_priority}})),
        )
        .await?;
    let mut want = stored.clone();
    want["priority"] = json!(other_priority);
    ensure!(s == 200 && v["defaults"] == want, "{s} {v}");

    let (s, v) = p
        .call(
            Method::PATCH,
            &path,
            Some(json!({"defaults": {"status": null}})),
        )
        .await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "defaults.status",
        "{s} {v}"
    );
    let (_, after) = p.call(Method::GET, &path, None).await?;
    ensure!(after["defaults"] == want, "{after}");
    p.cleanup().await;
    Ok(())
}
on_both!(a_defaults_patch_merges);
