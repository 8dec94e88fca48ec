//! People: local login (password, TOTP, recovery codes), server-side sessions, CSRF, the users
//! of each partner, and the one middleware that enforces the permission matrix on every route.
//!
//! Decisions come from `psabridge_identity` (roles, passwords, TOTP, throttling); this module
//! speaks HTTP and keeps the order that matters for security: throttling first, then the
//! credentials, and only then policy (deactivated, no membership), so that a failure never
//! says whether an email has an account.
//!
//! A bearer-token request is checked here against the same [`Access`] entry through the
//! token's scopes (`psabridge_identity::scopes`); each handler still checks the token's partner. A request with a session cookie (and no bearer
//! token) is resolved here into a [`Caller`] for the partner it acts on, with that partner's
//! role checked against the route's [`Access`] entry in [`crate::ROUTES`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use psabridge_identity::password::PasswordHashing;
use psabridge_identity::people::{EMAIL_MAX_CHARS, check_length};
use psabridge_identity::scopes::Need;
use psabridge_identity::secret_token::{constant_time_eq, new_token, token_hash};
use psabridge_identity::throttle::{Attempt, Decision, Failures, Policy};
use psabridge_identity::{Permission, Role, allows, recovery, totp};
use psabridge_store::StoreError;
use psabridge_store::audit::NewAuditEntry;
use psabridge_store::identity::{LoginWindows, Membership, NewSession, Session, User};
use psabridge_store::invitations::Invitee;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Actor, Caller, Principal};
use crate::problem::{Problem, parse_json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler authenticates if it needs to (login, signed PSA callouts, health).
    Public,
    /// Any logged-in person, for their own account (session, TOTP, logout).
    Session,
    /// A route of the partner named by `{p}`: a person needs an active membership there
    /// (404 otherwise, as for a partner that does not exist) and a role that grants this.
    Partner(Permission),
    /// A route without `{p}` that acts for the caller's partner: for a person, the partner
    /// chosen at login (or their only one), with a role that grants this.
    Acting(Permission),
    /// API tokens only (event ingestion, vendor administration); people get 403.
    TokenOnly,
}

/// Login and session settings.
pub struct AccountsConfig {
    /// Mark cookies `Secure` (and name them `__Host-…`). Off only for a plain-http demo on
    /// the loopback interface.
    pub secure_cookies: bool,
    pub hashing: PasswordHashing,
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active.
    pub absolute_timeout: Duration,
    /// How long an invitation (and its password link) or a password setup link works.
    pub setup_link_lifetime: Duration,
    pub throttle: Policy,
    pub clock: Clock,
    /// Where account emails (invitations) go; `None`: the `[smtp]` server if there is one.
    /// The demo writes them to a folder.
    pub mailer: Option<std::sync::Arc<dyn psabridge_engine::mail::Mailer>>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for throttling, sessions and
    /// the audit log). Empty: the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            secure_cookies: true,
            hashing: PasswordHashing::PRODUCTION,
            idle_timeout: Duration::from_secs(8 * 3600),
            absolute_timeout: Duration::from_secs(12 * 3600),
            setup_link_lifetime: Duration::from_secs(7 * 24 * 3600),
            throttle: Policy::DEFAULT,
            clock: Clock::default(),
            mailer: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl AccountsConfig {
    pub(crate) fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-psab_session"
        } else {
            "psab_session"
        }
    }

    pub(crate) fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.cookie_name()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The time logins and sessions are judged by. Real time plus an offset that only tests move
/// (TOTP codes are single-use per 30-second step; tests step the clock instead of sleeping).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Move this clock forward (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

/// The logged-in person of a cookie-authenticated request.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub session: Session,
    pub user: User,
    /// The active memberships the session reaches: the one of its partner, or all of them
    /// for a person-wide session. The permission check looks only here, so a session
    /// opened for one partner never acts at another.
    pub memberships: Vec<Membership>,
}

impl SessionUser {
    pub(crate) fn actor(&self) -> Actor {
        Actor::user(self.user.id, &self.user.email)
    }

    pub(crate) fn role_at(&self, partner: &str) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.partner_id == partner)
            .and_then(|m| Role::parse(&m.role))
    }
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<SessionUser>()
            .cloned()
            .ok_or_else(|| Problem::unauthorized("log in first: this needs a session cookie"))
    }
}

/// The logged-in person, if the request came with a session (not with a bearer token).
pub struct CurrentUser(pub Option<SessionUser>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(CurrentUser(parts.extensions.get::<SessionUser>().cloned()))
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/session", get(current_session))
        .route("/api/v1/auth/sessions", get(list_sessions))
        .route("/api/v1/auth/sessions/{id}", delete(revoke_session))
        .route("/api/v1/auth/totp/enroll", post(totp_enroll))
        .route("/api/v1/auth/totp/confirm", post(totp_confirm))
        .route("/api/v1/auth/password", post(set_password))
        .route(
            "/api/v1/partners/{p}/users",
            get(list_users).post(crate::invitations::add_user),
        )
        .route(
            "/api/v1/partners/{p}/users/{user}",
            patch(patch_user).delete(remove_user),
        )
}

// ---- the permission middleware ------------------------------------------------------------

pub(crate) fn session_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The value of the `{name}` segment of `uri_path` routed as `template`.
fn path_parameter(template: &str, uri_path: &str, name: &str) -> Option<String> {
    let wanted = format!("{{{name}}}");
    let index = template.split('/').position(|s| s == wanted)?;
    let raw = uri_path.split('/').nth(index)?;
    Some(percent_decode(raw))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolve the session of a cookie, sliding its expiry.
async fn resolve_session(s: &AppState, cookie: &str) -> Result<Option<SessionUser>, Problem> {
    let cfg = &s.accounts;
    let now = cfg.clock.now_ms();
    let Some(session) = s.store.session_by_hash(&token_hash(cookie), now).await? else {
        return Ok(None);
    };
    let Some(user) = s.store.user_by_id(session.user_id).await? else {
        return Ok(None);
    };
    if now - session.last_seen_at > 60_000 {
        let expires = (now + cfg.idle_timeout.as_millis() as i64)
            .min(session.created_at + cfg.absolute_timeout.as_millis() as i64);
        s.store.touch_session(session.id, now, expires).await?;
    }
    let scope = session.partner_id.clone();
    let memberships = s
        .store
        .memberships_of(user.id)
        .await?
        .into_iter()
        .filter(|m| m.active && scope.as_ref().is_none_or(|p| *p == m.partner_id))
        .collect();
    Ok(Some(SessionUser {
        session,
        user,
        memberships,
    }))
}

/// The one place the permission matrix is enforced: every routed request passes here.
pub async fn enforce(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    match authorize(&s, &mut req).await {
        Ok(()) => next.run(req).await,
        // The portal's refusals are pages (the same status and words).
        Err(p) if crate::portal::is_portal_path(req.uri().path()) => crate::portal::page_error(p),
        Err(p) => p.into_response(),
    }
}

/// The `csrf_token` field of an HTML form's body (the portal's forms carry the session's
/// token there, as scripts send it in `X-CSRF-Token`); the body is put back for the handler.
async fn csrf_from_form(req: &mut Request) -> Result<String, Problem> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(String::new());
    }
    let body = std::mem::replace(req.body_mut(), axum::body::Body::empty());
    let bytes = axum::body::to_bytes(body, crate::MAX_BODY)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    *req.body_mut() = axum::body::Body::from(bytes);
    Ok(token)
}

async fn authorize(s: &AppState, req: &mut Request) -> Result<(), Problem> {
    if let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip =
            psabridge_identity::throttle::client_ip(peer, &forwarded, &s.accounts.trusted_proxies);
        req.extensions_mut().insert(ClientIp(ip));
    }
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return Ok(());
    };
    let method = req.method().clone();
    // HEAD is served by GET routes.
    let lookup = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let Some(access) = crate::access_of(lookup, &template) else {
        // Another method of a routed path: the router answers 405 (with `Allow`).
        if crate::ROUTES
            .iter()
            .any(|(r, _)| r.split_once(' ').is_some_and(|(_, p)| p == template))
        {
            return Ok(());
        }
        return Err(Problem::internal(format!(
            "{method} {template} has no entry in the permission table"
        )));
    };
    if access == Access::Public {
        // Public pages still know who is signed in (the portal's `/` and `/login` send a
        // signed-in person on); an unknown or ended session is simply nobody here.
        let user = match session_cookie(req.headers(), s.accounts.cookie_name()) {
            Some(cookie) => resolve_session(s, cookie).await.ok().flatten(),
            None => None,
        };
        if let Some(user) = user {
            req.extensions_mut().insert(user);
        }
        return Ok(());
    }
    if req.headers().contains_key(header::AUTHORIZATION) {
        if access == Access::Session {
            // A person's own account: the handler refuses tokens.
            return Ok(());
        }
        // A token: its scopes decide, against the same entry (handlers still check its
        // partner).
        let (caller, grant) = crate::auth::authenticate_bearer(s, req.headers()).await?;
        let need = match access {
            Access::Partner(p) | Access::Acting(p) => Some(Need::Permission(p)),
            _ => crate::auth::token_only_need(&format!("{lookup} {template}")),
        };
        if let Some(scope) = grant.lacks(need) {
            return Err(Problem::forbidden(&format!(
                "the token lacks the scope {scope} needed for {method} {template}"
            )));
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(grant);
        return Ok(());
    }
    let cookie = session_cookie(req.headers(), s.accounts.cookie_name()).map(str::to_string);
    let Some(cookie) = cookie else {
        // No credentials at all: the handler's own extractor answers 401 as before.
        return Ok(());
    };
    let Some(user) = resolve_session(s, &cookie).await? else {
        return Err(Problem::unauthorized(
            "the session has ended or is unknown; log in again",
        ));
    };
    let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let header_token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let sent = if header_token.is_empty() {
            csrf_from_form(req).await?
        } else {
            header_token
        };
        if !constant_time_eq(&sent, &user.session.csrf_token) {
            return Err(Problem::forbidden(
                "send the session's CSRF token in the X-CSRF-Token header (or a form's csrf_token field)",
            ));
        }
    }
    let acting_partner = match access {
        Access::Public => unreachable!("handled above"),
        Access::Session => None,
        Access::TokenOnly => {
            return Err(Problem::forbidden("this needs an API token, not a login"));
        }
        Access::Partner(permission) => {
            let partner = path_parameter(&template, req.uri().path(), "p").unwrap_or_default();
            let Some(role) = user.role_at(&partner) else {
                // The same answer as for a partner that does not exist.
                return Err(Problem::not_found(format!("partner '{partner}'")));
            };
            if !allows(role, permission) {
                return Err(Problem::forbidden(&format!(
                    "the role {} does not allow {}",
                    role.label(),
                    permission.as_str()
                )));
            }
            Some(partner)
        }
        Access::Acting(permission) => {
            let partner = user.session.partner_id.clone().or_else(|| {
                (user.memberships.len() == 1).then(|| user.memberships[0].partner_id.clone())
            });
            let Some((partner, role)) = partner.and_then(|p| user.role_at(&p).map(|r| (p, r)))
            else {
                return Err(Problem::forbidden(
                    "choose a partner: log in with `partner`, or use the partner's own routes",
                ));
            };
            if !allows(role, permission) {
                return Err(Problem::forbidden(&format!(
                    "the role {} does not allow {}",
                    role.label(),
                    permission.as_str()
                )));
            }
            Some(partner)
        }
    };
    if let Some(partner) = acting_partner {
        req.extensions_mut()
            .insert(Caller(Principal::Partner(partner), user.actor()));
    }
    req.extensions_mut().insert(user);
    Ok(())
}

// ---- helpers ------------------------------------------------------------------------------

pub(crate) fn body_json(bytes: &Bytes) -> Result<serde_json::Map<String, Value>, Problem> {
    match parse_json(bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(Problem::invalid(vec![
            psabridge_core::event::FieldError::new("", "must be a JSON object"),
        ])),
    }
}

/// A string member of the body; `None` when absent or null; 422 naming the field otherwise.
pub(crate) fn string_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<String>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) if required => {
            Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
                .field(name, "is required"))
        }
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if required && s.trim().is_empty() => {
            Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
                .field(name, "must not be empty"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
            .field(name, "must be a string")),
    }
}

pub(crate) fn invalid(field: &str, problem: &str) -> Problem {
    Problem::invalid(vec![psabridge_core::event::FieldError::new(field, problem)])
}

/// The client of a request, behind the operator's trusted proxies: put in the request's
/// extensions by [`enforce`] before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

fn client_ip(parts_ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    parts_ext
        .get::<ClientIp>()
        .map(|c| c.0)
        .or_else(|| parts_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}

/// The key failed logins from this client are counted under (an IPv6 client by its /64).
pub(crate) fn throttle_key(parts_ext: &axum::http::Extensions) -> String {
    client_ip(parts_ext)
        .map(psabridge_identity::throttle::address_key)
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn client_address(parts_ext: &axum::http::Extensions) -> String {
    client_ip(parts_ext)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Record an account event once per partner the person belongs to (so that each partner's
/// audit log shows its staff's logins), or once vendor-wide if they belong to none.
pub(crate) async fn audit_account(
    s: &AppState,
    partners: &[String],
    actor: &str,
    action: &str,
    target: &str,
    after: Option<Value>,
) -> Result<(), Problem> {
    let now = s.accounts.clock.now_ms();
    let targets: Vec<Option<&str>> = if partners.is_empty() {
        vec![None]
    } else {
        partners.iter().map(|p| Some(p.as_str())).collect()
    };
    for partner_id in targets {
        s.store
            .record_audit(
                &NewAuditEntry {
                    partner_id,
                    actor,
                    action,
                    target,
                    before: None,
                    after: after.as_ref(),
                },
                now,
            )
            .await?;
    }
    Ok(())
}

pub(crate) fn partner_ids(memberships: &[Membership]) -> Vec<String> {
    memberships.iter().map(|m| m.partner_id.clone()).collect()
}

pub(crate) fn memberships_view(memberships: &[Membership]) -> Value {
    Value::Array(
        memberships
            .iter()
            .filter(|m| m.active)
            .map(|m| json!({"partner": m.partner_id, "role": m.role}))
            .collect(),
    )
}

pub(crate) fn user_view(u: &User) -> Value {
    json!({"id": u.id, "email": u.email, "name": u.name, "totp_enabled": u.totp_enabled})
}

fn session_view(s: &Session, current: Option<i64>) -> Value {
    json!({
        "id": s.id,
        "partner": s.partner_id,
        "auth_method": s.auth_method,
        "client_address": s.client_address,
        "created_at": psabridge_store::from_millis(s.created_at),
        "last_seen_at": psabridge_store::from_millis(s.last_seen_at),
        "expires_at": psabridge_store::from_millis(s.expires_at),
        "current": current == Some(s.id),
    })
}

pub(crate) async fn verify_password(
    hashing: PasswordHashing,
    password: String,
    hash: Option<String>,
) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => hashing.verify(&password, &h),
        None => {
            hashing.verify_nothing(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

// ---- login and sessions -------------------------------------------------------------------

fn login_failed() -> Problem {
    Problem::unauthorized("the email, password or code is wrong")
}

/// Login and password setup take JSON only: a cross-site HTML form cannot send that without
/// the browser asking first (CORS), so another site cannot log a visitor into its own account.
fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                .detail("send the body as application/json"),
        )
    }
}

/// The throttling decision for a login attempt on `email` from throttling key `key`.
pub(crate) async fn throttle_decision(
    s: &AppState,
    email: &str,
    key: &str,
    second_factor: bool,
    now: i64,
) -> Result<Decision, Problem> {
    let policy = &s.accounts.throttle;
    let facts = s
        .store
        .login_facts(
            email,
            key,
            LoginWindows {
                pair_and_address_since: now - policy.window_seconds as i64 * 1000,
                account_since: now - policy.account_window_seconds as i64 * 1000,
                known_since: now - i64::from(policy.known_address_days) * 86_400_000,
            },
        )
        .await?;
    let failures = |f: psabridge_store::identity::FailureCount| Failures {
        count: f.count.clamp(0, u32::MAX as i64) as u32,
        last_at_ms: f.last_at,
    };
    Ok(policy.decide(
        &Attempt {
            pair: failures(facts.pair),
            account: failures(facts.account),
            address: failures(facts.address),
            known_address: facts.known_address,
            second_factor,
        },
        now,
    ))
}

/// The answer to an attempt throttling refuses (audited), or `None` to go on.
pub(crate) async fn throttle_refusal(
    s: &AppState,
    decision: Decision,
    email: &str,
    address: &str,
) -> Result<Option<Response>, Problem> {
    let (action, detail, response) = match decision {
        Decision::Check | Decision::CheckWithSecondFactor => return Ok(None),
        Decision::Wait(seconds) => {
            let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins")
                .detail(format!("try again in {seconds} s"))
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            (
                "auth.login_throttled",
                json!({"retry_after_seconds": seconds, "client_address": address}),
                resp,
            )
        }
        Decision::SecondFactorRequired => (
            "auth.login_guarded",
            json!({"client_address": address}),
            Problem::unauthorized(
                "this account is receiving many failed logins: from an address it has not \
                 logged in from lately, log in with the TOTP code (or a recovery code) too",
            )
            .with("second_factor_required", json!(true))
            .into_response(),
        ),
    };
    audit_account(
        s,
        &[],
        &format!("address:{address}"),
        action,
        &format!("email:{email}"),
        Some(detail),
    )
    .await?;
    Ok(Some(response))
}

async fn login(State(s): State<AppState>, req: Request) -> Result<Response, Problem> {
    require_json(req.headers())?;
    let address = client_address(req.extensions());
    let key = throttle_key(req.extensions());
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    let body = body_json(&bytes)?;
    let credentials = Credentials {
        email: string_field(&body, "email", true)?.unwrap_or_default(),
        password: string_field(&body, "password", true)?.unwrap_or_default(),
        totp_code: string_field(&body, "totp_code", false)?,
        recovery_code: string_field(&body, "recovery_code", false)?,
        partner: string_field(&body, "partner", false)?,
    };
    let l = match log_in(&s, credentials, &address, &key).await? {
        Ok(logged_in) => logged_in,
        Err(refusal) => return Ok(refusal),
    };
    let mut resp = Json(json!({
        "user": user_view(&l.user),
        "session": {"id": l.session_row, "auth_method": l.auth_method, "expires_at": psabridge_store::from_millis(l.expires_at)},
        "partner": l.partner,
        "memberships": memberships_view(&l.memberships),
        "csrf_token": l.csrf_token,
    }))
    .into_response();
    resp.headers_mut().insert(header::SET_COOKIE, l.cookie);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// What a password login brings, from the JSON API or the portal's form.
pub(crate) struct Credentials {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    /// The partner the session is for (needed when the person belongs to several).
    pub partner: Option<String>,
}

/// A session opened by [`log_in`].
pub(crate) struct LoggedIn {
    pub user: User,
    pub session_row: i64,
    pub auth_method: &'static str,
    pub expires_at: i64,
    pub partner: Option<String>,
    /// The memberships the session reaches.
    pub memberships: Vec<Membership>,
    pub csrf_token: String,
    /// `Set-Cookie` for the session.
    pub cookie: HeaderValue,
}

/// A password login, the one way both the JSON API and the portal check one: throttling
/// before any credential, password then second factor, the account's and the partner's
/// policy (deactivation, "require the IdP"), then the session, audited. `Ok(Err(response))`
/// is a throttling refusal to send as it is (429 with Retry-After, or a demand for the code);
/// `Err` a refusal as problem+json (wrong credentials, a code required, not a member).
pub(crate) async fn log_in(
    s: &AppState,
    credentials: Credentials,
    address: &str,
    key: &str,
) -> Result<Result<LoggedIn, Response>, Problem> {
    let Credentials {
        email,
        password,
        totp_code,
        recovery_code,
        partner: wanted_partner,
    } = credentials;
    // No account has a longer one; refused before anything is counted or stored.
    check_length(&email, EMAIL_MAX_CHARS).map_err(|e| invalid("email", &e))?;
    let (address, key) = (address.to_string(), key.to_string());
    let cfg = &s.accounts;
    let now = cfg.clock.now_ms();

    // 1. Throttling, before any credential is checked.
    let second_factor = totp_code.is_some() || recovery_code.is_some();
    let decision = throttle_decision(s, &email, &key, second_factor, now).await?;
    if let Some(refusal) = throttle_refusal(s, decision, &email, &address).await? {
        return Ok(Err(refusal));
    }
    let code_required = decision == Decision::CheckWithSecondFactor;

    // 2. Credentials: password, then the second factor.
    let user = s.store.user_by_email(&email).await?;
    let password_ok = verify_password(
        cfg.hashing,
        password,
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await;
    let memberships = match &user {
        Some(u) => s.store.memberships_of(u.id).await?,
        None => Vec::new(),
    };
    let fail = async |reason: &str| -> Result<Result<LoggedIn, Response>, Problem> {
        s.store.record_login_failure(&email, &key, now).await?;
        let (actor, target) = match &user {
            Some(u) => (
                format!("user:{} {:?}", u.id, u.email),
                format!("user:{}", u.id),
            ),
            None => (format!("address:{address}"), format!("email:{email}")),
        };
        audit_account(
            s,
            &partner_ids(&memberships),
            &actor,
            "auth.login_failed",
            &target,
            Some(json!({"reason": reason, "client_address": address})),
        )
        .await?;
        Err(login_failed())
    };
    let Some(user) = user.clone().filter(|_| password_ok) else {
        return fail("password").await;
    };
    let auth_method = if user.totp_enabled {
        if let Some(code) = totp_code {
            let secret = s
                .store
                .totp_secret(user.id)
                .await?
                .ok_or_else(|| Problem::internal("TOTP enabled without a secret"))?;
            let secret = totp::secret_from_base32(secret.expose()).map_err(Problem::internal)?;
            let last = user.totp_last_step.map(|s| s.max(0) as u64);
            match totp::verify(&secret, &code, (now / 1000) as u64, last) {
                Ok(step) if s.store.accept_totp_step(user.id, step as i64).await? => {
                    "password_totp"
                }
                Ok(_) | Err(totp::TotpError::Replayed) => return fail("totp_replayed").await,
                Err(_) => return fail("totp").await,
            }
        } else if let Some(code) = recovery_code {
            if !s
                .store
                .use_recovery_code(user.id, &recovery::hash(&code), now)
                .await?
            {
                return fail("recovery_code").await;
            }
            "recovery_code"
        } else {
            // The password was right; the person must add their code. Not a failure.
            return Err(
                Problem::unauthorized("a TOTP code or a recovery code is required")
                    .with("second_factor_required", json!(true)),
            );
        }
    } else if code_required {
        // The account is guarded and has no second factor to check: from this address it
        // cannot log in until the attack subsides (from a known one it can).
        return fail("second_factor_unavailable").await;
    } else {
        "password"
    };

    // 3. Policy, only now that the credentials are proven.
    let active: Vec<Membership> = memberships.iter().filter(|m| m.active).cloned().collect();
    if !user.active || active.is_empty() {
        audit_account(
            s,
            &partner_ids(&memberships),
            &format!("user:{} {:?}", user.id, user.email),
            "auth.login_refused",
            &format!("user:{}", user.id),
            Some(json!({"reason": "deactivated"})),
        )
        .await?;
        return Err(Problem::forbidden(
            "this account is deactivated or belongs to no partner",
        ));
    }
    // "Require login with the IdP": refuses a non-exempt person here (audited).
    crate::sso::enforce_local_login(s, &user, &active).await?;
    let partner = match wanted_partner {
        Some(p) if active.iter().any(|m| m.partner_id == p) => Some(p),
        Some(_) => return Err(invalid("partner", "you are not a member of this partner")),
        None if active.len() == 1 => Some(active[0].partner_id.clone()),
        None => None,
    };

    // 4. The session.
    let session_id = new_token();
    let csrf = new_token();
    let expires_at = now + cfg.idle_timeout.as_millis() as i64;
    let id = s
        .store
        .create_session(
            &NewSession {
                id_hash: &token_hash(&session_id),
                user_id: user.id,
                partner_id: partner.as_deref(),
                auth_method,
                idp_sid: None,
                csrf_token: &csrf,
                client_address: Some(&address),
                expires_at,
            },
            now,
        )
        .await?;
    s.store.record_login_success(&email, &key, now).await?;
    // The session reaches its partner, or every active membership when it has none; the
    // login is recorded there, not at the person's other partners.
    let reached_memberships: Vec<Membership> = active
        .iter()
        .filter(|m| partner.as_ref().is_none_or(|p| *p == m.partner_id))
        .cloned()
        .collect();
    let reached = partner_ids(&reached_memberships);
    audit_account(
        s,
        &reached,
        &format!("user:{} {:?}", user.id, user.email),
        "auth.login",
        &format!("session:{id}"),
        Some(json!({"auth_method": auth_method, "client_address": address})),
    )
    .await?;
    Ok(Ok(LoggedIn {
        user,
        session_row: id,
        auth_method,
        expires_at,
        partner,
        memberships: reached_memberships,
        csrf_token: csrf,
        cookie: cfg.cookie(&session_id, cfg.idle_timeout.as_secs()),
    }))
}

async fn logout(State(s): State<AppState>, me: SessionUser) -> Result<Response, Problem> {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, end_session(&s, &me).await?);
    Ok(resp)
}

/// End the request's session (audited); the `Set-Cookie` that clears the cookie. The API's
/// logout and the portal's.
pub(crate) async fn end_session(s: &AppState, me: &SessionUser) -> Result<HeaderValue, Problem> {
    let now = s.accounts.clock.now_ms();
    s.store
        .revoke_session(me.user.id, me.session.id, now)
        .await?;
    audit_account(
        s,
        &partner_ids(&me.memberships),
        &me.actor().0,
        "auth.logout",
        &format!("session:{}", me.session.id),
        None,
    )
    .await?;
    Ok(s.accounts.cookie("", 0))
}

async fn current_session(me: SessionUser) -> Json<Value> {
    Json(json!({
        "user": user_view(&me.user),
        "session": session_view(&me.session, Some(me.session.id)),
        "partner": me.session.partner_id,
        "memberships": memberships_view(&me.memberships),
        "csrf_token": me.session.csrf_token,
    }))
}

async fn list_sessions(State(s): State<AppState>, me: SessionUser) -> Result<Json<Value>, Problem> {
    let sessions = s
        .store
        .sessions_of(me.user.id, s.accounts.clock.now_ms())
        .await?;
    Ok(Json(json!({
        "sessions": sessions.iter().map(|x| session_view(x, Some(me.session.id))).collect::<Vec<_>>()
    })))
}

async fn revoke_session(
    State(s): State<AppState>,
    me: SessionUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id: i64 = id
        .parse()
        .map_err(|_| Problem::not_found(format!("session {id}")))?;
    s.store
        .revoke_session(me.user.id, id, s.accounts.clock.now_ms())
        .await?;
    audit_account(
        &s,
        &partner_ids(&me.memberships),
        &me.actor().0,
        "auth.session_revoked",
        &format!("session:{id}"),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- TOTP enrolment -----------------------------------------------------------------------

async fn totp_enroll(State(s): State<AppState>, me: SessionUser) -> Result<Json<Value>, Problem> {
    let (base32, uri) = start_totp_enrolment(&s, &me).await?;
    Ok(Json(json!({
        "secret": base32,
        "otpauth_uri": uri,
        "digits": totp::DIGITS,
        "period": totp::STEP_SECONDS,
        "algorithm": "SHA1",
    })))
}

/// Begin enrolling an authenticator: a new secret kept pending until a code proves the app
/// has it; (the secret in base32, its `otpauth://` URI). The API's and the portal's.
pub(crate) async fn start_totp_enrolment(
    s: &AppState,
    me: &SessionUser,
) -> Result<(String, String), Problem> {
    if me.user.totp_enabled {
        return Err(Problem::new(StatusCode::CONFLICT, "Conflict")
            .detail("an authenticator is already enrolled"));
    }
    let secret = totp::new_secret();
    let base32 = totp::secret_base32(&secret);
    s.store.set_pending_totp(me.user.id, &base32).await?;
    let uri =
        totp::otpauth_uri(&secret, &me.user.email, "PSA Bridge").map_err(Problem::internal)?;
    audit_account(
        s,
        &partner_ids(&me.memberships),
        &me.actor().0,
        "auth.totp_enrolment_started",
        &format!("user:{}", me.user.id),
        None,
    )
    .await?;
    Ok((base32, uri))
}

async fn totp_confirm(
    State(s): State<AppState>,
    me: SessionUser,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let body = body_json(&body)?;
    let code = string_field(&body, "code", true)?.unwrap_or_default();
    let codes = confirm_totp_enrolment(&s, &me, &code).await?;
    Ok(Json(json!({"recovery_codes": codes})))
}

/// Finish enrolling: the app's first code turns the pending secret on; the recovery codes,
/// shown once. The API's and the portal's.
pub(crate) async fn confirm_totp_enrolment(
    s: &AppState,
    me: &SessionUser,
    code: &str,
) -> Result<Vec<String>, Problem> {
    let Some(pending) = s.store.pending_totp(me.user.id).await? else {
        return Err(Problem::new(StatusCode::CONFLICT, "Conflict")
            .detail("no enrolment is pending; call /api/v1/auth/totp/enroll first"));
    };
    let secret = totp::secret_from_base32(pending.expose()).map_err(Problem::internal)?;
    let now = s.accounts.clock.now_ms();
    let step = totp::verify(&secret, code, (now / 1000) as u64, None)
        .map_err(|_| invalid("code", "the code is wrong or expired"))?;
    let codes = recovery::generate();
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    s.store
        .confirm_totp(me.user.id, step as i64, &hashes)
        .await?;
    audit_account(
        s,
        &partner_ids(&me.memberships),
        &me.actor().0,
        "auth.totp_enrolled",
        &format!("user:{}", me.user.id),
        None,
    )
    .await?;
    Ok(codes)
}

// ---- password setup -----------------------------------------------------------------------

async fn set_password(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    require_json(&headers)?;
    let body = body_json(&body)?;
    let token = string_field(&body, "token", true)?.unwrap_or_default();
    let password = string_field(&body, "password", true)?.unwrap_or_default();
    set_password_with_token(&s, &token, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a password with a link's token: an invitation's (which it accepts) or an operator's
/// password link (which ends the person's sessions). The API's `POST /api/v1/auth/password`
/// and the portal's page both come here.
pub(crate) async fn set_password_with_token(
    s: &AppState,
    token: &str,
    password: String,
) -> Result<(), Problem> {
    let now = s.accounts.clock.now_ms();
    let hash = token_hash(token);
    let unknown = || invalid("token", "the link is unknown, used or expired");
    let hashing = s.accounts.hashing;
    let hash_password = async |password: String| -> Result<String, Problem> {
        tokio::task::spawn_blocking(move || hashing.hash(&password))
            .await
            .map_err(Problem::internal)?
            .map_err(Problem::internal)
    };

    // An invitation's link: sets the password of a person who has none, and accepts.
    if let Some((invitation, invitee)) = s.store.invitation_by_token(&hash, now).await? {
        let has_account = || {
            Problem::new(StatusCode::CONFLICT, "Conflict").detail(
                "this address has an account: log in with its password and accept the invitation",
            )
        };
        if invitee == Invitee::Account {
            return Err(has_account());
        }
        psabridge_identity::password::check_rules(&password, &invitation.email)
            .map_err(|e| invalid("password", &e.to_string()))?;
        let phc = hash_password(password).await?;
        let accepted = match s
            .store
            .accept_invitation_with_password(&hash, &phc, now)
            .await
        {
            Ok(a) => a,
            Err(StoreError::NotFound(_)) => return Err(unknown()),
            Err(StoreError::Conflict(_)) if invitee != Invitee::Account => {
                return Err(has_account());
            }
            Err(e) => return Err(e.into()),
        };
        let actor = format!("user:{} {:?}", accepted.user_id, invitation.email);
        s.store
            .record_audit(
                &NewAuditEntry {
                    partner_id: Some(&invitation.partner_id),
                    actor: &actor,
                    action: "user.invitation_accepted",
                    target: &format!("invitation:{}", invitation.id),
                    before: None,
                    after: Some(&json!({
                        "user": accepted.user_id,
                        "role": invitation.role,
                        "by": "link",
                    })),
                },
                now,
            )
            .await?;
        return Ok(());
    }

    // A password link the operator issued (`psabridge password-link`): sets the password of
    // an existing person, and ends their sessions.
    let user_id = s
        .store
        .password_setup_user(&hash, now)
        .await?
        .ok_or_else(unknown)?;
    let user = s.store.user_by_id(user_id).await?.ok_or_else(unknown)?;
    psabridge_identity::password::check_rules(&password, &user.email)
        .map_err(|e| invalid("password", &e.to_string()))?;
    let phc = hash_password(password).await?;
    if s.store.use_password_setup(&hash, now).await? != Some(user.id) {
        return Err(unknown());
    }
    s.store.set_password_hash(user.id, &phc).await?;
    s.store.revoke_sessions_of(user.id, now).await?;
    let memberships = s.store.memberships_of(user.id).await?;
    audit_account(
        s,
        &partner_ids(&memberships),
        &format!("user:{} {:?}", user.id, user.email),
        "user.password_set",
        &format!("user:{}", user.id),
        None,
    )
    .await?;
    Ok(())
}

// ---- users of a partner -------------------------------------------------------------------

fn member_view(m: &psabridge_store::identity::Member) -> Value {
    json!({
        "id": m.user_id,
        "email": m.email,
        "name": m.name,
        "role": m.role,
        "active": m.active,
        "totp_enabled": m.totp_enabled,
        "password_set": m.password_set,
    })
}

fn parse_role(value: Option<String>) -> Result<Option<Role>, Problem> {
    value
        .map(|r| {
            Role::parse(&r).ok_or_else(|| {
                invalid(
                    "role",
                    "must be one of primary, security_admin, admin, technician, read_only",
                )
            })
        })
        .transpose()
}

fn parse_user_id(user: &str) -> Result<i64, Problem> {
    user.parse()
        .map_err(|_| Problem::not_found(format!("user {user}")))
}

async fn list_users(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let members = s.store.members_of(&p).await?;
    Ok(Json(
        json!({"users": members.iter().map(member_view).collect::<Vec<_>>()}),
    ))
}

async fn patch_user(
    State(s): State<AppState>,
    caller: Caller,
    me: CurrentUser,
    Path((p, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let user_id = parse_user_id(&user)?;
    crate::input::refuse_removal(&body, &["role", "active"])?;
    let body = body_json(&body)?;
    let role = parse_role(string_field(&body, "role", false)?)?;
    let active = match body.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid("active", "must be true or false")),
    };
    Ok(Json(member_view(
        &update_member(&s, &caller, me.0.as_ref(), &p, user_id, role, active).await?,
    )))
}

/// Change a member's role or switch their membership on or off, keeping the Primary's rules
/// (never deactivated or demoted; handed over only by the Primary, to an active member, who
/// then becomes a Security Admin), and audit it. The API's `PATCH …/users/{user}` and the
/// portal's users screen.
pub(crate) async fn update_member(
    s: &AppState,
    caller: &Caller,
    me: Option<&SessionUser>,
    p: &str,
    user_id: i64,
    role: Option<Role>,
    active: Option<bool>,
) -> Result<psabridge_store::identity::Member, Problem> {
    let before = s
        .store
        .member(p, user_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("user {user_id}")))?;
    let current_role = Role::parse(&before.role);
    let now = s.accounts.clock.now_ms();
    let conflict = |m: &str| Problem::new(StatusCode::CONFLICT, "Conflict").detail(m.to_string());

    if current_role == Some(Role::Primary)
        && (active == Some(false) || role.is_some_and(|r| r != Role::Primary))
    {
        return Err(conflict(
            "the Primary user cannot be deactivated or demoted; make another member Primary first",
        ));
    }
    if let Some(Role::Primary) = role
        && current_role != Some(Role::Primary)
    {
        // Transfer: only the Primary (or an API token of the partner) hands Primary over.
        let members = s.store.members_of(p).await?;
        let primary = members.iter().find(|m| m.role == Role::Primary.as_str());
        if let Some(me) = me
            && primary.map(|m| m.user_id) != Some(me.user.id)
        {
            return Err(Problem::forbidden(
                "only the Primary user can hand Primary over",
            ));
        }
        if !before.active {
            return Err(conflict("Primary can only go to an active member"));
        }
        match primary {
            Some(from) => {
                s.store
                    .transfer_primary(p, from.user_id, user_id, Role::SecurityAdmin.as_str())
                    .await?
            }
            None => {
                s.store
                    .set_member_role(p, user_id, Role::Primary.as_str())
                    .await?
            }
        }
    } else if let Some(role) = role {
        s.store.set_member_role(p, user_id, role.as_str()).await?;
    }
    if let Some(active) = active {
        s.store.set_member_active(p, user_id, active, now).await?;
        // Deactivation revoked the person's tokens: forget them on this node at once.
        s.tokens.clear();
    }
    let after = s
        .store
        .member(p, user_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("user {user_id}")))?;
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: &caller.1.0,
                action: "user.update",
                target: &format!("user:{user_id}"),
                before: Some(&member_view(&before)),
                after: Some(&member_view(&after)),
            },
            now,
        )
        .await?;
    Ok(after)
}

async fn remove_user(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, user)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    remove_member(&s, &caller, &p, parse_user_id(&user)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from `p` (never the Primary), ending their sessions and tokens there, and
/// audit it. The API's `DELETE …/users/{user}` and the portal's users screen.
pub(crate) async fn remove_member(
    s: &AppState,
    caller: &Caller,
    p: &str,
    user_id: i64,
) -> Result<(), Problem> {
    let before = s
        .store
        .member(p, user_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("user {user_id}")))?;
    if before.role == Role::Primary.as_str() {
        return Err(Problem::new(StatusCode::CONFLICT, "Conflict")
            .detail("the Primary user cannot be removed; make another member Primary first"));
    }
    let now = s.accounts.clock.now_ms();
    s.store.remove_membership(p, user_id, now).await?;
    s.tokens.clear();
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: &caller.1.0,
                action: "user.remove",
                target: &format!("user:{user_id}"),
                before: Some(&member_view(&before)),
                after: None,
            },
            now,
        )
        .await?;
    Ok(())
}

/// docs/permissions.md, generated from [`psabridge_identity::roles::MATRIX`] and
/// [`crate::ROUTES`]; a test keeps the file equal to this.
pub fn permissions_markdown() -> String {
    let roles_of = |p: Permission| {
        Role::ALL
            .into_iter()
            .filter(|r| allows(*r, p))
            .map(Role::label)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from(
        "# Roles and permissions\n\n\
         <!-- Generated from the code (crates/identity/src/roles.rs, scopes.rs and ROUTES in \
         crates/web/src/lib.rs); a test fails when this file differs. Regenerate with \
         `PSABRIDGE_WRITE_DOCS=1 cargo test -p psabridge-web --lib permissions`. -->\n\n\
         A person has one role at each partner they belong to (a person may belong to several \
         partners). Every route is checked in one place (`accounts::enforce`) against the table \
         below; a person who is not a member of a partner gets 404 for all of its routes, as \
         if it did not exist. A session acts only at the partner it was opened for (a login \
         with `partner`, the person's only partner, or an identity provider's login); only a \
         password login of a person of several partners who named none acts at each of them. \
         A partner adds a person by invitation (`POST …/users`), which the person accepts \
         themselves; deactivating or removing a member ends only that partner's membership, \
         sessions and tokens. API tokens are not people: a partner token acts for its partner \
         and a vendor token for every partner, each within its scopes (below).\n\n\
         ## The matrix\n\n",
    );
    out.push_str(&psabridge_identity::roles::matrix_markdown());
    out.push_str(
        "\nThere is exactly one Primary per partner. The Primary cannot be removed, \
         deactivated or demoted; they hand Primary to another active member \
         (`PATCH …/users/{user}` with `role: primary`), and become a Security Admin.\n\n\
         ## Routes\n\n| Route | Who may call it |\n|---|---|\n",
    );
    for (route, access) in crate::ROUTES {
        let who = match access {
            Access::Public => "anyone (the route authenticates on its own, if at all)".to_string(),
            Access::Session => "any logged-in person, for their own account".to_string(),
            Access::Partner(p) => format!("`{}` at `{{p}}`: {}", p.as_str(), roles_of(*p)),
            Access::Acting(p) => format!(
                "`{}` at the partner chosen at login: {}",
                p.as_str(),
                roles_of(*p)
            ),
            Access::TokenOnly => match crate::auth::token_only_need(route) {
                Some(need) => format!(
                    "API tokens only, with `{}`",
                    psabridge_identity::scopes::missing_scope(&[], need)
                        .map_or("every scope", |s| s.as_str())
                ),
                None => "API tokens only, with every scope".to_string(),
            },
        };
        out.push_str(&format!("| `{route}` | {who} |\n"));
    }
    out.push_str(
        "\n## Scopes of API tokens\n\n\
         A token holds scopes instead of a role. It may call a route when one of its scopes \
         grants the permission of the route's entry above (token-only routes name their \
         scope); otherwise it gets 403 naming the scope it lacks. A token made without \
         `scopes` holds every scope its creator may grant (tokens made before scopes existed \
         hold them all). A token never gets more than its creator: a token passes on at most \
         its own scopes, a person at most what their role allows (`events:write` needs \
         `manage_settings`). A token made by a logged-in person is revoked when that person \
         is deactivated or removed. An expired token gets 401 saying when it expired. A \
         revoked token stops working at once on the node that revoked it and within 10 \
         seconds on the others (their token cache).\n\n",
    );
    out.push_str(&psabridge_identity::scopes::scopes_markdown());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_doc_is_generated_from_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/permissions.md");
        let expected = permissions_markdown();
        if std::env::var_os("PSABRIDGE_WRITE_DOCS").is_some() {
            std::fs::write(path, &expected).expect("write docs/permissions.md");
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/permissions.md differs from the code; regenerate it with \
             PSABRIDGE_WRITE_DOCS=1 cargo test -p psabridge-web --lib permissions"
        );
    }

    #[test]
    fn path_parameters_are_read_by_template_position() {
        let t = "/api/v1/partners/{p}/users/{user}";
        assert_eq!(
            path_parameter(t, "/api/v1/partners/msp%2Da/users/7", "p").as_deref(),
            Some("msp-a")
        );
        assert_eq!(
            path_parameter(t, "/api/v1/partners/a/users/7", "user").as_deref(),
            Some("7")
        );
        assert_eq!(
            path_parameter("/api/v1/events", "/api/v1/events", "p"),
            None
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; psab_session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h, "psab_session"), Some("abc"));
        assert_eq!(session_cookie(&h, "__Host-psab_session"), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_unless_configured_off() {
        let mut cfg = AccountsConfig::default();
        let c = cfg.cookie("v", 60);
        let c = c.to_str().unwrap();
        assert!(c.starts_with("__Host-psab_session=v; Path=/; HttpOnly; SameSite=Lax"));
        assert!(c.ends_with("; Secure"));
        cfg.secure_cookies = false;
        let c = cfg.cookie("v", 60);
        assert!(!c.to_str().unwrap().contains("Secure"));
    }
}
