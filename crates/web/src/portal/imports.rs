//! Importing a PSA's companies as clients: the PSA's companies searched and paged by the PSA,
//! ticked, previewed (what each becomes: a new client, already mapped, or skipped and why), then
//! imported, already mapped. The same function as `POST …/connections/{id}/import`
//! (`crate::import::run`), so a preview and the import agree and a second import changes
//! nothing.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value;

use super::{AtPartner, Frame, ops_error, page_error, render, url_encode};
use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::config_api::connector_of;
use crate::import::{ChosenCompany, run};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/p/{p}/connections/{id}/import", get(page).post(submit))
}

struct CompanyRow {
    id: String,
    name: String,
    active: bool,
    checked: bool,
}

/// One line of a report, in words.
struct ReportLine {
    company: String,
    outcome: &'static str,
    detail: String,
}

struct Report {
    dry_run: bool,
    created: u64,
    kept: u64,
    skipped: u64,
    lines: Vec<ReportLine>,
}

#[derive(Template)]
#[template(path = "portal/import.html")]
struct ImportPage {
    frame: Frame,
    id: i64,
    connection: String,
    search: String,
    companies: Vec<CompanyRow>,
    next: Option<String>,
    psa_error: Option<String>,
    report: Option<Report>,
    /// The companies of a preview, carried to its "Import" button.
    chosen: Vec<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    #[serde(default)]
    search: String,
    cursor: Option<String>,
}

fn report_of(v: &Value) -> Report {
    let n = |k: &str| v[k].as_u64().unwrap_or_default();
    let text = |l: &Value, k: &str| l[k].as_str().unwrap_or_default().to_string();
    Report {
        dry_run: v["dry_run"].as_bool().unwrap_or(false),
        created: n("created"),
        kept: n("kept"),
        skipped: n("skipped"),
        lines: v["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| match l["action"].as_str() {
                Some("create") => ReportLine {
                    company: text(l, "company"),
                    outcome: "new client",
                    detail: format!("{} ({})", text(l, "name"), text(l, "client")),
                },
                Some("kept") => ReportLine {
                    company: text(l, "company"),
                    outcome: "already mapped",
                    detail: format!("to client {}", text(l, "client")),
                },
                _ => ReportLine {
                    company: text(l, "company"),
                    outcome: "skipped",
                    detail: text(l, "reason"),
                },
            })
            .collect(),
    }
}

struct Shown {
    report: Option<Report>,
    chosen: Vec<String>,
    error: Option<String>,
}

async fn show(s: &AppState, at: &AtPartner, id: i64, q: PageQuery, shown: Shown) -> Response {
    let conn = match s.ops.connection(&at.acting(), &at.partner, id).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let search = q.search.trim().to_string();
    let (companies, next, psa_error) = match connector_of(s, &at.partner, id).await {
        Ok(connector) => match connector
            .companies(
                Some(search.as_str()).filter(|s| !s.is_empty()),
                q.cursor.as_deref(),
            )
            .await
        {
            Ok(page) => (
                page.companies
                    .into_iter()
                    .map(|c| CompanyRow {
                        checked: shown.chosen.contains(&c.id),
                        id: c.id,
                        name: c.name,
                        active: c.active,
                    })
                    .collect(),
                page.next.map(|n| {
                    format!(
                        "/p/{}/connections/{id}/import?search={}&cursor={}",
                        url_encode(&at.partner),
                        url_encode(&search),
                        url_encode(&n)
                    )
                }),
                None,
            ),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        },
        Err(p) => (Vec::new(), None, p.detail.clone().or(Some(p.title.clone()))),
    };
    render(&ImportPage {
        frame: at
            .frame(
                s,
                "connections",
                format!("Import clients from {}", conn.name),
                None,
            )
            .await,
        id,
        connection: conn.name.clone(),
        search,
        companies,
        next,
        psa_error,
        report: shown.report,
        chosen: shown.chosen,
        error: shown.error,
    })
}

async fn page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let shown = Shown {
        report: None,
        chosen: Vec::new(),
        error: None,
    };
    show(&s, &at, id, q, shown).await
}

/// Preview (`action=preview`) or import (`action=import`) the ticked companies.
async fn submit(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let value = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut chosen: Vec<String> = Vec::new();
    for (n, v) in &form {
        let v = v.trim();
        if n == "company" && !v.is_empty() && !chosen.iter().any(|c| c == v) {
            chosen.push(v.to_string());
        }
    }
    let q = PageQuery {
        search: value("search"),
        cursor: None,
    };
    if chosen.is_empty() {
        let shown = Shown {
            report: None,
            chosen,
            error: Some("Tick at least one company.".into()),
        };
        let mut resp = show(&s, &at, id, q, shown).await;
        *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return resp;
    }
    let dry_run = value("action") != "import";
    let companies = chosen
        .iter()
        .map(|c| ChosenCompany {
            company: c.clone(),
            ..ChosenCompany::default()
        })
        .collect();
    let caller = Caller(Principal::Partner(at.partner.clone()), at.user.actor());
    match run(&s, &caller, &at.partner, id, companies, dry_run).await {
        Ok(report) => {
            let shown = Shown {
                report: Some(report_of(&report)),
                // After an import nothing stays ticked; a preview carries its choice on.
                chosen: if dry_run { chosen } else { Vec::new() },
                error: None,
            };
            show(&s, &at, id, q, shown).await
        }
        Err(p) if p.status.as_u16() == 422 => {
            let why = p
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.problem))
                .chain(p.detail.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let shown = Shown {
                report: None,
                chosen,
                error: Some(if why.is_empty() { p.title.clone() } else { why }),
            };
            let mut resp = show(&s, &at, id, q, shown).await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
        Err(p) => page_error(p),
    }
}
