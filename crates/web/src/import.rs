//! Importing a PSA's companies as clients, already mapped.
//!
//! `POST /api/v1/partners/{p}/connections/{id}/import` with the companies the admin chose (from
//! `GET …/connections/{id}/companies`, which searches and pages the PSA's list):
//!
//! ```json
//! {"companies": [{"company": "29684101"}, {"company": "12/3", "client": "leeds", "name": "Acme Leeds"}],
//!  "dry_run": true}
//! ```
//!
//! The answer is a report, one line per distinct company: `create` (the client id and name it
//! gets), `kept` (already mapped on this connection: importing again changes nothing) or
//! `skipped` with the reason. `dry_run` answers the same report and writes nothing, so a preview
//! and the import agree: both come from `core::import::plan`. The PSA is read in as many pages as
//! its company list takes (HaloPSA's sites are companies of their own, `12/3`, named
//! "Client / Site"); a PSA whose tickets need a contact and that names no primary contact needs a
//! `default_contact` per company.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use psabridge_core::event::FieldError;
use psabridge_core::import::{self, Choice, Line, PsaCompany};
use psabridge_core::settings::Refire;
use psabridge_psa::{Connector, PsaError};
use psabridge_store::config::MappingRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::audit;
use crate::auth::Caller;
use crate::input::{body, now};
use crate::operations::psa_problem;
use crate::problem::Problem;

/// The most companies one import takes.
const MAX_COMPANIES: usize = 1000;
/// The most pages of the PSA's company list read for one import.
const MAX_PAGES: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/partners/{p}/connections/{id}/import",
        post(import_companies),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    companies: Vec<ChosenCompany>,
    #[serde(default)]
    dry_run: bool,
}

/// One company the admin chose, with the client id, name and default contact it should get
/// (the PSA's name and a slug of it when not given).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChosenCompany {
    pub company: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub default_contact: Option<String>,
}

async fn import_companies(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, conn_id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    let b: ImportBody = body(&bytes)?;
    run(&s, &caller, &p, conn_id, b.companies, b.dry_run)
        .await
        .map(Json)
}

/// Import (or, with `dry_run`, preview) the chosen companies of a connection as mapped
/// clients; the report. The API's `POST …/import` and the portal's import screen call it.
pub(crate) async fn run(
    s: &AppState,
    caller: &Caller,
    p: &str,
    conn_id: i64,
    companies: Vec<ChosenCompany>,
    dry_run: bool,
) -> Result<Value, Problem> {
    caller.require_partner(p)?;
    let b = ImportBody { companies, dry_run };
    check_body(&b)?;
    let conn = s.store.connection(p, conn_id).await?;
    let connector = s
        .engine
        .connectors
        .get(&s.store, &conn)
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The connection is misconfigured",
            )
            .detail(e.to_string())
        })?;

    let psa = psa_companies(connector.as_ref()).await?;
    let mapped: BTreeMap<String, String> = s
        .store
        .mappings(p)
        .await?
        .into_iter()
        .filter(|m| m.connection_id == conn_id)
        .map(|m| (m.company_id, m.client_id))
        .collect();
    let choices: Vec<Choice> = b
        .companies
        .iter()
        .map(|c| Choice {
            company: c.company.trim().to_string(),
            client: c.client.as_deref().map(str::trim).map(str::to_string),
            name: c.name.clone(),
        })
        .collect();
    let contacts: BTreeMap<&str, &str> = b
        .companies
        .iter()
        .filter_map(|c| Some((c.company.trim(), c.default_contact.as_deref()?.trim())))
        .collect();

    let mut lines = Vec::new();
    for line in import::plan(conn_id, &choices, &psa, &mapped) {
        let line = match line {
            Line::Create {
                company,
                client,
                name,
            } => match contact_for(connector.as_ref(), &company, contacts.get(company.as_str()))
                .await?
            {
                Ok(contact) => {
                    if !b.dry_run {
                        let row = MappingRow {
                            connection_id: conn_id,
                            client_id: client.clone(),
                            company_id: company.clone(),
                            default_contact_id: contact,
                            create_tickets: true,
                            mapped_at: now(),
                            event_set_id: None,
                            template_id: None,
                            contract_id: None,
                            refire: Refire::NewTicket,
                        };
                        s.store.put_mapping(p, &row, Some(&name)).await?;
                    }
                    Line::Create {
                        company,
                        client,
                        name,
                    }
                }
                Err(reason) => Line::Skipped { company, reason },
            },
            other => other,
        };
        lines.push(line);
    }

    let count = |f: fn(&Line) -> bool| lines.iter().filter(|l| f(l)).count();
    let report = json!({
        "dry_run": b.dry_run,
        "created": count(|l| matches!(l, Line::Create { .. })),
        "kept": count(|l| matches!(l, Line::Kept { .. })),
        "skipped": count(|l| matches!(l, Line::Skipped { .. })),
        "lines": lines,
    });
    if !b.dry_run && report["created"] != 0 {
        audit(
            s,
            caller,
            Some(p),
            "clients.import",
            &format!("connection:{conn_id}"),
            None,
            Some(&report),
        )
        .await;
    }
    Ok(report)
}

/// Refuse a body that names no company, too many, or an empty company id, naming the field.
fn check_body(b: &ImportBody) -> Result<(), Problem> {
    if b.companies.is_empty() {
        return Err(Problem::invalid(vec![FieldError::new(
            "companies",
            "must name at least one company",
        )]));
    }
    if b.companies.len() > MAX_COMPANIES {
        return Err(Problem::invalid(vec![FieldError::new(
            "companies",
            format!(
                "{} companies: one import takes at most {MAX_COMPANIES}",
                b.companies.len()
            ),
        )]));
    }
    let errors: Vec<FieldError> = b
        .companies
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let mut e = Vec::new();
            if c.company.trim().is_empty() || c.company.len() > 100 {
                e.push(FieldError::new(
                    format!("companies[{i}].company"),
                    "must be the PSA's id of a company (1 to 100 characters)",
                ));
            }
            if c.name
                .as_ref()
                .is_some_and(|n| n.chars().count() > import::MAX_CLIENT_NAME)
            {
                e.push(FieldError::new(
                    format!("companies[{i}].name"),
                    format!("is longer than {} characters", import::MAX_CLIENT_NAME),
                ));
            }
            e
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(errors))
    }
}

/// Every company the PSA lists, by id, read page by page.
async fn psa_companies(c: &dyn Connector) -> Result<BTreeMap<String, PsaCompany>, Problem> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = BTreeSet::new();
    for _ in 0..MAX_PAGES {
        let page = c
            .companies(None, cursor.as_deref())
            .await
            .map_err(psa_problem)?;
        for co in page.companies {
            out.insert(
                co.id,
                PsaCompany {
                    name: co.name,
                    active: co.active,
                },
            );
        }
        match page.next {
            // A PSA answering the same cursor twice would loop: stop there.
            Some(next) if seen_cursors.insert(next.clone()) => cursor = Some(next),
            _ => return Ok(out),
        }
    }
    Err(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "The PSA lists too many companies",
    )
    .detail(format!(
        "its company list is longer than {MAX_PAGES} pages; import from a search instead"
    )))
}

/// The default contact a new mapping gets: the one the admin named (checked against the
/// company's contacts), else none — unless the PSA's tickets need a contact and it names no
/// primary contact of the company, which skips the company (`Err` with the reason).
async fn contact_for(
    c: &dyn Connector,
    company: &str,
    named: Option<&&str>,
) -> Result<Result<Option<String>, String>, Problem> {
    if let Some(contact) = named.filter(|n| !n.is_empty()) {
        let contacts = match c.contacts(company).await {
            Ok(list) => list,
            Err(PsaError::Invalid(m) | PsaError::NotFound(m)) => return Ok(Err(m)),
            Err(e) => return Err(psa_problem(e)),
        };
        return Ok(if contacts.iter().any(|k| k.id == *contact) {
            Ok(Some(contact.to_string()))
        } else {
            Err(format!(
                "'{contact}' is not an active contact of company '{company}'"
            ))
        });
    }
    if !c.tickets_need_contact() {
        return Ok(Ok(None));
    }
    match c.primary_contact(company).await.map_err(psa_problem)? {
        Some(_) => Ok(Ok(None)),
        None => Ok(Err(
            "this PSA refuses tickets without a contact and names no primary contact of this company: give its default_contact"
                .into(),
        )),
    }
}
