//! The dashboard: what was delivered in the last 30 days, what is waiting and for how long,
//! and how much of each PSA connection's hourly request budget is in use. Each picture links to
//! the delivery log filtered to what it shows.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::charts::{self, Day};
use super::{AtPartner, Frame, age, ops_error, page_error, render};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/p/{p}", get(dashboard))
}

const DAY_MS: i64 = 86_400_000;
const WINDOW_DAYS: i64 = 30;

struct Budget {
    connection: String,
    used: u64,
    limit: u32,
    percent: u64,
    paused: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    frame: Frame,
    activity_svg: String,
    days: Vec<Day>,
    tickets_total: i64,
    notes_total: i64,
    states_svg: String,
    states: Vec<(String, i64)>,
    waiting: i64,
    oldest_waiting: Option<String>,
    dead: i64,
    budgets: Vec<Budget>,
}

async fn dashboard(State(s): State<AppState>, at: AtPartner) -> Response {
    let now = chrono::Utc::now().timestamp_millis();
    let today = now.div_euclid(DAY_MS);
    let first = today - (WINDOW_DAYS - 1);
    let overview = match s.store.delivery_overview(&at.partner, first * DAY_MS).await {
        Ok(o) => o,
        Err(e) => return page_error(e.into()),
    };
    let mut days: Vec<Day> = (first..=today)
        .map(|d| Day {
            label: chrono::DateTime::from_timestamp_millis(d * DAY_MS)
                .map(|t| t.format("%m-%d").to_string())
                .unwrap_or_default(),
            tickets: 0,
            notes: 0,
        })
        .collect();
    for (day, what, n) in &overview.delivered_per_day {
        let Some(d) = days.get_mut((day - first) as usize) else {
            continue;
        };
        match what.as_str() {
            "created" => d.tickets += n,
            "noted" | "closed" | "reopened" => d.notes += n,
            _ => {}
        }
    }
    let count = |state: &str| {
        overview
            .by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    let states: Vec<(String, i64)> = [
        "pending",
        "in_flight",
        "retrying",
        "delivered",
        "dead",
        "expired",
    ]
    .iter()
    .map(|st| (st.to_string(), count(st)))
    .collect();
    let connections = match s.ops.connections(&at.acting(), &at.partner).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let live = s.engine.connectors.budgets();
    let budgets = connections
        .iter()
        .map(|c| {
            let (used, limit) = live
                .iter()
                .find(|(id, ..)| *id == c.id)
                .map_or((0, 0), |(_, used, limit, _)| (*used, *limit));
            Budget {
                connection: format!("{} ({})", c.name, c.kind),
                used,
                limit,
                percent: if limit == 0 {
                    0
                } else {
                    used * 100 / u64::from(limit)
                },
                paused: c.paused_for_secs.map(|s| age(s as i64 * 1000)),
            }
        })
        .collect();
    let page = DashboardPage {
        frame: at.frame(&s, "dashboard", "Dashboard", None).await,
        activity_svg: charts::activity(&days),
        tickets_total: days.iter().map(|d| d.tickets).sum(),
        notes_total: days.iter().map(|d| d.notes).sum(),
        days,
        states_svg: charts::bars(&states),
        waiting: count("pending") + count("retrying"),
        oldest_waiting: overview.oldest_waiting_at.map(|t| age(now - t)),
        dead: count("dead"),
        states,
        budgets,
    };
    render(&page)
}
