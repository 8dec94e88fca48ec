//! The error answers Autotask gives, in one place so every module answers alike.
//!
//! Autotask's REST layer answers most failures (validation, business rules, bad JSON, unknown
//! filter fields) with HTTP 500 and `{"errors": ["…"]}`; ASP.NET answers a wrong verb with
//! 405 and `{"Message": …}`; IIS answers unknown paths with an HTML 404.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API failure, rendered as Autotask renders it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 500 `{"errors": [message]}`: Autotask's answer to almost every rejected request.
    #[error("{0}")]
    Server(String),
    /// 401: bad `UserName` or `Secret`.
    #[error("unauthorized")]
    Unauthorized,
    /// IIS's HTML 404 for a path no route serves.
    #[error("not found")]
    NotFound,
    /// IIS's 404.15 for a query string longer than it accepts.
    #[error("query string too long")]
    QueryStringTooLong,
    /// 404 for a missing record, when configured so (`Config::missing_item_is_404`).
    #[error("no matching record")]
    NoRecord,
    /// 405 from ASP.NET for a verb the route does not take.
    #[error("method {0} not allowed")]
    MethodNotAllowed(Method),
    /// 429 with `{"errors": [message]}`: a threshold was exceeded.
    #[error("{0}")]
    TooManyRequests(String),
}

/// Shorthand for the usual 500.
pub fn fail<T>(msg: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::Server(msg.into()))
}

/// `{"errors": [...]}` with a status.
pub fn errors_body(status: StatusCode, messages: &[&str]) -> Response {
    (status, axum::Json(json!({ "errors": messages }))).into_response()
}

/// An IIS-style HTML error page.
pub fn iis_page(status: StatusCode, title: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\"/>\r\n\
         <title>{title}</title></head><body><div id=\"header\"><h1>Server Error</h1></div>\r\n\
         <div id=\"content\"><div class=\"content-container\"><fieldset><h2>{title}</h2></fieldset></div></div></body></html>\r\n"
    );
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static("Microsoft-IIS/10.0"),
    );
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Server(m) => errors_body(StatusCode::INTERNAL_SERVER_ERROR, &[&m]),
            ApiError::Unauthorized => iis_page(
                StatusCode::UNAUTHORIZED,
                "401 - Unauthorized: Access is denied due to invalid credentials.",
            ),
            ApiError::NotFound => {
                iis_page(StatusCode::NOT_FOUND, "404 - File or directory not found.")
            }
            ApiError::QueryStringTooLong => iis_page(
                StatusCode::NOT_FOUND,
                "HTTP Error 404.15 - Not Found: The request filtering module is configured to deny a request where the query string is too long.",
            ),
            ApiError::NoRecord => {
                errors_body(StatusCode::NOT_FOUND, &["No matching records found."])
            }
            ApiError::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({
                    "Message": format!("The requested resource does not support http method '{m}'.")
                })),
            )
                .into_response(),
            ApiError::TooManyRequests(m) => errors_body(StatusCode::TOO_MANY_REQUESTS, &[&m]),
        }
    }
}
