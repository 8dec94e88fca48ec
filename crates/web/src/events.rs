//! Event ingestion and the event record.
//!
//! `POST /api/v1/events` takes one event, `{"events": [...]}` (up to 1000), a CloudEvents
//! structured event (`application/cloudevents+json`) or a CloudEvents batch
//! (`application/cloudevents-batch+json`). It answers 202 only once every accepted event is
//! committed. Invalid events are refused one by one, never silently: a batch with bad events
//! stores the good ones and answers 422 listing, per event, `accepted`, `duplicate` or
//! `rejected` with its errors — so the producer can resend the whole batch after fixing it
//! (ids make the resend idempotent).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use psabridge_core::event::{FieldError, parse_cloudevent, parse_event};
use psabridge_store::StoreError;
use psabridge_store::ingest::{Incoming, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{Problem, parse_json};
use crate::views;

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;

/// Largest body of `POST /api/v1/events` (a batch): 4 MiB. One event's `data` is at most
/// `core::event::MAX_DATA_BYTES` (256 KiB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/events",
            post(ingest).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .route("/api/v1/events/{id}", get(event_record))
}

/// Partners known to exist, remembered briefly so that vendor-token ingestion does not read
/// the partners table on every request.
pub struct PartnerCache {
    seen: Mutex<HashMap<String, Instant>>,
}

impl PartnerCache {
    pub fn new() -> PartnerCache {
        PartnerCache {
            seen: Mutex::new(HashMap::new()),
        }
    }

    async fn exists(&self, state: &AppState, partner: &str) -> Result<bool, StoreError> {
        {
            let map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if map
                .get(partner)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(30))
            {
                return Ok(true);
            }
        }
        match state.store.partner(partner).await {
            Ok(_) => {
                let mut map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    map.clear();
                }
                map.insert(partner.to_string(), Instant::now());
                Ok(true)
            }
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Default for PartnerCache {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Ours,
    CloudEvent,
}

/// The events of a body, each with its JSON path, and whether the body was a batch.
type Split = (Format, Vec<(String, Value)>, bool);

/// The events of a body, each with its JSON path.
/// A body is read as JSON only when it says it is JSON (`application/json` or a `+json` type
/// such as CloudEvents'); anything else, or nothing, is 415.
fn require_json_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some(t) if t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")) => Ok(()),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
        )
        .detail(match other {
            None => "the body has no Content-Type; send application/json".to_string(),
            Some(_) => "the Content-Type is not JSON; send application/json or application/cloudevents+json".to_string(),
        })),
    }
}

fn split_body(headers: &HeaderMap, body: &Value) -> Result<Split, Problem> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let too_many = |n: usize| {
        Problem::invalid(vec![FieldError::new(
            "events",
            format!("at most {MAX_BATCH} events per request; this one has {n}"),
        )])
    };
    if ctype.starts_with("application/cloudevents-batch+json") {
        let Value::Array(items) = body else {
            return Err(Problem::invalid(vec![FieldError::new(
                "(body)",
                "a CloudEvents batch must be a JSON array",
            )]));
        };
        if items.len() > MAX_BATCH {
            return Err(too_many(items.len()));
        }
        let list = items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v.clone()))
            .collect();
        return Ok((Format::CloudEvent, list, true));
    }
    let format = if ctype.starts_with("application/cloudevents+json") {
        Format::CloudEvent
    } else if ctype.starts_with("application/json") || ctype.is_empty() {
        Format::Ours
    } else {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type").detail(format!(
            "send application/json, application/cloudevents+json or application/cloudevents-batch+json, not {ctype}"
        )));
    };
    match body {
        Value::Object(m) if format == Format::Ours && m.contains_key("events") => {
            match m.get("events") {
                Some(Value::Array(items)) => {
                    if let Some(k) = m.keys().find(|k| *k != "events") {
                        return Err(Problem::invalid(vec![FieldError::new(
                            k.clone(),
                            "a batch body has only `events`",
                        )]));
                    }
                    if items.len() > MAX_BATCH {
                        return Err(too_many(items.len()));
                    }
                    if items.is_empty() {
                        return Err(Problem::invalid(vec![FieldError::new(
                            "events",
                            "must hold at least one event",
                        )]));
                    }
                    Ok((
                        format,
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (format!("events[{i}]"), v.clone()))
                            .collect(),
                        true,
                    ))
                }
                _ => Err(Problem::invalid(vec![FieldError::new(
                    "events",
                    "must be an array of events",
                )])),
            }
        }
        _ => Ok((format, vec![(String::new(), body.clone())], false)),
    }
}

/// Events by outcome (counter: accepted, duplicate, invalid).
pub const EVENTS: &str = "psabridge_events_total";
/// From a request's arrival to its answer, the commit included (histogram, seconds).
pub const ACK_SECONDS: &str = "psabridge_ingest_ack_duration_seconds";

/// Ingestion, timed and counted for metrics.
async fn ingest(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let started = std::time::Instant::now();
    let mut counted = false;
    let answer = accept(state, caller, headers, body, &mut counted).await;
    if answer.is_err() && !counted {
        // The request itself was refused (not JSON, wrong type, bad shape): one invalid.
        metrics::counter!(EVENTS, "outcome" => "invalid").increment(1);
    }
    let status = match &answer {
        Ok(r) => r.status().as_u16(),
        Err(p) => p.status.as_u16(),
    };
    metrics::histogram!(ACK_SECONDS, "status" => status.to_string())
        .record(started.elapsed().as_secs_f64());
    answer
}

async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
    counted: &mut bool,
) -> Result<Response, Problem> {
    let received_at = chrono::Utc::now().timestamp_millis();
    require_json_content_type(&headers)?;
    let body = parse_json(&body)?;
    let (format, items, is_batch) = split_body(&headers, &body)?;

    // Validate every event; keep the good ones with their partner.
    let mut verdicts: Vec<Result<usize, Vec<FieldError>>> = Vec::with_capacity(items.len());
    let mut good: Vec<Incoming> = Vec::with_capacity(items.len());
    let mut ids: Vec<Option<String>> = Vec::with_capacity(items.len());
    let catalog = state.event_catalog().await;
    for (path, value) in &items {
        ids.push(value.get("id").and_then(Value::as_str).map(str::to_string));
        let parsed = match format {
            Format::Ours => parse_event(value, path, &catalog),
            Format::CloudEvent => parse_cloudevent(value, path, &catalog),
        };
        let verdict = match parsed {
            Err(errors) => Err(errors),
            Ok(event) => match partner_of(&state, &caller, event.partner.as_deref(), path).await? {
                Err(e) => Err(vec![e]),
                Ok(partner_id) => {
                    good.push(Incoming { partner_id, event });
                    Ok(good.len() - 1)
                }
            },
        };
        verdicts.push(verdict);
    }

    // From here on a failure is ours (the store's), not the request's.
    *counted = true;
    let outcomes = if good.is_empty() {
        Vec::new()
    } else {
        state.store.accept_events(good, received_at).await?
    };

    let mut results = Vec::with_capacity(items.len());
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut all_errors = Vec::new();
    for (verdict, id) in verdicts.into_iter().zip(ids) {
        match verdict {
            Ok(i) => {
                let status = match outcomes[i] {
                    Outcome::Accepted => {
                        accepted += 1;
                        "accepted"
                    }
                    Outcome::Duplicate => {
                        duplicates += 1;
                        "duplicate"
                    }
                };
                results.push(json!({"id": id, "status": status}));
            }
            Err(errors) => {
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

    for (outcome, n) in [
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("invalid", rejected),
    ] {
        if n > 0 {
            metrics::counter!(EVENTS, "outcome" => outcome).increment(n);
        }
    }
    if rejected > 0 {
        let mut p = Problem::invalid(all_errors);
        if is_batch {
            p.detail = Some(format!(
                "{rejected} of {} events were rejected; {accepted} accepted and {duplicates} duplicates were stored — see `results`",
                results.len()
            ));
            p = p
                .with("accepted", json!(accepted))
                .with("duplicates", json!(duplicates))
                .with("rejected", json!(rejected))
                .with("results", Value::Array(results));
        }
        return Err(p);
    }
    let body = if is_batch {
        json!({"accepted": accepted, "duplicates": duplicates, "results": results})
    } else {
        results.into_iter().next().unwrap_or(Value::Null)
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The partner an event (or usage report) belongs to, or the field error that says why it has
/// none. `named` is the record's own `partner` field.
pub(crate) async fn partner_of(
    state: &AppState,
    caller: &Caller,
    named: Option<&str>,
    path: &str,
) -> Result<Result<String, FieldError>, Problem> {
    let field = if path.is_empty() {
        "partner".to_string()
    } else {
        format!("{path}.partner")
    };
    match (caller.implied_partner(), named) {
        (Some(p), None) => Ok(Ok(p.to_string())),
        (Some(p), Some(named)) if named == p => Ok(Ok(p.to_string())),
        (Some(_), Some(named)) => Ok(Err(FieldError::new(
            field,
            format!(
                "'{named}' is not the partner of this token; omit `partner` with a partner token"
            ),
        ))),
        (None, None) => Ok(Err(FieldError::new(
            field,
            "is required with a vendor-wide token",
        ))),
        (None, Some(named)) => {
            if state.partners.exists(state, named).await? {
                Ok(Ok(named.to_string()))
            } else {
                Ok(Err(FieldError::new(
                    field,
                    format!("no partner has the id '{named}'"),
                )))
            }
        }
    }
}

#[derive(Deserialize)]
struct PartnerQuery {
    partner: Option<String>,
}

/// The partner a read is about: implied by a partner token, or named by `?partner=`.
pub(crate) fn scoped_partner(caller: &Caller, named: Option<String>) -> Result<String, Problem> {
    match (caller.implied_partner(), named) {
        (Some(p), None) => Ok(p.to_string()),
        (Some(p), Some(n)) if n == p => Ok(n),
        (Some(_), Some(n)) => Err(Problem::not_found(format!("partner '{n}'"))),
        (None, Some(n)) => Ok(n),
        (None, None) => Err(Problem::invalid(vec![FieldError::new(
            "partner",
            "name the partner (`?partner=`) when using a vendor-wide token",
        )])),
    }
}

async fn event_record(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PartnerQuery>,
) -> Result<Json<Value>, Problem> {
    let partner = scoped_partner(&caller, q.partner)?;
    let record = state.store.event_record(&partner, &id).await?;
    Ok(Json(views::event_record(&record)))
}
