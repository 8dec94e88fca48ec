//! Every request's way in. Paths are matched case-insensitively, empty segments ignored.
//! An API call passes faults first (the network or server failing), then the rolling
//! request window, then authentication, then the resource routes. `/_sim/` is the control
//! surface and skips all of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::api::{self, Params};
use super::faults::FaultKind;
use super::{Issued, Shared, control, errors, faults};
use crate::server::{Conn, drop_connection};

const MAX_BODY: usize = 8 * 1024 * 1024;

enum Target {
    Control(Vec<String>),
    Token,
    AuthInfo,
    Api(Vec<String>),
    NotFound,
}

fn target(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let owned = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match segs.as_slice() {
        [first, rest @ ..] if first.eq_ignore_ascii_case("_sim") => Target::Control(owned(rest)),
        [a, t] if a.eq_ignore_ascii_case("auth") && t.eq_ignore_ascii_case("token") => {
            Target::Token
        }
        [a, i] if a.eq_ignore_ascii_case("api") && i.eq_ignore_ascii_case("authinfo") => {
            Target::AuthInfo
        }
        [a, rest @ ..] if a.eq_ignore_ascii_case("api") && !rest.is_empty() => {
            Target::Api(owned(rest))
        }
        _ => Target::NotFound,
    }
}

pub async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let conn = req.extensions().get::<Conn>().cloned();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return errors::message(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.");
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    let path = parts.uri.path().to_string();
    let (resource, t) = match target(&path) {
        Target::Control(segs) => {
            let r = control::handle(&s, &parts.method, &segs, &query, &body);
            // A technician's close or reopen calls the webhooks before the answer.
            if let Some(id) = control::status_changed_by(&parts.method, &segs)
                && r.status().is_success()
                && let Some(t) = api::ticket_out(&s, id)
            {
                super::webhooks::status_changed(&s, t, true).await;
            }
            return r;
        }
        Target::NotFound => {
            return errors::message(
                StatusCode::NOT_FOUND,
                "No HTTP resource was found that matches the request URI.",
            );
        }
        Target::Token => ("token".to_string(), Target::Token),
        Target::AuthInfo => ("authinfo".to_string(), Target::AuthInfo),
        Target::Api(segs) => (
            api::canonical(&segs[0])
                .map(str::to_string)
                .unwrap_or_else(|| segs[0].clone()),
            Target::Api(segs),
        ),
    };
    let endpoint = match &t {
        Target::Token => format!("{} /auth/token", parts.method),
        _ => format!("{} /api/{resource}", parts.method),
    };
    s.record(&endpoint);

    let mut after_commit = false;
    if let Some(rule) = s
        .faults
        .take(&parts.method, &path, |e| e.eq_ignore_ascii_case(&resource))
    {
        match rule.kind {
            FaultKind::Status | FaultKind::Html => return faults::answer(&rule),
            FaultKind::Body => return crate::faults::body_answer(&rule),
            FaultKind::Delay => {
                tokio::time::sleep(Duration::from_millis(rule.delay_ms.unwrap_or(1000))).await
            }
            FaultKind::AfterCommit => after_commit = true,
            FaultKind::Drop => return drop_connection(conn).await,
            FaultKind::Timeout => {
                tokio::time::sleep(Duration::from_millis(rule.hold_ms.unwrap_or(120_000))).await;
                return drop_connection(conn).await;
            }
        }
    }
    if let Err(wait) = s.admit() {
        let mut r = errors::rate_limited(s.config.rate_limit, s.config.rate_window_secs);
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    if s.config.base_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.config.base_latency_ms)).await;
    }
    let r = match t {
        Target::Token => token(&s, &parts.method, &parts.headers, &query, &body),
        Target::AuthInfo => auth_info(&s, &parts.method),
        Target::Api(segs) => match authenticate(&s, &parts.headers) {
            Ok(()) => api::dispatch(&s, &parts.method, &segs, &Params::parse(&query), &body),
            Err(r) => *r,
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    if after_commit {
        return drop_connection(conn).await;
    }
    r
}

/// `GET /api/authinfo`: anonymous; names the authorisation server.
fn auth_info(s: &Shared, method: &Method) -> Response {
    if method != Method::GET {
        return errors::message(
            StatusCode::METHOD_NOT_ALLOWED,
            "The requested resource does not support this HTTP method.",
        );
    }
    axum::Json(json!({"auth_url": format!("{}/auth", s.base_url), "tenant_id": s.config.tenant}))
        .into_response()
}

/// `POST /auth/token?tenant=`: OAuth2 client credentials with a form body.
fn token(s: &Shared, method: &Method, headers: &HeaderMap, query: &str, body: &Bytes) -> Response {
    if method != Method::POST {
        return errors::oauth(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The token endpoint takes POST.",
        );
    }
    let tenant = Params::parse(query).get("tenant").map(str::to_string);
    match &tenant {
        Some(t) if !t.eq_ignore_ascii_case(&s.config.tenant) => {
            let status = StatusCode::from_u16(s.config.unknown_tenant_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return errors::oauth(status, "invalid_request", &format!("Unknown tenant '{t}'."));
        }
        None if s.config.require_tenant => {
            return errors::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The tenant parameter is required.",
            );
        }
        _ => {}
    }
    let form_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The token request must be application/x-www-form-urlencoded.",
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if get("grant_type") != "client_credentials" {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only the client_credentials grant is enabled for this application.",
        );
    }
    let (id, secret) = (get("client_id"), get("client_secret"));
    if id.is_empty() {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is required.",
        );
    }
    let Some(client) = s
        .config
        .api_clients
        .iter()
        .find(|c| c.client_id == id && c.client_secret == secret)
    else {
        return errors::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The client credentials are invalid.",
        );
    };
    let scope = match get("scope") {
        "" => "all",
        sc => sc,
    };
    if !scope
        .split(' ')
        .all(|x| x == "all" || x.contains(':') || x.is_empty())
    {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("Unknown scope '{scope}'."),
        );
    }
    let value = {
        let mut n = s.token_counter.lock().unwrap_or_else(|p| p.into_inner());
        *n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let raw = format!("{}:{}:{:016x}", client.client_id, s.config.tenant, *n);
        format!(
            "halo-sim.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    };
    s.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(
        value.clone(),
        Issued {
            client_id: client.client_id.clone(),
            expires: Instant::now() + Duration::from_secs(s.config.token_lifetime_secs),
        },
    );
    axum::Json(json!({
        "access_token": value, "token_type": "Bearer",
        "expires_in": s.config.token_lifetime_secs, "scope": scope,
    }))
    .into_response()
}

/// A valid bearer token of an application with permissions, or the refusal.
fn authenticate(s: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .ok_or_else(|| Box::new(errors::unauthorised()))?;
    let client_id = {
        let tokens = s.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(&token) {
            Some(i) if i.expires > Instant::now() => i.client_id.clone(),
            _ => return Err(Box::new(errors::unauthorised())),
        }
    };
    if s.config
        .api_clients
        .iter()
        .any(|c| c.client_id == client_id && c.forbidden)
    {
        return Err(Box::new(errors::message(
            StatusCode::FORBIDDEN,
            "You do not have permission to access this resource.",
        )));
    }
    Ok(())
}
