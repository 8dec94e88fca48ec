//! Errors as `application/problem+json` (RFC 9457), naming each bad field by its JSON path.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use psabridge_core::event::FieldError;
use psabridge_store::StoreError;
use serde_json::{Value, json};

/// An API error.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: String,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// Extra members of the problem object (e.g. what a batch did accept).
    pub extra: serde_json::Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>) -> Problem {
        Problem {
            status,
            title: title.into(),
            detail: None,
            errors: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Problem {
        self.detail = Some(d.into());
        self
    }

    pub fn field(mut self, path: impl Into<String>, problem: impl Into<String>) -> Problem {
        self.errors.push(FieldError::new(path, problem));
        self
    }

    pub fn with(mut self, key: &str, v: Value) -> Problem {
        self.extra.insert(key.to_string(), v);
        self
    }

    /// 422 with the given field errors.
    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let n = errors.len();
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The request has invalid fields",
        );
        p.detail = Some(match n {
            1 => format!("{}: {}", errors[0].path, errors[0].problem),
            n => format!("{n} fields are invalid; see `errors`"),
        });
        p.errors = errors;
        p
    }

    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found").detail(what)
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized").detail(detail)
    }

    pub fn forbidden(detail: &str) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden").detail(detail)
    }

    pub fn internal(e: impl std::fmt::Display) -> Problem {
        tracing::error!(error = %e, "request failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            .detail("the server failed; the error is logged")
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::NotFound(what) => Problem::not_found(what),
            StoreError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "Conflict").detail(m),
            StoreError::Invalid(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid").detail(m)
            }
            StoreError::Closed => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Shutting down")
                .detail("the service is shutting down; nothing was stored; retry"),
            StoreError::Write(m) => {
                tracing::error!(error = %m, "storing events failed");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Storage unavailable")
                    .detail("the events could not be stored; nothing was accepted; retry")
            }
            other => Problem::internal(other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
        });
        if let Some(d) = self.detail {
            body["detail"] = Value::String(d);
        }
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(
                self.errors
                    .iter()
                    .map(|e| json!({"path": e.path, "problem": e.problem}))
                    .collect(),
            );
        }
        for (k, v) in self.extra {
            body[k] = v;
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

/// Reject a JSON body that does not parse, saying where.
pub fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "Malformed JSON").detail(format!(
            "the body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}
