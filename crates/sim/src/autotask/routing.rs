//! Every request's way in: path normalisation, then the pipeline of an API call.
//!
//! Paths are matched case-insensitively with an optional trailing slash, as Autotask's IIS
//! does. The pipeline of an API call is the order a real tenant and the network impose:
//! faults (the network or server failing) first, then authentication, the hourly threshold
//! (with its latency), the per-endpoint thread limit, and only then the entity routes.
//! Zone discovery needs no authentication and is exempt from limits; `/_sim/` is the
//! simulator's own control surface and is never faulted or limited.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::{ApiError, iis_page};
use super::faults::{self, FaultKind};
use super::{Shared, auth, control, entities, limits};
use crate::server::{Conn, drop_connection};

/// Bodies larger than this are refused (IIS's default request limit is about 28 MB; Autotask
/// entities are far smaller).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// IIS refuses longer query strings (`maxQueryString`, 2048 by default) with a 404.15.
const MAX_QUERY_STRING: usize = 2048;

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `/_sim/...`: the control surface (segments after `_sim`).
    Control(Vec<String>),
    /// `/ATServicesRest/VersionInformation`.
    VersionInformation,
    /// `/ATServicesRest/V1.0/...` (segments after `V1.0`, as sent).
    Api(Vec<String>),
    NotFound,
}

/// Normalise a path: case-insensitive prefixes, empty segments (trailing slash) ignored.
pub fn normalise(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match segs.as_slice() {
        [first, rest @ ..] if first.eq_ignore_ascii_case("_sim") => {
            Target::Control(rest.iter().map(|s| s.to_string()).collect())
        }
        [root, v]
            if root.eq_ignore_ascii_case("atservicesrest")
                && v.eq_ignore_ascii_case("versioninformation") =>
        {
            Target::VersionInformation
        }
        [root, version, rest @ ..]
            if root.eq_ignore_ascii_case("atservicesrest")
                && version.eq_ignore_ascii_case("v1.0")
                && !rest.is_empty() =>
        {
            Target::Api(rest.iter().map(|s| s.to_string()).collect())
        }
        _ => Target::NotFound,
    }
}

/// The entry point of every request.
pub async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let conn = req.extensions().get::<Conn>().cloned();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return iis_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 - Request Entity Too Large",
            );
        }
    };
    match normalise(parts.uri.path()) {
        Target::Control(segs) => {
            control::handle(&s, &parts.method, &segs, parts.uri.query(), &body).await
        }
        Target::NotFound => ApiError::NotFound.into_response(),
        Target::VersionInformation => {
            if parts.method == Method::GET {
                axum::Json(json!({"apiVersions": ["1.0"]})).into_response()
            } else {
                ApiError::MethodNotAllowed(parts.method).into_response()
            }
        }
        Target::Api(rest) => {
            let call = Call {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                body,
                rest,
            };
            api(&s, call, conn).await
        }
    }
}

struct Call {
    method: Method,
    path: String,
    query: String,
    headers: axum::http::HeaderMap,
    body: Bytes,
    rest: Vec<String>,
}

async fn api(s: &Arc<Shared>, call: Call, conn: Option<Conn>) -> Response {
    let first = call.rest.first().cloned().unwrap_or_default();
    if call.rest.len() == 1 && first.eq_ignore_ascii_case("zoneInformation") {
        let r = zone_information(s, &call);
        s.record("zoneInformation", call.method.as_str(), r.status().as_str());
        return r;
    }
    let bucket = s.bucket_of(&call.rest);
    if call.query.len() > MAX_QUERY_STRING {
        let r = ApiError::QueryStringTooLong.into_response();
        s.record(&bucket, call.method.as_str(), r.status().as_str());
        return r;
    }

    // Faults first: a failing network or server fails before anything else happens.
    let mut extra = Duration::ZERO;
    let mut after_commit = false;
    if let Some(rule) = s.faults.take(&call.method, &call.path, |e| {
        e.eq_ignore_ascii_case(&first) || e.eq_ignore_ascii_case(&bucket)
    }) {
        let answer = match rule.kind {
            FaultKind::Status => Some(faults::status_answer(&rule)),
            FaultKind::Html => Some(faults::html_answer(&rule)),
            FaultKind::Body => Some(crate::faults::body_answer(&rule)),
            FaultKind::Delay => {
                extra = Duration::from_millis(rule.delay_ms.unwrap_or(1000));
                None
            }
            FaultKind::AfterCommit => {
                after_commit = true;
                None
            }
            FaultKind::Drop => {
                s.record(&bucket, call.method.as_str(), "dropped");
                return drop_connection(conn).await;
            }
            FaultKind::Timeout => {
                s.record(&bucket, call.method.as_str(), "held");
                tokio::time::sleep(Duration::from_millis(rule.hold_ms.unwrap_or(120_000))).await;
                return drop_connection(conn).await;
            }
        };
        if let Some(r) = answer {
            s.record(&bucket, call.method.as_str(), r.status().as_str());
            return r;
        }
    }

    let r = authorised(s, &call, &bucket, extra).await;
    s.record(&bucket, call.method.as_str(), r.status().as_str());
    if after_commit {
        return drop_connection(conn).await;
    }
    r
}

/// Authentication, limits, then the entity routes.
async fn authorised(s: &Arc<Shared>, call: &Call, bucket: &str, extra: Duration) -> Response {
    let caller = match auth::authenticate(&s.config.api_users, &call.headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let limit = u64::from(s.config.hourly_limit.max(1));
    let used = {
        let mut w = s.window.lock().unwrap_or_else(|p| p.into_inner());
        w.admit(limit)
    };
    let used = match used {
        Ok(u) => u,
        Err(_) => {
            return ApiError::TooManyRequests(format!(
                "The request threshold of {limit} requests per 60 minutes for this Autotask database has been exceeded. API requests are refused until the number of requests in the last 60 minutes falls below the threshold."
            ))
            .into_response();
        }
    };
    let mut delay = Duration::from_millis(s.config.base_latency_ms) + extra;
    if s.config.latency_tiers {
        delay += limits::tier_latency(used, limit);
    }
    let Some(_slot) =
        s.threads
            .acquire(&caller.user.integration_code, bucket, s.config.thread_limit)
    else {
        return ApiError::TooManyRequests(format!(
            "Thread Threshold Exceeded: the Autotask API thread threshold of {} threads has been exceeded for the {bucket} endpoint of this integration. Internal code: Itgenatr005",
            s.config.thread_limit
        ))
        .into_response();
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(call.query.as_bytes())
        .into_owned()
        .collect();
    let req = entities::Request {
        method: &call.method,
        rest: &call.rest,
        params: &params,
        body: &call.body,
        caller: &caller,
    };
    match entities::dispatch(s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `GET zoneInformation?user=`: no authentication, no limits; points back at this simulator.
fn zone_information(s: &Shared, call: &Call) -> Response {
    if call.method != Method::GET {
        return ApiError::MethodNotAllowed(call.method.clone()).into_response();
    }
    let user = url::form_urlencoded::parse(call.query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("user"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    if !auth::known_user(&s.config.api_users, &user) {
        return ApiError::Server("Zone information could not be determined".into()).into_response();
    }
    axum::Json(json!({
        "zoneName": s.config.zone_name,
        "url": s.zone_url,
        "webUrl": format!("{}/", s.base_url),
        "ci": s.config.ci,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        let api = |v: &[&str]| Target::Api(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            normalise("/atservicesrest/v1.0/tickets/query"),
            api(&["tickets", "query"])
        );
        assert_eq!(
            normalise("/ATServicesRest/V1.0/Tickets/query/"),
            api(&["Tickets", "query"])
        );
        assert_eq!(normalise("/ATServicesRest/V1.05/Tickets"), Target::NotFound);
        assert_eq!(normalise("/ATServicesRest/V1.0/"), Target::NotFound);
        assert_eq!(
            normalise("/atservicesrest/versioninformation"),
            Target::VersionInformation
        );
        assert_eq!(
            normalise("/_sim/faults"),
            Target::Control(vec!["faults".into()])
        );
        assert_eq!(normalise("/"), Target::NotFound);
    }
}
