//! Usage intake and the billing calendar.
//!
//! `POST /api/v1/usage` takes one report (`{"id","client","metric","units","observed_at"}`) or
//! `{"usage": [...]}` (up to 1000). Like events, every report is judged on its own: a batch with
//! bad reports stores the good ones and answers 422 with a result per report, so the vendor
//! can resend the whole batch after fixing it (ids make the resend idempotent). 202 means the
//! reports and their periods' high-water marks are committed.
//!
//! `GET /api/v1/partners/{p}/usage?period=2026-12` lists the marks of a period (the current
//! one by default); `GET/PUT /api/v1/partners/{p}/billing-calendar` read and set the partner's
//! time zone, anchor day and nightly sync hour (`psabridge_ops::billing`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use psabridge_core::billing::BillingCalendar;
use psabridge_core::event::FieldError;
use psabridge_core::usage::{NewUsage, parse_usage};
use psabridge_ops::billing::BillingCalendarView;
use psabridge_store::ingest::Outcome;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::events::partner_of;
use crate::input::{body, split_batch};
use crate::operations::Acting;
use crate::problem::{Problem, parse_json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/usage", post(ingest_usage))
        .route("/api/v1/partners/{p}/usage", get(high_water_marks))
        .route(
            "/api/v1/partners/{p}/billing-calendar",
            get(get_billing_calendar).put(put_billing_calendar),
        )
}

async fn ingest_usage(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, Problem> {
    let now = chrono::Utc::now();
    let (items, is_batch) = split_batch(parse_json(&body)?, "usage", "usage reports")?;

    // Judge each report; group the good ones by partner, remembering their place.
    let mut verdicts: Vec<Result<(), Vec<FieldError>>> = Vec::with_capacity(items.len());
    let mut by_partner: BTreeMap<String, Vec<(usize, NewUsage)>> = BTreeMap::new();
    for (i, (path, value)) in items.iter().enumerate() {
        let verdict = match parse_usage(value, path, now) {
            Err(errors) => Err(errors),
            Ok(report) => {
                match partner_of(&state, &caller, report.partner.as_deref(), path).await? {
                    Err(e) => Err(vec![e]),
                    Ok(partner) => {
                        by_partner.entry(partner).or_default().push((i, report));
                        Ok(())
                    }
                }
            }
        };
        verdicts.push(verdict);
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    for (partner, reports) in by_partner {
        let (places, reports): (Vec<usize>, Vec<NewUsage>) = reports.into_iter().unzip();
        let done = state
            .store
            .record_usage(&partner, &reports, now.timestamp_millis())
            .await?;
        for (place, outcome) in places.into_iter().zip(done) {
            outcomes[place] = Some(outcome);
        }
    }

    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut results = Vec::with_capacity(items.len());
    let mut all_errors = Vec::new();
    for ((verdict, outcome), (_, value)) in verdicts.into_iter().zip(outcomes).zip(&items) {
        let id = value.get("id").and_then(Value::as_str);
        match (verdict, outcome) {
            (Ok(()), Some(Outcome::Accepted)) => {
                accepted += 1;
                results.push(json!({"id": id, "status": "accepted"}));
            }
            (Ok(()), _) => {
                duplicates += 1;
                results.push(json!({"id": id, "status": "duplicate"}));
            }
            (Err(errors), _) => {
                rejected += 1;
                results.push(json!({
                    "id": id,
                    "status": "rejected",
                    "errors": errors.iter().map(|e| json!({"path": e.path, "problem": e.problem})).collect::<Vec<_>>(),
                }));
                all_errors.extend(errors);
            }
        }
    }
    if rejected > 0 {
        let mut problem = Problem::invalid(all_errors);
        if is_batch {
            problem.detail = Some(format!(
                "{rejected} of {} reports were rejected; {accepted} accepted and {duplicates} duplicates were stored — see `results`",
                results.len()
            ));
            problem = problem
                .with("accepted", json!(accepted))
                .with("duplicates", json!(duplicates))
                .with("rejected", json!(rejected))
                .with("results", Value::Array(results));
        }
        return Err(problem);
    }
    let answer = if is_batch {
        json!({"accepted": accepted, "duplicates": duplicates, "results": results})
    } else {
        results.into_iter().next().unwrap_or(Value::Null)
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(Deserialize)]
struct PeriodQuery {
    period: Option<String>,
}

/// A period key is `YYYY-MM`.
fn valid_period_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        && matches!(
            &key[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

fn calendar_view(c: &BillingCalendar) -> Value {
    json!({"time_zone": c.time_zone().name(), "anchor_day": c.anchor_day()})
}

async fn high_water_marks(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let calendar = s.store.billing_calendar(&p).await?;
    let period = match q.period {
        Some(key) if valid_period_key(&key) => key,
        Some(_) => {
            return Err(Problem::invalid(vec![FieldError::new(
                "period",
                "must be a month as YYYY-MM, e.g. 2026-12",
            )]));
        }
        None => calendar.period_of(chrono::Utc::now()).key,
    };
    let marks = s.store.high_water_marks(&p, &period).await?;
    let at = |ms: i64| psabridge_store::from_millis(ms).to_rfc3339();
    Ok(Json(json!({
        "period": period,
        "calendar": calendar_view(&calendar),
        "usage": marks.iter().map(|m| json!({
            "client": m.client_id,
            "metric": m.metric,
            "units": m.units,
            "reports": m.reports,
            "period_start": at(m.period_start),
            "period_end": at(m.period_end),
            "updated_at": at(m.updated_at),
        })).collect::<Vec<_>>(),
    })))
}

async fn get_billing_calendar(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<BillingCalendarView>, Problem> {
    Ok(Json(s.ops.billing_calendar(&acting, &p).await?))
}

async fn put_billing_calendar(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Json<BillingCalendarView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(s.ops.put_billing_calendar(&acting, &p, req).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_keys() {
        for good in ["2026-01", "2026-12", "1999-09"] {
            assert!(valid_period_key(good), "{good}");
        }
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-12",
            "2026/12",
            "２０２６-12",
            "",
        ] {
            assert!(!valid_period_key(bad), "{bad}");
        }
    }
}
