//! The vendor's event types over the API: listed to everyone, defined by the vendor.
//!
//! A type is checked by `core::event_types::parse_definition` (every bad field named), stored
//! as a row whose change raises the types' version (`store::event_types`), and this node
//! reloads its catalog at once; every other node sees the new version the next time it uses
//! its catalog (`engine::catalog::RECHECK`). A type that events or settings still name is
//! deactivated instead of deleted: new events of it are refused, accepted ones still deliver.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use psabridge_core::event_types::{EventTypeDef, parse_definition, to_json};
use psabridge_store::event_types::Removal;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::audit;
use crate::auth::Caller;
use crate::input::now;
use crate::problem::{Problem, parse_json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/event-types", get(list).post(create))
        .route(
            "/api/v1/event-types/{key}",
            get(show).put(replace).delete(remove),
        )
}

/// Every type, inactive ones too (flagged), in key order.
async fn list(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, Problem> {
    let (_, defs) = s.store.event_type_defs().await?;
    Ok(Json(
        json!({"event_types": defs.iter().map(to_json).collect::<Vec<_>>()}),
    ))
}

async fn show(
    State(s): State<AppState>,
    _caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, Problem> {
    let def = s
        .store
        .event_type_def(&key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    Ok(Json(to_json(&def)))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_vendor()?;
    let def = parse_definition(&parse_json(&bytes)?, None).map_err(Problem::invalid)?;
    if !s.store.create_event_type(&def, now()).await? {
        return Err(
            Problem::new(StatusCode::CONFLICT, "Conflict").detail(format!(
                "event type '{}' exists already (PUT /api/v1/event-types/{} replaces it)",
                def.key, def.key
            )),
        );
    }
    changed(&s, &caller, "event_type.create", None, &def).await;
    Ok((StatusCode::CREATED, Json(to_json(&def))).into_response())
}

/// Create or replace the type at `key`; a body may name the key too, but only the same one.
async fn replace(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_vendor()?;
    let def = parse_definition(&parse_json(&bytes)?, Some(&key)).map_err(Problem::invalid)?;
    let before = s.store.event_type_def(&def.key).await?;
    let created = s.store.put_event_type(&def, now()).await?;
    changed(&s, &caller, "event_type.put", before.as_ref(), &def).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(to_json(&def))).into_response())
}

/// Delete the type, or deactivate it when events or settings name it; the answer says which.
async fn remove(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_vendor()?;
    let before = s
        .store
        .event_type_def(&key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    let removal = s.store.remove_event_type(&key, now()).await?;
    let (result, after) = match removal {
        Removal::Deleted => ("deleted", None),
        Removal::Deactivated => (
            "deactivated",
            Some(EventTypeDef {
                active: false,
                ..before.clone()
            }),
        ),
    };
    reload(&s).await;
    audit(
        &s,
        &caller,
        None,
        &format!("event_type.{result}"),
        &format!("event_type:{key}"),
        Some(&to_json(&before)),
        after.as_ref().map(to_json).as_ref(),
    )
    .await;
    let why = match removal {
        Removal::Deleted => "no event or setting named it",
        Removal::Deactivated => {
            "events or settings name it: new events of it are refused, accepted ones still deliver"
        }
    };
    Ok(Json(json!({"key": key, "result": result, "detail": why})))
}

fn not_found(key: &str) -> Problem {
    Problem::not_found(format!(
        "event type '{key}' (GET /api/v1/event-types lists them)"
    ))
}

/// This node's catalog follows at once; a failure only delays it to the next check.
async fn reload(s: &AppState) {
    if let Err(e) = s.engine.catalog.reload().await {
        tracing::warn!(error = %e, "event types changed but this node could not reload them yet");
    }
}

async fn changed(
    s: &AppState,
    caller: &Caller,
    action: &str,
    before: Option<&EventTypeDef>,
    after: &EventTypeDef,
) {
    reload(s).await;
    audit(
        s,
        caller,
        None,
        action,
        &format!("event_type:{}", after.key),
        before.map(to_json).as_ref(),
        Some(&to_json(after)),
    )
    .await;
}
