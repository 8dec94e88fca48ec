//! The partner portal: server-rendered HTML on the API's own port, for the MSP admin who would
//! rather click than curl.
//!
//! How it holds together:
//! - **Same sessions, same permission table.** Every portal route has its entry in
//!   [`crate::ROUTES`], so [`crate::accounts::enforce`] checks the session and the role exactly
//!   as for the JSON API; a Read-only user's forced POST gets the same 403. Pages only hide
//!   controls the role could not use ([`Can`]), they never decide permissions.
//! - **Same operations.** Every change calls the operation the JSON API calls
//!   (`psabridge_ops`, or the shared function in this crate where the API's lives here), so the
//!   portal cannot validate, check parents or audit differently.
//! - **Forms work without JavaScript.** Every change is a plain HTML form; every POST carries
//!   the session's CSRF token as the `csrf_token` field (checked by `enforce`, the same token
//!   the API takes in `X-CSRF-Token`). Destructive actions sit behind a confirmation step.
//! - **Headers**: a CSP without inline script or style, `frame-ancestors 'none'`,
//!   `Referrer-Policy: same-origin`, `no-store` on every page ([`secure_headers`]).
//!
//! Screens: [`login`] (password + TOTP, the partner chooser, "Log in with your identity
//! provider"), [`dashboard`], [`clients`] (list, search, paging, a client's mappings and test
//! notification), [`deliveries`] (the log with filters, attempts and retries), [`notifications`]
//! (ticket and email per event type), [`billing`] (usage billing: calendar, contract services,
//! clients' contracts, syncs and their reports), [`audit`].

mod account;
mod audit;
mod billing;
mod charts;
mod clients;
mod connections;
mod dashboard;
mod deliveries;
mod imports;
mod login;
mod notifications;
mod password;
mod profiles;
mod security;
mod sso;
mod tokens;
mod users;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use psabridge_identity::{Permission, Role, allows};
use psabridge_ops::{Authority, OpsError};

use crate::AppState;
use crate::accounts::SessionUser;
use crate::problem::Problem;

/// The portal's routes (their permissions are in [`crate::ROUTES`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(login::home))
        .route("/portal.css", get(stylesheet))
        .route("/portal.js", get(script))
        .merge(login::routes())
        .merge(dashboard::routes())
        .merge(clients::routes())
        .merge(connections::routes())
        .merge(profiles::routes())
        .merge(imports::routes())
        .merge(billing::routes())
        .merge(deliveries::routes())
        .merge(notifications::routes())
        .merge(audit::routes())
        .merge(account::routes())
        .merge(password::routes())
        .merge(sso::routes())
        .merge(users::routes())
        .merge(security::routes())
        .merge(tokens::routes())
        .layer(axum::middleware::map_response(secure_headers))
}

/// Is `path` one of the portal's (not the API's, SCIM's, the PSAs' callouts' or a probe's)?
/// Refusals there are pages, not problem+json.
pub fn is_portal_path(path: &str) -> bool {
    path == "/"
        || path == "/login"
        || path == "/login/sso"
        || path == "/logout"
        || path == "/choose"
        || path == "/portal.css"
        || path == "/portal.js"
        || path == "/invitation"
        || path.starts_with("/sso/")
        || path.starts_with("/p/")
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn secure_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../assets/portal/portal.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../assets/portal/portal.js"),
    )
}

/// What the signed-in person may do here, so pages show only the controls that would work.
/// The permission check itself stays in `enforce` and in the operations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Can {
    pub manage_settings: bool,
    pub operate: bool,
    pub view_deliveries: bool,
    pub view_audit: bool,
    pub view_users: bool,
}

impl Can {
    fn of(role: Role) -> Can {
        Can {
            manage_settings: allows(role, Permission::ManageSettings),
            operate: allows(role, Permission::OperateDeliveries),
            view_deliveries: allows(role, Permission::ViewDeliveries),
            view_audit: allows(role, Permission::ViewAudit),
            view_users: allows(role, Permission::ViewUsers),
        }
    }
}

/// The frame every page of a partner shares: who is signed in, where, the navigation and the
/// CSRF token its forms carry.
pub(crate) struct Frame {
    pub title: String,
    pub partner: String,
    pub partner_name: String,
    pub user_email: String,
    pub role: &'static str,
    pub csrf: String,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    pub can: Can,
    /// A one-line confirmation of what the last form did.
    pub notice: Option<String>,
}

/// A signed-in person at the partner the path names (`/p/{p}/…`). `enforce` has already
/// checked the session and the role's permission for the route; without a session the page
/// sends the browser to the login form.
pub(crate) struct AtPartner {
    pub user: SessionUser,
    pub partner: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for AtPartner {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(user) = parts.extensions.get::<SessionUser>().cloned() else {
            return Err(to_login(parts.uri.path()));
        };
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        let partner = params.get("p").cloned().unwrap_or_default();
        let Some(role) = user.role_at(&partner) else {
            return Err(page_error(Problem::not_found(format!(
                "partner '{partner}'"
            ))));
        };
        Ok(AtPartner {
            user,
            partner,
            role,
        })
    }
}

impl AtPartner {
    /// The person as operations take them: their role at this partner.
    pub fn acting(&self) -> psabridge_ops::Acting {
        psabridge_ops::Acting {
            principal: psabridge_ops::Principal::Partner(self.partner.clone()),
            actor: self.user.actor().0,
            authority: Authority::Role(self.role),
        }
    }

    pub async fn frame(
        &self,
        s: &AppState,
        section: &'static str,
        title: impl Into<String>,
        notice: Option<String>,
    ) -> Frame {
        let partner_name = s
            .store
            .partner(&self.partner)
            .await
            .map(|p| p.name)
            .unwrap_or_else(|_| self.partner.clone());
        Frame {
            title: title.into(),
            partner: self.partner.clone(),
            partner_name,
            user_email: self.user.user.email.clone(),
            role: self.role.label(),
            csrf: self.user.session.csrf_token.clone(),
            section,
            can: Can::of(self.role),
            notice,
        }
    }
}

/// The login form, coming back to `path` afterwards.
fn to_login(path: &str) -> Response {
    let back = if path.starts_with("/p/") { path } else { "/" };
    Redirect::to(&format!("/login?next={}", url_encode(back))).into_response()
}

pub(crate) fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Render a template as a page.
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "portal template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "portal/error.html")]
struct ErrorPage {
    status: u16,
    title: String,
    detail: String,
}

/// A refusal as a page: the same status and words as the API's problem+json. An ended session
/// goes back to the login form.
pub(crate) fn page_error(p: Problem) -> Response {
    if p.status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/login").into_response();
    }
    let mut detail = p.detail.clone().unwrap_or_default();
    for e in &p.errors {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&format!("{}: {}", e.path, e.problem));
    }
    let mut resp = render(&ErrorPage {
        status: p.status.as_u16(),
        title: p.title.clone(),
        detail,
    });
    *resp.status_mut() = p.status;
    resp
}

/// An operation's refusal as a page (for failures that have no form to show them next to).
pub(crate) fn ops_error(e: OpsError) -> Response {
    page_error(Problem::from(e))
}

/// A form's errors by field, for showing each next to its input.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn of(e: OpsError) -> FieldErrors {
        let p = Problem::from(e);
        let mut list: Vec<(String, String)> = p
            .errors
            .iter()
            .map(|f| (f.path.clone(), f.problem.clone()))
            .collect();
        if list.is_empty() {
            list.push((
                String::new(),
                p.detail.clone().unwrap_or_else(|| p.title.clone()),
            ));
        }
        FieldErrors(list)
    }

    /// The problem with `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, p)| p.as_str())
    }

    /// Problems not tied to a field the form shows.
    pub fn general(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(f, _)| !shown.contains(&f.as_str()))
            .map(|(f, p)| {
                if f.is_empty() {
                    p.clone()
                } else {
                    format!("{f}: {p}")
                }
            })
            .collect()
    }
}

/// After a change: back to `to`, a path of ours (post/redirect/get, so that reloading the page
/// does not send the form again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Times as people read them, in UTC.
pub(crate) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A duration in its largest unit ("3 min", "2 h", "5 d").
pub(crate) fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}
