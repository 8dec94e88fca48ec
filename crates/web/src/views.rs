//! The API's JSON shapes of stored things. Times are RFC 3339 UTC.

use psabridge_store::outbox::{DeliveryView, EventRecord};
use psabridge_store::{Millis, from_millis};
use serde_json::{Value, json};

pub(crate) fn time(ms: Millis) -> Value {
    Value::String(from_millis(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub(crate) fn opt_time(ms: Option<Millis>) -> Value {
    ms.map_or(Value::Null, time)
}

/// The API's name of a delivery state: a claimed delivery is still `pending` to the outside.
fn status(state: &str) -> &str {
    match state {
        "in_flight" => "pending",
        s => s,
    }
}

pub(crate) fn delivery(d: &DeliveryView) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "client": d.client_id,
        "channel": d.channel,
        "connection": d.connection_id,
        "group_key": d.group_key,
        "status": status(&d.state),
        "in_progress": d.state == "in_flight",
        "psa_action": d.psa_action,
        "ticket": d.ticket_id.as_ref().map(|id| json!({"id": id, "number": d.ticket_number})),
        "contact": d.contact_id.as_ref().map(|id| json!({"id": id, "source": d.contact_source})),
        "attempts": d.attempts,
        "last_error": d.last_error,
        "next_attempt_at": if matches!(d.state.as_str(), "pending" | "retrying") { time(d.next_attempt_at) } else { Value::Null },
        "created_at": time(d.created_at),
        "updated_at": time(d.updated_at),
        "delivered_at": opt_time(d.delivered_at),
        "history": d.history.iter().map(|a| json!({
            "attempt": a.attempt,
            "started_at": time(a.started_at),
            "finished_at": time(a.finished_at),
            "outcome": a.outcome,
            "psa_calls": a.psa_calls,
            "summary": a.summary,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn event_record(r: &EventRecord) -> Value {
    let e = &r.stored.event;
    let state = match (&r.routed_at, &r.skip_reason) {
        (None, _) => "received",
        (Some(_), Some(_)) => "skipped",
        (Some(_), None) => "routed",
    };
    json!({
        "id": e.id,
        "partner": r.stored.partner_id,
        "client": e.client,
        "type": e.event_type,
        "action": e.action.as_str(),
        "severity": e.severity.as_str(),
        "occurred_at": e.occurred_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "received_at": time(r.stored.received_at),
        "user": e.user.as_ref().map(|u| json!({"email": u.email, "name": u.name})),
        "title": e.title,
        "details": e.details,
        "data": e.data,
        "routing": {"state": state, "routed_at": opt_time(r.routed_at), "skip_reason": r.skip_reason},
        "deliveries": r.deliveries.iter().map(delivery).collect::<Vec<_>>(),
    })
}
