//! "Send a test notification": per client, an event type of the catalog goes through the real
//! pipeline (routing, contact choice, the PSA connector) and the answer says what the PSA made
//! of it: the ticket and its number, or the exact error.
//!
//! The test event carries a user address of its own, so it opens its own group and always
//! makes a ticket (never a note on an open ticket of the client).

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use psabridge_core::event::{Action, EventUser, FieldError, NewEvent};
use psabridge_store::ingest::Incoming;
use psabridge_store::outbox::EventRecord;
use serde::Deserialize;
use serde_json::{Map, json};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;

/// How long the request waits for the PSA's answer before saying "still trying".
const WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    event_type: String,
}

pub(crate) async fn send(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, client)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    s.store.client(&p, &client).await?;
    let b: TestBody = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::invalid(vec![FieldError::new(
            "event_type",
            format!("the body must be {{\"event_type\": \"…\"}} ({e})"),
        )])
    })?;
    Ok(answer(run(&s, &p, &client, &b.event_type).await?))
}

/// What a test notification came to.
pub(crate) enum Outcome {
    /// The PSA made the ticket (or noted it).
    Delivered {
        event_id: String,
        psa_action: Option<String>,
        connection: i64,
        ticket_id: Option<String>,
        ticket_number: Option<String>,
        contact: Option<(String, Option<String>)>,
    },
    /// Nothing could be sent, and why (no connection, the event type off, …).
    NotSent { event_id: String, error: String },
    /// Not routed yet when the wait ended.
    Pending { event_id: String },
    /// The PSA refused for good (`dead`) or it was too old (`expired`).
    Failed {
        event_id: String,
        state: String,
        connection: i64,
        error: Option<String>,
    },
    /// The PSA has not accepted it yet; it is being retried.
    Retrying {
        event_id: String,
        connection: i64,
        error: Option<String>,
    },
}

/// Send a test event of `event_type` for `client` through the real pipeline and wait (up to
/// [`WAIT`]) for what the PSA made of it. The caller has checked the permission; the JSON API
/// and the portal both come here.
pub(crate) async fn run(
    s: &AppState,
    p: &str,
    client: &str,
    event_type: &str,
) -> Result<Outcome, Problem> {
    s.store.client(p, client).await?;
    let catalog = s.event_catalog().await;
    let Some(et) = catalog.get(event_type) else {
        return Err(Problem::invalid(vec![FieldError::new(
            "event_type",
            format!(
                "'{event_type}' is not an event type of the catalog (GET /api/v1/event-types lists them)"
            ),
        )]));
    };
    let nonce: u64 = rand::random();
    let id = format!("test-{nonce:016x}");
    let mut data = Map::new();
    data.insert("test".into(), json!(true));
    let event = NewEvent {
        id: id.clone(),
        partner: None,
        client: client.to_string(),
        event_type: et.key.clone(),
        action: Action::Trigger,
        occurred_at: None,
        severity: et.default_severity,
        user: Some(EventUser {
            email: format!("{id}@test-notification.invalid"),
            name: Some("PSA Bridge test".into()),
        }),
        title: Some(format!("Test notification: {}", et.name)),
        details: Some(
            "A test notification sent from PSA Bridge's settings, to check that tickets reach \
             this company with the right settings. It can be closed."
                .into(),
        ),
        data,
    };
    let now = chrono::Utc::now().timestamp_millis();
    s.store
        .accept_events(
            vec![Incoming {
                partner_id: p.to_string(),
                event,
            }],
            now,
        )
        .await?;
    s.engine.wake();

    let deadline = Instant::now() + WAIT;
    let record = loop {
        let r = s.store.event_record(p, &id).await?;
        if finished(&r) || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(outcome(s, p, &record).await)
}

fn finished(r: &EventRecord) -> bool {
    r.skip_reason.is_some()
        || (r.routed_at.is_some()
            && !r.deliveries.is_empty()
            && r.deliveries
                .iter()
                .all(|d| matches!(d.state.as_str(), "delivered" | "dead" | "expired")))
}

async fn outcome(s: &AppState, partner: &str, r: &EventRecord) -> Outcome {
    let event_id = r.stored.event.id.clone();
    if let Some(why) = &r.skip_reason {
        return Outcome::NotSent {
            event_id,
            error: why.clone(),
        };
    }
    let Some(d) = r.deliveries.first() else {
        return Outcome::Pending { event_id };
    };
    match d.state.as_str() {
        "delivered" => {
            let mut number = d.ticket_number.clone();
            // The number is learned later in normal operation; a person testing wants it now.
            if number.is_none()
                && let Some(tid) = &d.ticket_id
                && let Ok(conn) = s.store.connection(partner, d.connection_id).await
                && let Ok(connector) = s.engine.connectors.get(&s.store, &conn).await
                && let Ok(states) = connector.ticket_states(std::slice::from_ref(tid)).await
            {
                number = states.into_iter().next().and_then(|t| t.number);
            }
            Outcome::Delivered {
                event_id,
                psa_action: d.psa_action.clone(),
                connection: d.connection_id,
                ticket_id: d.ticket_id.clone(),
                ticket_number: number,
                contact: d.contact_id.clone().map(|c| (c, d.contact_source.clone())),
            }
        }
        "dead" | "expired" => Outcome::Failed {
            event_id,
            state: d.state.clone(),
            connection: d.connection_id,
            error: d.last_error.clone(),
        },
        _ => Outcome::Retrying {
            event_id,
            connection: d.connection_id,
            error: d.last_error.clone(),
        },
    }
}

/// What the PSA made of the test: 201 with the ticket, 422 when nothing could be sent (and
/// why), 502 when the PSA refused, 202 when it is still being retried.
fn answer(o: Outcome) -> Response {
    match o {
        Outcome::NotSent { event_id, error } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"event_id": event_id, "status": "not_sent", "error": error})),
        )
            .into_response(),
        Outcome::Pending { event_id } => (
            StatusCode::ACCEPTED,
            Json(json!({"event_id": event_id, "status": "pending"})),
        )
            .into_response(),
        Outcome::Delivered {
            event_id,
            psa_action,
            connection,
            ticket_id,
            ticket_number,
            contact,
        } => (
            StatusCode::CREATED,
            Json(json!({
                "event_id": event_id,
                "status": "delivered",
                "psa_action": psa_action,
                "connection": connection,
                "ticket": {"id": ticket_id, "number": ticket_number},
                "contact": contact.map(|(c, source)| json!({"id": c, "source": source})),
            })),
        )
            .into_response(),
        Outcome::Failed {
            event_id,
            state,
            connection,
            error,
        } => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"event_id": event_id, "status": state, "connection": connection,
                        "error": error})),
        )
            .into_response(),
        Outcome::Retrying {
            event_id,
            connection,
            error,
        } => (
            StatusCode::ACCEPTED,
            Json(json!({"event_id": event_id, "status": "retrying", "connection": connection,
                        "error": error,
                        "note": "the PSA has not accepted it yet; the delivery log shows further attempts"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_event_type() {
        let b: Result<TestBody, _> = serde_json::from_str(r#"{"event_type": "x", "other": 1}"#);
        assert!(b.is_err(), "unknown fields are refused");
        let b: TestBody = serde_json::from_str(r#"{"event_type": "x"}"#).unwrap();
        assert_eq!(b.event_type, "x");
    }
}
