//! The audit log: who changed what and when, with filters on each, newest first.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use psabridge_store::audit::AuditFilter;
use serde::Deserialize;

use super::{AtPartner, Frame, page_error, render, url_encode, when};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/p/{p}/audit", get(page))
}

const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    who: String,
    #[serde(default)]
    what: String,
    /// `YYYY-MM-DD`, UTC.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    change: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/audit.html")]
struct AuditPage {
    frame: Frame,
    f: Filters,
    rows: Vec<Row>,
    next: Option<String>,
    error: Option<(String, String)>,
}

/// Midnight UTC of a `YYYY-MM-DD` date; `Err` names the field.
fn day(field: &str, s: &str) -> Result<Option<i64>, (String, String)> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| {
            Some(
                d.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp_millis(),
            )
        })
        .map_err(|_| {
            (
                field.to_string(),
                format!("'{s}' is not a date (YYYY-MM-DD)"),
            )
        })
}

async fn page(State(s): State<AppState>, at: AtPartner, Query(f): Query<Filters>) -> Response {
    let frame = at.frame(&s, "audit", "Audit log", None).await;
    let range = day("from", &f.from).and_then(|from| {
        // "to" includes the whole day.
        day("to", &f.to).map(|to| (from, to.map(|t| t + 86_400_000)))
    });
    let (since, until) = match range {
        Ok(r) => r,
        Err(e) => {
            return render(&AuditPage {
                frame,
                f,
                rows: Vec::new(),
                next: None,
                error: Some(e),
            });
        }
    };
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        before_id: f.before.filter(|b| *b > 0),
        limit: PAGE,
        actor: some(&f.who),
        action: some(&f.what),
        since,
        until,
    };
    let entries = match s.store.audit_log_filtered(&at.partner, &filter).await {
        Ok(e) => e,
        Err(e) => return page_error(e.into()),
    };
    let next = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|id| {
            format!(
                "/p/{}/audit?who={}&what={}&from={}&to={}&before={id}",
                url_encode(&at.partner),
                url_encode(&f.who),
                url_encode(&f.what),
                url_encode(&f.from),
                url_encode(&f.to)
            )
        });
    let rows = entries
        .iter()
        .map(|e| Row {
            at: when(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            change: match (&e.before, &e.after) {
                (None, None) => None,
                (b, a) => Some(format!(
                    "before: {}\nafter: {}",
                    b.as_ref().map_or("—".into(), |v| v.to_string()),
                    a.as_ref().map_or("—".into(), |v| v.to_string())
                )),
            },
        })
        .collect();
    render(&AuditPage {
        frame,
        f,
        rows,
        next,
        error: None,
    })
}
