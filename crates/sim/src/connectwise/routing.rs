//! Every request's way in: where the path leads, then the order of an API call — faults (the
//! network or server failing) first, then authentication, throttling, latency, the endpoint.
//!
//! `/login/companyinfo/{company}` needs no authentication; `/_sim/` is the control surface
//! and is never faulted, throttled or counted. Paths ignore empty segments (trailing
//! slashes) and the case of their fixed words; any codebase prefix leads to the API.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::ApiError;
use super::faults::{self, FaultKind};
use super::listing::Params;
use super::{Shared, api, auth, control};
use crate::server::{Conn, drop_connection};

const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Control(Vec<String>),
    CompanyInfo(String),
    /// Segments after `apis/3.0`.
    Api(Vec<String>),
    NotFound,
}

pub fn target(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match segs.as_slice() {
        [first, rest @ ..] if first.eq_ignore_ascii_case("_sim") => Target::Control(own(rest)),
        [login, info, company]
            if login.eq_ignore_ascii_case("login") && info.eq_ignore_ascii_case("companyinfo") =>
        {
            Target::CompanyInfo(company.to_string())
        }
        [_codebase, apis, v, rest @ ..]
            if apis.eq_ignore_ascii_case("apis") && *v == "3.0" && !rest.is_empty() =>
        {
            Target::Api(own(rest))
        }
        [apis, v, rest @ ..]
            if apis.eq_ignore_ascii_case("apis") && *v == "3.0" && !rest.is_empty() =>
        {
            Target::Api(own(rest))
        }
        _ => Target::NotFound,
    }
}

/// The endpoint of a path for statistics (`service/tickets/{id}/notes`) and for fault rules
/// (`service/tickets/notes`).
fn endpoint(segs: &[String]) -> (String, String) {
    let is_id = |s: &String| s.parse::<i64>().is_ok();
    let label = segs
        .iter()
        .map(|s| {
            if is_id(s) {
                "{id}".to_string()
            } else {
                s.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let entity = segs
        .iter()
        .filter(|s| !is_id(s))
        .map(|s| s.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("/");
    (label, entity)
}

pub async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let conn = req.extensions().get::<Conn>().cloned();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::BadRequest("The request body is too large.".into()).into_response();
        }
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let t = target(&path);
    if let Target::Control(segs) = &t {
        return control::handle(&s, &parts.method, segs, &query, &body).await;
    }
    let (label, entity) = match &t {
        Target::Api(segs) => endpoint(segs),
        Target::CompanyInfo(_) => (
            "login/companyinfo".to_string(),
            "login/companyinfo".to_string(),
        ),
        _ => ("unknown".to_string(), "unknown".to_string()),
    };
    let stat = format!("{} /{label}", parts.method);

    // Faults first: a failing network or server fails before anything else happens.
    let mut after_commit = false;
    if let Some(rule) = s.faults.take(&parts.method, &path, |e| {
        faults::endpoint_matches(e, &entity)
    }) {
        match rule.kind {
            FaultKind::Status => {
                let r = faults::status_answer(&rule);
                s.record(&stat, r.status().as_str());
                return r;
            }
            FaultKind::Html => {
                let r = faults::html_answer(&rule);
                s.record(&stat, r.status().as_str());
                return r;
            }
            FaultKind::Body => {
                let r = crate::faults::body_answer(&rule);
                s.record(&stat, r.status().as_str());
                return r;
            }
            FaultKind::Delay => {
                tokio::time::sleep(Duration::from_millis(rule.delay_ms.unwrap_or(1000))).await;
            }
            FaultKind::AfterCommit => after_commit = true,
            FaultKind::Drop => {
                s.record(&stat, "dropped");
                return drop_connection(conn).await;
            }
            FaultKind::Timeout => {
                s.record(&stat, "held");
                tokio::time::sleep(Duration::from_millis(rule.hold_ms.unwrap_or(120_000))).await;
                return drop_connection(conn).await;
            }
        }
    }

    let r = match t {
        Target::CompanyInfo(company) => company_info(&s, &parts.method, &company),
        Target::Api(segs) => {
            let self_url = format!("{}{}", s.base_url, path);
            api_call(
                &s,
                &parts.method,
                &segs,
                &query,
                &parts.headers,
                &body,
                self_url,
            )
            .await
        }
        _ => {
            ApiError::NotFound(format!("The requested URL '{path}' was not found.")).into_response()
        }
    };
    s.record(&stat, r.status().as_str());
    if after_commit {
        return drop_connection(conn).await;
    }
    r
}

async fn api_call(
    s: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    query: &str,
    headers: &axum::http::HeaderMap,
    body: &axum::body::Bytes,
    self_url: String,
) -> Response {
    let caller = match auth::authenticate(&s.config, headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Some(limit) = &s.config.rate_limit
        && let Err(wait) = s.buckets.take(&caller.bucket, limit)
    {
        return ApiError::TooManyRequests(wait).into_response();
    }
    if s.config.base_latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(s.config.base_latency_ms)).await;
    }
    let params = Params::parse(query);
    let req = api::Request {
        method,
        segs,
        params: &params,
        headers,
        body,
        caller: &caller,
        self_url,
    };
    match api::dispatch(s, req) {
        Ok(mut r) => {
            if let Ok(v) = axum::http::HeaderValue::from_str(&s.config.version_code) {
                r.headers_mut().insert("api-current-version", v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /login/companyinfo/{company}`: the codebase, or JSON `null` for an unknown company.
fn company_info(s: &Shared, method: &Method, company: &str) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    if !company.eq_ignore_ascii_case(&s.config.company_id) {
        return axum::Json(Value::Null).into_response();
    }
    let site = s
        .base_url
        .split_once("://")
        .map_or(s.base_url.as_str(), |(_, h)| h);
    axum::Json(json!({
        "CompanyName": s.config.company_name,
        "Codebase": s.config.codebase,
        "VersionCode": s.config.version_code,
        "VersionNumber": "v4.6.2025.1",
        "CompanyID": s.config.company_id,
        "IsCloud": false,
        "SiteUrl": site,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_where_clients_send_them() {
        let api = |v: &[&str]| Target::Api(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            target("/v4_6_release/apis/3.0/company/companies/"),
            api(&["company", "companies"])
        );
        assert_eq!(
            target("/v2025_1/apis/3.0/service/tickets/5/notes"),
            api(&["service", "tickets", "5", "notes"])
        );
        assert_eq!(
            target("/login/companyinfo/demomsp"),
            Target::CompanyInfo("demomsp".into())
        );
        assert_eq!(
            target("/_sim/faults"),
            Target::Control(vec!["faults".into()])
        );
        assert_eq!(target("/v4_6_release/apis/3.0/"), Target::NotFound);
        assert_eq!(target("/"), Target::NotFound);
        let (label, entity) = endpoint(&[
            "service".into(),
            "tickets".into(),
            "7".into(),
            "notes".into(),
        ]);
        assert_eq!(label, "service/tickets/{id}/notes");
        assert_eq!(entity, "service/tickets/notes");
    }
}
