//! Reading a request body into a typed request, and the 201 answer: shared by every handler.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{Problem, parse_json};

/// Parse a JSON body into `T`: 400 when it is not JSON, else 422 naming the field of the
/// first problem by its path.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    Ok(psabridge_ops::input::from_json(parse_json(bytes)?)?)
}

/// 201 with the created thing.
pub(crate) fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Now, in milliseconds (UTC), as the store keeps times.
pub(crate) fn now() -> i64 {
    psabridge_ops::input::now()
}

/// A merge patch may not remove these fields (`null`): 422 naming each.
pub(crate) fn refuse_removal(bytes: &Bytes, fields: &[&str]) -> Result<(), Problem> {
    Ok(psabridge_ops::input::refuse_removal(
        &parse_json(bytes)?,
        fields,
    )?)
}

/// The records of an intake body with their JSON paths, and whether it was a batch: a single
/// record, or `{"<key>": [...]}` of 1 to `MAX_BATCH` records (`what` names them in errors).
pub(crate) fn split_batch(
    body: serde_json::Value,
    key: &str,
    what: &str,
) -> Result<(Vec<(String, serde_json::Value)>, bool), Problem> {
    use psabridge_core::event::FieldError;
    use serde_json::Value;
    let Value::Object(mut map) = body else {
        return Ok((vec![(String::new(), body)], false));
    };
    let Some(items) = map.remove(key) else {
        return Ok((vec![(String::new(), Value::Object(map))], false));
    };
    if let Some(k) = map.keys().next() {
        return Err(Problem::invalid(vec![FieldError::new(
            k.clone(),
            format!("a batch body has only `{key}`"),
        )]));
    }
    let Value::Array(items) = items else {
        return Err(Problem::invalid(vec![FieldError::new(
            key,
            format!("must be an array of {what}"),
        )]));
    };
    let max = crate::events::MAX_BATCH;
    if items.is_empty() || items.len() > max {
        return Err(Problem::invalid(vec![FieldError::new(
            key,
            format!("must hold 1 to {max} {what}; this one has {}", items.len()),
        )]));
    }
    let list = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{key}[{i}]"), v))
        .collect();
    Ok((list, true))
}
