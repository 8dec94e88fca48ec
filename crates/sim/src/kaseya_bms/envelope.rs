//! BMS answers: every body is the `{success, error, result}` envelope, failures included, with
//! `totalRecords` on paged endpoints only. `ErrorInfo` is `{code, message, details,
//! stackStrace, subErrors}` (the misspelling is the vendor's).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A successful answer.
pub fn ok(result: Value) -> Response {
    axum::Json(json!({"success": true, "error": null, "result": result})).into_response()
}

/// A successful page of a paged endpoint.
pub fn paged(result: Vec<Value>, total: usize) -> Response {
    axum::Json(json!({"success": true, "error": null, "result": result, "totalRecords": total}))
        .into_response()
}

/// A failure, answered with the failure envelope.
#[derive(Debug, Clone)]
pub struct Fail {
    pub status: StatusCode,
    pub message: String,
    pub sub_errors: Vec<String>,
    pub retry_after: Option<u64>,
}

impl Fail {
    pub fn new(status: u16, message: impl Into<String>) -> Fail {
        Fail {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            message: message.into(),
            sub_errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Fail {
        Fail::new(404, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Fail {
        Fail::new(401, message)
    }

    /// A validation failure of a DTO: one message, one sub-error per problem.
    pub fn validation(status: u16, sub_errors: Vec<String>) -> Fail {
        Fail {
            sub_errors,
            ..Fail::new(status, "One or more validation errors occurred.")
        }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "details": if self.sub_errors.is_empty() { Value::Null } else { Value::String(self.sub_errors.join(" ")) },
                "stackStrace": null,
                "subErrors": self.sub_errors,
            },
            "result": null,
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}
