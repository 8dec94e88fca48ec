//! Every request's way in. `/_sim/` goes to the control surface; an API call goes through the
//! order a tenant and the network impose: faults first (the network or a gateway failing),
//! then the bearer token (except on the two token endpoints), the endpoint's hourly quota,
//! and only then the endpoint itself.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::{self, Ctx, Route};
use super::envelope::{Fail, ok};
use super::faults::{self, FaultKind};
use super::input::{Params, form};
use super::{Shared, auth, control, latency};
use crate::server::{Conn, drop_connection};

const MAX_BODY: usize = 8 * 1024 * 1024;

pub async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let conn = req.extensions().get::<Conn>().cloned();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Fail::new(413, "The request body is too large.").into_response();
    };
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if segs.first().is_some_and(|f| f.eq_ignore_ascii_case("_sim")) {
        return control::handle(&s, &parts.method, &segs[1..], parts.uri.query(), &body).await;
    }
    let routed = api::route(&segs);
    let endpoint = match &routed {
        Some((_, template)) => format!("{} {template}", parts.method),
        None => format!("{} (unknown)", parts.method),
    };

    // Faults first.
    let endpoint_lower = endpoint.to_ascii_lowercase();
    let mut extra = Duration::ZERO;
    let mut after_commit = false;
    if let Some(rule) = s.faults.take(&parts.method, &path, |e| {
        faults::endpoint_matches(e, &endpoint_lower)
    }) {
        match rule.kind {
            FaultKind::Status | FaultKind::Html => {
                let r = if rule.kind == FaultKind::Status {
                    faults::status_answer(&rule)
                } else {
                    faults::html_answer(&rule)
                };
                s.record(&endpoint, r.status().as_str());
                return r;
            }
            FaultKind::Body => {
                let r = crate::faults::body_answer(&rule);
                s.record(&endpoint, r.status().as_str());
                return r;
            }
            FaultKind::Delay => extra = Duration::from_millis(rule.delay_ms.unwrap_or(1000)),
            FaultKind::AfterCommit => after_commit = true,
            FaultKind::Drop => {
                s.record(&endpoint, "dropped");
                return drop_connection(conn).await;
            }
            FaultKind::Timeout => {
                s.record(&endpoint, "held");
                tokio::time::sleep(Duration::from_millis(rule.hold_ms.unwrap_or(120_000))).await;
                return drop_connection(conn).await;
            }
        }
    }
    let wait = latency(&s.config) + extra;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }

    let r = match routed {
        None => Fail::not_found(format!("No API endpoint matches '{path}'.")).into_response(),
        Some((route, _)) => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let authorization = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let params = Params::parse(parts.uri.query().unwrap_or(""));
            call(
                &s,
                &route,
                &endpoint,
                &Ctx {
                    config: &s.config,
                    method: &parts.method,
                    params: &params,
                    body: &body,
                },
                &content_type,
                authorization.as_deref(),
            )
            .unwrap_or_else(IntoResponse::into_response)
        }
    };
    s.record(&endpoint, r.status().as_str());
    if after_commit {
        return drop_connection(conn).await;
    }
    r
}

/// Authentication, quota, then the endpoint.
fn call(
    s: &Shared,
    route: &Route,
    endpoint: &str,
    c: &Ctx<'_>,
    content_type: &str,
    authorization: Option<&str>,
) -> Result<Response, Fail> {
    if !route.is_auth() {
        s.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(authorization)?;
    }
    let limit = s.config.hourly_limit_per_endpoint;
    if let Err(wait) = s
        .quota
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(endpoint, limit)
    {
        return Err(Fail {
            retry_after: Some(wait.as_secs().max(1)),
            ..Fail::new(
                429,
                format!(
                    "API rate limit exceeded: {limit} calls per hour are allowed for '{endpoint}'."
                ),
            )
        });
    }
    if route.is_auth() {
        if c.method != axum::http::Method::POST {
            return Err(Fail::new(
                405,
                format!(
                    "The requested resource does not support http method '{}'.",
                    c.method
                ),
            ));
        }
        let Some(fields) = form(content_type, c.body) else {
            return Err(Fail::new(
                415,
                "Unsupported media type: send the fields as multipart/form-data or application/x-www-form-urlencoded.",
            ));
        };
        let mut tokens = s.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let result = if *route == Route::Authenticate {
            auth::authenticate(c.config, &mut tokens, &fields)?
        } else {
            auth::refresh(c.config, &mut tokens, &fields)?
        };
        return Ok(ok(result));
    }
    let mut db = s.db();
    api::dispatch(&mut db, route, c)
}
