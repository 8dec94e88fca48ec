//! Company import as an admin does it: look at the PSA's companies, preview an import, import,
//! import again, and send an event for an imported client.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use psabridge_core::settings::PsaKind;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim, delivery, ticket_id};
use crate::on_every_psa;

const WAIT: Duration = Duration::from_secs(30);

/// Every company the PSA lists, through our API, page by page.
async fn all_companies(p: &Product) -> Result<Vec<Value>> {
    let base = format!(
        "/api/v1/partners/{}/connections/{}/companies",
        p.partner_id(),
        p.connection()
    );
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{base}?cursor={c}"),
            None => base.clone(),
        };
        let (s, v) = p.call(Method::GET, &url, None).await?;
        ensure!(s == 200, "companies: {s} {v}");
        out.extend(v["companies"].as_array().cloned().unwrap_or_default());
        match v["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return Ok(out),
        }
    }
    anyhow::bail!("the company list did not end")
}

async fn import(p: &Product, body: Value) -> Result<(u16, Value)> {
    p.call(
        Method::POST,
        &format!(
            "/api/v1/partners/{}/connections/{}/import",
            p.partner_id(),
            p.connection()
        ),
        Some(body),
    )
    .await
}

async fn client_ids(p: &Product) -> Result<BTreeSet<String>> {
    let (s, v) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/clients", p.partner_id()),
            None,
        )
        .await?;
    ensure!(s == 200, "clients: {s} {v}");
    Ok(v["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect())
}

fn lines_of<'a>(report: &'a Value, action: &str) -> Vec<&'a Value> {
    report["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["action"] == action)
        .collect()
}

async fn companies_are_imported_as_mapped_clients(kind: PsaKind, db: Db) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "companies_are_imported_as_mapped_clients").await?
    else {
        return Ok(());
    };
    let mapped_company = p
        .client_company("client-001")
        .context("client-001 is mapped")?;
    let (s, m) = p
        .call(
            Method::GET,
            &format!("/api/v1/partners/{}/mappings", p.partner_id()),
            None,
        )
        .await?;
    ensure!(s == 200, "mappings: {s} {m}");
    let mapped: BTreeSet<String> = m["mappings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["connection"] == p.connection())
        .filter_map(|m| m["company"].as_str().map(str::to_string))
        .collect();
    // Two active companies nobody mapped yet, with contacts (for a PSA that needs one).
    let mut fresh = Vec::new();
    for c in all_companies(&p).await? {
        let id = c["id"].as_str().unwrap_or_default().to_string();
        if c["active"] == true && !mapped.contains(&id) && !p.contacts(&id).await?.is_empty() {
            fresh.push(id);
        }
        if fresh.len() == 2 {
            break;
        }
    }
    ensure!(fresh.len() == 2, "two unmapped companies in the simulator");
    let mut chosen = vec![
        json!({"company": fresh[0]}),
        json!({"company": fresh[1], "client": "imported-two", "name": "Second Import"}),
        json!({"company": mapped_company}),
        json!({"company": "no-such-company-77"}),
    ];
    let before = client_ids(&p).await?;

    // The preview writes nothing.
    let (s, preview) = import(&p, json!({"companies": chosen, "dry_run": true})).await?;
    ensure!(s == 200, "preview: {s} {preview}");
    ensure!(client_ids(&p).await? == before, "a preview wrote clients");
    ensure!(
        lines_of(&preview, "kept").len() == 1
            && lines_of(&preview, "kept")[0]["client"] == "client-001",
        "the mapped company is kept as client-001: {preview}"
    );
    ensure!(
        lines_of(&preview, "skipped")
            .iter()
            .any(|l| l["company"] == "no-such-company-77"),
        "an unknown company is skipped: {preview}"
    );
    // A PSA whose tickets need a contact, naming no primary one, asks for it per company.
    let needs_contact: Vec<String> = lines_of(&preview, "skipped")
        .iter()
        .filter(|l| {
            l["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("default_contact")
        })
        .filter_map(|l| l["company"].as_str().map(str::to_string))
        .collect();
    if kind == PsaKind::KaseyaBms {
        ensure!(needs_contact.len() == 2, "BMS needs contacts: {preview}");
    }
    for (i, company) in fresh.iter().enumerate() {
        if needs_contact.contains(company) {
            let contact = p.contacts(company).await?[0]["id"].clone();
            chosen[i]["default_contact"] = contact;
        }
    }

    let (s, done) = import(&p, json!({"companies": chosen})).await?;
    ensure!(s == 200, "import: {s} {done}");
    ensure!(done["created"] == 2 && done["kept"] == 1, "{done}");
    let first_client = format!("{}-{}", p.connection(), fresh[0].replace('/', "."));
    let created: BTreeSet<&str> = lines_of(&done, "create")
        .iter()
        .filter_map(|l| l["client"].as_str())
        .collect();
    ensure!(
        created == BTreeSet::from([first_client.as_str(), "imported-two"]),
        "{done}"
    );
    let after = client_ids(&p).await?;
    ensure!(
        after.contains(&first_client) && after.contains("imported-two"),
        "{after:?}"
    );

    // Again: nothing new.
    let (s, again) = import(&p, json!({"companies": chosen})).await?;
    ensure!(s == 200, "{again}");
    ensure!(again["created"] == 0 && again["kept"] == 3, "{again}");
    ensure!(
        client_ids(&p).await? == after,
        "a re-import changed the clients"
    );

    // An event for an imported client becomes a ticket in its company.
    let (s, b) = p
        .post_events(&json!({"id": "imp-1", "client": "imported-two",
                             "type": "saas.too_many_downloads", "severity": "high",
                             "details": "seen by the import test"}))
        .await?;
    ensure!(s == 202, "{s} {b}");
    let e = &p.wait_done(&["imp-1".into()], WAIT).await?[0];
    ensure!(delivery(e)["status"] == "delivered", "{e}");
    let t = sim.ticket(&ticket_id(e)).await?;
    ensure!(t["company_id"] == fresh[1].as_str(), "ticket company: {t}");

    // Bad input names the field.
    let (s, v) = import(&p, json!({"companies": []})).await?;
    ensure!(s == 422 && v["errors"][0]["path"] == "companies", "{s} {v}");
    let (s, v) = import(&p, json!({"companies": [{"company": ""}]})).await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "companies[0].company",
        "{s} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_every_psa!(companies_are_imported_as_mapped_clients);
