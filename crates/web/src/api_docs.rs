//! The interactive API reference at `/api/docs`: Redoc's standalone bundle, vendored from the
//! npm registry (`crates/web/assets/redoc`, MIT) and embedded in the binary, reading this
//! node's `/api/v1/openapi.json`. Nothing is loaded from elsewhere: the page's Content Security
//! Policy allows only this origin (Redoc sets inline styles and runs its search in a worker
//! made from a blob).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// The vendored Redoc release (see `assets/redoc/README.md`).
const REDOC_VERSION: &str = "3.0.1";

const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

const PAGE: &str = concat!(
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<title>PSA Bridge API reference</title>\n</head>\n<body>\n",
    "<redoc spec-url=\"/api/v1/openapi.json\" hide-download-button=\"false\"></redoc>\n",
    // A module: Redoc 3's bundle uses `import.meta`, which a classic script cannot parse
    // (the page stayed blank in browsers until the portal's browser tests opened it).
    "<script type=\"module\" src=\"/api/docs/redoc.standalone.js\"></script>\n",
    "<noscript>The reference needs JavaScript; the document itself is at ",
    "<a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</noscript>\n",
    "</body>\n</html>\n"
);

/// Only this origin; inline styles and blob workers are what Redoc itself needs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/docs", get(page))
        .route("/api/docs/redoc.standalone.js", get(script))
}

async fn page() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn script() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        REDOC_JS,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"redoc-{REDOC_VERSION}\"")) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
