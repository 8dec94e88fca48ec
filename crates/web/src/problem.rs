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

/// Every error answer under `/api/` and `/hooks/` as problem+json, whoever made it: axum's own
/// rejections (a bad path segment or query string, malformed JSON, a wrong media type, a body
/// too large or unreadable), an unknown route (404) and a method the route does not have (405)
/// come as text or empty; they are rewritten here with their status, a title, the original
/// text as `detail` (bounded) and, for a bad path segment or query parameter, the field by its
/// path (`path.id`, `query.force`). Answers that are JSON already are left alone. Under
/// `/scim/` the same rejections become SCIM errors (RFC 7644 §3.12), the schema SCIM clients
/// read.
pub async fn uniform(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/hooks/");
    let scim = path.starts_with("/scim/");
    let response = next.run(request).await;
    let status = response.status();
    if !(api || scim) || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let mut p = Problem::new(
        status,
        status.canonical_reason().unwrap_or("Error").to_string(),
    );
    p.detail = Some(match status {
        StatusCode::NOT_FOUND if text.is_empty() => "no such route in this API".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            format!("this route takes {allow}")
        }
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        _ => psabridge_core::render::truncate(&text, 300),
    });
    if scim {
        let detail = p.detail.take().unwrap_or_default();
        let fresh = crate::scim::rejection(status, detail);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        let (fresh_parts, body) = fresh.into_parts();
        parts.headers.extend(fresh_parts.headers);
        return Response::from_parts(parts, body);
    }
    if let Some(field) = rejected_field(&text) {
        p.errors.push(FieldError::new(
            field,
            psabridge_core::render::truncate(&text, 300),
        ));
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        p.errors.push(FieldError::new(
            "(body)",
            "the body is larger than this route takes",
        ));
    }
    let fresh = p.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

/// The field an axum rejection names: `path.<name>` for a path segment that does not parse,
/// `query.<name>` for a query parameter, `(query)` or `(path)` when it names none.
fn rejected_field(text: &str) -> Option<String> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']')
    };
    if let Some(rest) = text.strip_prefix("Failed to deserialize query string") {
        let rest = rest.trim_start_matches(':').trim_start();
        return Some(match rest.split_once(": ") {
            Some((name, _)) if ident(name) => format!("query.{name}"),
            _ => "(query)".to_string(),
        });
    }
    if text.starts_with("Invalid URL") || text.contains("Cannot parse `") {
        // "Invalid URL: Cannot parse `id` with value `abc` to a `i64`"
        let name = text
            .split_once("Cannot parse `")
            .and_then(|(_, r)| r.split_once("` with value"))
            .map(|(n, _)| n)
            .filter(|n| ident(n));
        return Some(match name {
            Some(n) => format!("path.{n}"),
            None => "(path)".to_string(),
        });
    }
    None
}
