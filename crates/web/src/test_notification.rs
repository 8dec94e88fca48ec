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
    let catalog = s.event_catalog().await;
    let Some(et) = catalog.get(&b.event_type) else {
        return Err(Problem::invalid(vec![FieldError::new(
            "event_type",
            format!(
                "'{}' is not an event type of the catalog (GET /api/v1/event-types lists them)",
                b.event_type
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
        client: client.clone(),
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
                partner_id: p.clone(),
                event,
            }],
            now,
        )
        .await?;
    s.engine.wake();

    let deadline = Instant::now() + WAIT;
    let record = loop {
        let r = s.store.event_record(&p, &id).await?;
        if finished(&r) || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(answer(&s, &p, &record).await)
}

fn finished(r: &EventRecord) -> bool {
    r.skip_reason.is_some()
        || (r.routed_at.is_some()
            && !r.deliveries.is_empty()
            && r.deliveries
                .iter()
                .all(|d| matches!(d.state.as_str(), "delivered" | "dead" | "expired")))
}

/// What the PSA made of the test: 201 with the ticket, 422 when nothing could be sent (and
/// why), 502 when the PSA refused, 202 when it is still being retried.
async fn answer(s: &AppState, partner: &str, r: &EventRecord) -> Response {
    let event_id = &r.stored.event.id;
    if let Some(why) = &r.skip_reason {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"event_id": event_id, "status": "not_sent", "error": why})),
        )
            .into_response();
    }
    let Some(d) = r.deliveries.first() else {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"event_id": event_id, "status": "pending"})),
        )
            .into_response();
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
            (
                StatusCode::CREATED,
                Json(json!({
                    "event_id": event_id,
                    "status": "delivered",
                    "psa_action": d.psa_action,
                    "connection": d.connection_id,
                    "ticket": {"id": d.ticket_id, "number": number},
                    "contact": d.contact_id.as_ref().map(|c| json!({"id": c, "source": d.contact_source})),
                })),
            )
                .into_response()
        }
        "dead" | "expired" => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"event_id": event_id, "status": d.state, "connection": d.connection_id,
                        "error": d.last_error})),
        )
            .into_response(),
        _ => (
            StatusCode::ACCEPTED,
            Json(json!({"event_id": event_id, "status": "retrying", "connection": d.connection_id,
                        "error": d.last_error,
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
