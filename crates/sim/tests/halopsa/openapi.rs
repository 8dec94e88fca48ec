//! What the simulator serves, checked against Halo's OpenAPI document.
//!
//! `tests/fixtures/halopsa-openapi-subset.json` is the part of the vendor's document for the
//! operations the simulator serves, made by `tests/fixtures/extract_openapi.py`. Halo's
//! document declares no answer schemas; a resource's record is the model its POST takes
//! (`Faults` for Tickets, `Area` for Client…), so every record the simulator answers must use
//! only that model's properties, with their JSON types. The list wrappers (`record_count`, the
//! plural key, `page_no`, `page_size`) come from the public clients, not the document.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, start};

#[path = "../fixtures/openapi_check.rs"]
mod check;
use check::{Doc, Names, without};

fn doc() -> Result<Doc> {
    Doc::load(
        include_str!("../fixtures/halopsa-openapi-subset.json"),
        Names::Exact,
    )
}

/// Each resource, its model, and the key of its list wrapper (None: a bare array).
const RESOURCES: [(&str, &str, Option<&str>); 14] = [
    ("Tickets", "Faults", Some("tickets")),
    ("Actions", "Actions", Some("actions")),
    ("Client", "Area", Some("clients")),
    ("Site", "Site", Some("sites")),
    ("Users", "Users", Some("users")),
    ("Agent", "Uname", None),
    ("Team", "SectionDetail", None),
    ("Status", "TStatus", None),
    ("Priority", "Policy", None),
    ("SLA", "SlaHead", None),
    ("TicketType", "RequestType", None),
    ("Category", "CategoryDetail", None),
    ("Lookup", "Lookup", None),
    ("ClientContract", "ContractHeader", Some("contracts")),
];

/// The document requires nothing of `Faults` and `Actions` (it lists no required properties
/// at all); what the simulator requires beyond it, and why.
const REQUIRED_BEYOND_THE_DOCUMENT: [(&str, &str, &str); 3] = [
    (
        "Faults",
        "summary",
        "the API itself needs the summary (reference notes §1.4)",
    ),
    (
        "Faults",
        "client_id",
        "the demo tenant makes the client mandatory, as tenants do for their ticket types \
         (notes §1.4: mandatory fields are per tenant) [?]",
    ),
    (
        "Actions",
        "ticket_id",
        "an action is a ticket's (notes §1.4: actions are listed by ticket_id)",
    ),
];

/// Properties Halo answers that the write models lack (the document has no answer models).
const ANSWER_ONLY: [(&str, &str, &str); 2] = [
    (
        "Actions",
        "who",
        "the acting agent's name: public Halo clients read `who` off GET /api/Actions answers",
    ),
    (
        "RequestType",
        "inactive",
        "GET /TicketType takes `showinactive`, so ticket types can be inactive, but the model \
         names no flag for it; the simulator spells it as Client, Site and Users do [?]",
    ),
];

/// `v` (a record of `model`, or an array of them) without its answer-only properties.
fn answer_of(model: &str, v: &Value) -> Value {
    let mut v = v.clone();
    let strip = |r: &mut Value| {
        for (m, field, _why) in ANSWER_ONLY {
            if m == model {
                *r = without(r, field);
            }
        }
    };
    match v.as_array_mut() {
        Some(items) => items.iter_mut().for_each(strip),
        None => strip(&mut v),
    }
    v
}

struct Run<'a> {
    t: &'a T,
    doc: Doc,
    called: BTreeSet<String>,
}

impl Run<'_> {
    /// GET `path` as `op`, which the document must describe.
    async fn get(&mut self, op: &str, path: &str) -> Result<Value> {
        // No answer schema: the operation must exist; the caller checks the model.
        ensure!(self.doc.operations().iter().any(|o| o == op), "no {op}");
        let v = self.t.get(path).await?;
        self.called.insert(op.to_string());
        Ok(v)
    }
}

#[tokio::test]
async fn every_served_operation_is_documented_and_answers_its_model() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut r = Run {
        t: &t,
        doc: doc()?,
        called: BTreeSet::new(),
    };

    // Writes first, so that the reads see records the API made.
    let ticket = json!([{"summary": "Multiple MFA failures", "details": "…", "client_id": 12,
        "site_id": 4, "user_id": 9, "tickettype_id": 5, "status_id": 1, "priority_id": 2,
        "sla_id": 1, "team": "Security Operations", "agent_id": 6, "category_1": "Security",
        "urgency": 1, "impact": 3, "dateoccurred": "2026-11-22T10:00:00Z",
        "third_party_id_string": "ALERT-123", "customfields": [], "dont_do_rules": false}]);
    r.doc
        .conforms(&r.doc.request("POST /Tickets")?, &ticket, "our ticket")?;
    let (s, v) = t.call(Method::POST, "Tickets", Some(ticket)).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    r.doc
        .conforms(&r.doc.named("Faults")?, &v, "POST /Tickets")?;
    r.called.insert("POST /Tickets".into());
    let id = v["id"].as_i64().unwrap_or_default();

    let action = json!([{"ticket_id": id, "note": "New alert", "outcome": "Private Note",
        "hiddenfromuser": true, "sendemail": false, "new_status": 2}]);
    r.doc
        .conforms(&r.doc.request("POST /Actions")?, &action, "our action")?;
    let (s, v) = t.call(Method::POST, "Actions", Some(action)).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    r.doc.conforms(
        &r.doc.named("Actions")?,
        &answer_of("Actions", &v),
        "POST /Actions",
    )?;
    r.called.insert("POST /Actions".into());

    for (resource, name, key) in RESOURCES {
        let model = r.doc.named(name)?;
        let list = r
            .get(
                &format!("GET /{resource}"),
                &format!("{resource}?pageinate=true&page_size=50&page_no=1&showall=true"),
            )
            .await?;
        let items = match key {
            Some(k) => {
                ensure!(list["record_count"].is_u64(), "{resource}: {list}");
                list[k].clone()
            }
            None => list,
        };
        let items = items.as_array().cloned().unwrap_or_default();
        ensure!(!items.is_empty(), "{resource}: no records");
        for (i, item) in items.iter().enumerate() {
            r.doc.conforms(
                &model,
                &answer_of(name, item),
                &format!("GET /{resource} [{i}]"),
            )?;
        }
        // Ids are numbers, but a Priority's is its uuid.
        let first = match &items[0]["id"] {
            Value::String(uuid) => uuid.clone(),
            other => other.to_string(),
        };
        let one = r
            .get(
                &format!("GET /{resource}/{{id}}"),
                &format!("{resource}/{first}"),
            )
            .await?;
        r.doc.conforms(
            &model,
            &answer_of(name, &one),
            &format!("GET /{resource}/{{id}}"),
        )?;
    }
    let with_priorities = t.get("SLA?showpriorities=true").await?;
    r.doc.conforms(
        &json!({"type": "array", "items": r.doc.named("SlaHead")?}),
        &with_priorities,
        "GET /SLA?showpriorities=true",
    )?;
    let with_agents = t.get("Team?includeagentsforteams=true").await?;
    r.doc.conforms(
        &json!({"type": "array", "items": r.doc.named("SectionDetail")?}),
        &with_agents,
        "GET /Team?includeagentsforteams=true",
    )?;
    let me = r.get("GET /Agent/me", "Agent/me").await?;
    r.doc
        .conforms(&r.doc.named("Uname")?, &me, "GET /Agent/me")?;
    let info = t
        .http
        .get(format!("{}/api/AuthInfo", t.sim.base_url()))
        .send()
        .await?;
    ensure!(info.status() == StatusCode::OK, "{}", info.status());
    r.called.insert("GET /AuthInfo".into());
    let (s, v) = t
        .call(Method::DELETE, &format!("Tickets/{id}"), None)
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    r.called.insert("DELETE /Tickets/{id}".into());

    let all: BTreeSet<String> = r.doc.operations().into_iter().collect();
    let missed: Vec<_> = all.difference(&r.called).collect();
    ensure!(missed.is_empty(), "not exercised: {missed:?}");
    Ok(())
}

#[tokio::test]
async fn the_writes_require_what_the_document_requires_and_the_listed_exceptions() -> Result<()> {
    let doc = doc()?;
    let t = start(Config::default()).await?;
    for model in ["Faults", "Actions"] {
        ensure!(doc.required(&doc.named(model)?).is_empty(), "{model}");
    }
    // Tickets: the two exceptions are all a create needs; each missing is refused.
    let minimal = json!({"summary": "s", "client_id": 12});
    doc.conforms(&doc.named("Faults")?, &minimal, "the minimal ticket")?;
    let (s, v) = t
        .call(Method::POST, "Tickets", Some(json!([minimal.clone()])))
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let id = v["id"].as_i64().unwrap_or_default();
    for (model, field, _why) in REQUIRED_BEYOND_THE_DOCUMENT {
        let (path, body) = match model {
            "Faults" => ("Tickets", without(&minimal, field)),
            _ => ("Actions", json!({"note": "n"})),
        };
        let (s, v) = t.call(Method::POST, path, Some(json!([body]))).await?;
        ensure!(
            s == StatusCode::BAD_REQUEST,
            "{model} without {field}: {s} {v}"
        );
    }
    // Actions: the ticket alone is enough.
    let (s, v) = t
        .call(Method::POST, "Actions", Some(json!([{"ticket_id": id}])))
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    // Types: text for an id is refused like the document's integer says.
    let (s, _) = t
        .call(
            Method::POST,
            "Tickets",
            Some(json!([{"summary": "s", "client_id": {"id": 12}}])),
        )
        .await?;
    ensure!(s == StatusCode::BAD_REQUEST, "an object for client_id");
    Ok(())
}

#[test]
fn the_check_catches_wrong_names_and_types() -> Result<()> {
    let doc = doc()?;
    let faults = doc.named("Faults")?;
    ensure!(
        doc.conforms(&faults, &json!({"id": 1, "summary": "s"}), "t")
            .is_ok()
    );
    ensure!(
        doc.conforms(&faults, &json!({"Summary": "s"}), "t")
            .is_err(),
        "names are exact"
    );
    ensure!(
        doc.conforms(&faults, &json!({"team_id": 1}), "t").is_err(),
        "no team_id"
    );
    ensure!(
        doc.conforms(&faults, &json!({"client_id": "12"}), "t")
            .is_err(),
        "text id"
    );
    ensure!(
        doc.conforms(&faults, &json!({"hasbeenclosed": 0}), "t")
            .is_err(),
        "a number flag"
    );
    Ok(())
}
