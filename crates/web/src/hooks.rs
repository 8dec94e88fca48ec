//! Ticket-change callouts from PSAs.
//!
//! Autotask signs each callout with HMAC-SHA1 of the exact body under the webhook's secret key
//! (`X-Hook-Signature: sha1=<base64>`). We verify it in constant time before believing a word,
//! then update the group table: a closed ticket closes its group, so the next alert of that
//! group opens a new ticket instead of becoming a note nobody reads.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha1::Sha1;

use psabridge_core::settings::PsaKind;
use psabridge_psa::PushError;

use crate::AppState;
use crate::problem::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/autotask/{connection}", post(autotask))
        .route(
            "/hooks/connectwise/{connection}",
            post(|s, p, h, b| pushed(PsaKind::ConnectWise, s, p, h, b)),
        )
        .route(
            "/hooks/halopsa/{connection}",
            post(|s, p, h, b| pushed(PsaKind::HaloPsa, s, p, h, b)),
        )
}

/// A push from a PSA whose connector authenticates and reads its own callouts
/// (`Connector::read_push`: ConnectWise's signed callbacks, HaloPSA's webhooks). Whatever is
/// wrong (no such connection, another PSA's, no push registered, a bad signature) answers the
/// same 401, so a caller learns nothing about our connections.
async fn pushed(
    kind: PsaKind,
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let unauthorized = || Problem::unauthorized("the callout is not authenticated");
    let connection = state
        .store
        .connection_by_id(connection_id)
        .await
        .map_err(|_| unauthorized())?;
    if connection.kind != kind || connection.webhook_id.is_none() {
        return Err(unauthorized());
    }
    let secret = state
        .store
        .connection_webhook_secret(connection_id)
        .await?
        .ok_or_else(unauthorized)?;
    let connector = state
        .engine
        .connectors
        .get(&state.store, &connection)
        .await
        .map_err(|_| unauthorized())?;
    let pushed = match connector.read_push(&headers, &body, secret.expose()).await {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(StatusCode::NO_CONTENT),
        Err(PushError::Malformed(m)) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "Malformed callout").detail(m));
        }
        Err(PushError::Psa(e)) => {
            tracing::warn!(connection = connection_id, error = %e, "could not check a PSA callout");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The callout could not be checked now",
            ));
        }
        Err(e) => {
            tracing::warn!(connection = connection_id, error = %e, "rejected a PSA callout");
            return Err(unauthorized());
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let id = pushed.ticket_id;
    match pushed.closed {
        Some(true) => {
            let n = state
                .store
                .close_tickets(connection_id, std::slice::from_ref(&id), now)
                .await?;
            tracing::info!(connection = connection_id, ticket = %id, groups = n, deleted = pushed.deleted, "PSA says the ticket is closed");
            if !pushed.deleted {
                state
                    .store
                    .record_ticket_numbers(connection_id, &[(id, pushed.number)])
                    .await?;
            }
        }
        Some(false) => {
            state
                .store
                .confirm_open(connection_id, &[(id, pushed.number)], now)
                .await?
        }
        None => {
            state
                .store
                .record_ticket_numbers(connection_id, &[(id, pushed.number)])
                .await?
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Does `signature` (`sha1=<base64>`) sign `body` under `secret`?
pub fn autotask_signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(b64) = signature.trim().strip_prefix("sha1=") else {
        return false;
    };
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A field of the callout's `Fields`, whatever its casing.
fn field<'a>(fields: &'a Value, name: &str) -> Option<&'a Value> {
    fields
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn autotask(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let unauthorized = || Problem::unauthorized("the callout's signature does not verify");
    let connection = state
        .store
        .connection_by_id(connection_id)
        .await
        .map_err(|_| unauthorized())?;
    let secret = state
        .store
        .connection_webhook_secret(connection_id)
        .await?
        .ok_or_else(unauthorized)?;
    let signature = headers
        .get("x-hook-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    if !autotask_signature_valid(secret.expose().as_bytes(), &body, signature) {
        tracing::warn!(
            connection = connection_id,
            "rejected a PSA callout with a bad signature"
        );
        return Err(unauthorized());
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "Malformed callout").detail(e.to_string())
    })?;
    if let (Some(guid), Some(expected)) = (
        payload.get("Guid").and_then(Value::as_str),
        &connection.webhook_guid,
    ) && !guid.eq_ignore_ascii_case(expected)
    {
        return Err(unauthorized());
    }
    let entity = payload
        .get("EntityType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !entity.eq_ignore_ascii_case("Ticket") {
        return Ok(StatusCode::NO_CONTENT);
    }
    let Some(ticket_id) = payload.get("Id").and_then(as_text) else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let now = chrono::Utc::now().timestamp_millis();
    let action = payload.get("Action").and_then(Value::as_str).unwrap_or("");
    let fields = payload.get("Fields").cloned().unwrap_or(Value::Null);
    let number = field(&fields, "TicketNumber").and_then(as_text);
    let closed_statuses: Vec<String> = connection
        .settings
        .get("closed_statuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(as_text).collect())
        .unwrap_or_else(|| vec!["5".to_string()]);
    if action.eq_ignore_ascii_case("Delete") {
        state
            .store
            .close_tickets(connection_id, &[ticket_id], now)
            .await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    match field(&fields, "Status").and_then(as_text) {
        Some(status) if closed_statuses.contains(&status) => {
            let n = state
                .store
                .close_tickets(connection_id, std::slice::from_ref(&ticket_id), now)
                .await?;
            tracing::info!(connection = connection_id, ticket = %ticket_id, groups = n, "PSA says the ticket is closed");
            state
                .store
                .record_ticket_numbers(connection_id, &[(ticket_id, number)])
                .await?;
        }
        Some(_) => {
            state
                .store
                .confirm_open(connection_id, &[(ticket_id, number)], now)
                .await?
        }
        None => {
            state
                .store
                .record_ticket_numbers(connection_id, &[(ticket_id, number)])
                .await?
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let secret = b"s3cret";
        let body = br#"{"Id":1}"#;
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(body);
        let sig = format!(
            "sha1={}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(autotask_signature_valid(secret, body, &sig));
        assert!(!autotask_signature_valid(secret, br#"{"Id":2}"#, &sig));
        assert!(!autotask_signature_valid(b"other", body, &sig));
        assert!(!autotask_signature_valid(
            secret,
            body,
            sig.trim_start_matches("sha1=")
        ));
        assert!(!autotask_signature_valid(secret, body, "sha1=???"));
    }
}
