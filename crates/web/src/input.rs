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
