//! The delivery log: filters (status, client, event type, channel, time), each delivery's
//! attempts with what the PSA answered, "retry" for one and "retry all" for what the filters
//! show, and the replay-window notice for deliveries that expired.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{AtPartner, Frame, page_error, render, see_other, url_encode, when};
use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::config_api::{DeliveryQuery, deliveries, retry};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/deliveries", get(log))
        .route("/p/{p}/deliveries/retry", post(retry_filtered))
        .route("/p/{p}/deliveries/{id}/retry", post(retry_one))
}

const PAGE: i64 = 50;

/// The filters as the form sends them (empty fields are "any").
#[derive(Deserialize, Default, Clone)]
struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    channel: String,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` input), UTC.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
    /// What the last retry did (after post/redirect/get).
    retried: Option<u64>,
}

impl Filters {
    fn query(&self, limit: i64) -> DeliveryQuery {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let time = |s: &str| {
            // A `datetime-local` value (`2026-12-05T10:00`) is read as UTC; anything else is
            // passed on as typed, to be checked (and named) like the API's `since`/`until`.
            some(s).map(|t| {
                if t.len() == 16 && t.as_bytes()[10] == b'T' {
                    format!("{t}:00Z")
                } else {
                    t
                }
            })
        };
        DeliveryQuery {
            status: some(&self.status),
            client: some(&self.client),
            event_type: some(&self.event_type),
            channel: some(&self.channel),
            since: time(&self.since),
            until: time(&self.until),
            before: self.before,
            limit: Some(limit),
            connection: None,
        }
    }

    /// The filters as a query string (without the cursor).
    fn encoded(&self) -> String {
        format!(
            "status={}&client={}&event_type={}&channel={}&since={}&until={}",
            url_encode(&self.status),
            url_encode(&self.client),
            url_encode(&self.event_type),
            url_encode(&self.channel),
            url_encode(&self.since),
            url_encode(&self.until)
        )
    }
}

struct AttemptRow {
    attempt: i64,
    at: String,
    outcome: String,
    psa_calls: i64,
    summary: String,
    error: Option<String>,
}

struct Row {
    id: i64,
    event_id: String,
    event_type: String,
    client: String,
    channel: String,
    status: String,
    ticket: Option<String>,
    action: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    created_at: String,
    history: Vec<AttemptRow>,
    retryable: bool,
}

#[derive(Template)]
#[template(path = "portal/deliveries.html")]
struct LogPage {
    frame: Frame,
    f: Filters,
    rows: Vec<Row>,
    event_types: Vec<(String, String)>,
    next: Option<String>,
    /// The filter's error, next to the field it names.
    error: Option<(String, String)>,
    any_expired: bool,
    retry_all: bool,
}

async fn log(State(s): State<AppState>, at: AtPartner, Query(f): Query<Filters>) -> Response {
    let catalog = s.event_catalog().await;
    let event_types = catalog
        .iter()
        .map(|t| (t.key.clone(), t.name.clone()))
        .collect();
    let notice = f.retried.map(|n| {
        format!(
            "{n} deliver{} will be tried again.",
            if n == 1 { "y" } else { "ies" }
        )
    });
    let frame = at.frame(&s, "deliveries", "Delivery log", notice).await;
    let (list, next, error) = match deliveries(&s, &at.partner, f.query(PAGE)).await {
        Ok((list, next)) => (list, next, None),
        Err(p) if !p.errors.is_empty() => (
            Vec::new(),
            None,
            p.errors
                .first()
                .map(|e| (e.path.clone(), e.problem.clone())),
        ),
        Err(p) => return page_error(p),
    };
    let rows: Vec<Row> = list
        .into_iter()
        .map(|d| Row {
            retryable: matches!(d.state.as_str(), "dead" | "expired" | "retrying"),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            client: d.client_id,
            channel: d.channel,
            status: d.state,
            ticket: d
                .ticket_number
                .clone()
                .or(d.ticket_id.clone().map(|id| format!("id {id}"))),
            action: d.psa_action,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: when(d.created_at),
            history: d
                .history
                .iter()
                .map(|a| AttemptRow {
                    attempt: a.attempt,
                    at: when(a.started_at),
                    outcome: a.outcome.clone(),
                    psa_calls: a.psa_calls,
                    summary: a.summary.clone().unwrap_or_default(),
                    error: a.error.clone(),
                })
                .collect(),
        })
        .collect();
    let next = next.map(|n| {
        format!(
            "/p/{}/deliveries?{}&before={n}",
            url_encode(&at.partner),
            f.encoded()
        )
    });
    render(&LogPage {
        any_expired: rows.iter().any(|r| r.status == "expired"),
        retry_all: frame.can.operate && rows.iter().any(|r| r.retryable),
        frame,
        f,
        rows,
        event_types,
        next,
        error,
    })
}

fn caller_of(at: &AtPartner) -> Caller {
    Caller(Principal::Partner(at.partner.clone()), at.user.actor())
}

async fn retry_one(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(f): Form<Filters>,
) -> Response {
    match retry(&s, &caller_of(&at), &at.partner, &[id]).await {
        Ok(n) => back(&at, &f, n),
        Err(p) => page_error(p),
    }
}

/// Retry every retryable delivery the filters show (up to 1,000 at a time).
async fn retry_filtered(
    State(s): State<AppState>,
    at: AtPartner,
    Form(f): Form<Filters>,
) -> Response {
    let mut query = f.query(1000);
    query.before = None;
    let ids: Vec<i64> = match deliveries(&s, &at.partner, query).await {
        Ok((list, _)) => list
            .iter()
            .filter(|d| matches!(d.state.as_str(), "dead" | "expired" | "retrying"))
            .map(|d| d.id)
            .collect(),
        Err(p) => return page_error(p),
    };
    if ids.is_empty() {
        return back(&at, &f, 0);
    }
    match retry(&s, &caller_of(&at), &at.partner, &ids).await {
        Ok(n) => back(&at, &f, n),
        Err(p) => page_error(p),
    }
}

fn back(at: &AtPartner, f: &Filters, n: u64) -> Response {
    see_other(&format!(
        "/p/{}/deliveries?{}&retried={n}",
        url_encode(&at.partner),
        f.encoded()
    ))
}
