//! Signing in and out: the password form (with the TOTP code when the account has one), the
//! partner chooser for a person who belongs to several partners, and the way to the partner's
//! identity provider.
//!
//! The form posts to the portal, which checks it with [`crate::accounts::log_in`], the same
//! function as `POST /api/v1/auth/login`. A login form has no session yet to carry a CSRF
//! token, so the page sets a short-lived cookie and the form repeats its value (another site
//! can make a browser post a form, but cannot read or set our cookie): nobody can sign a
//! visitor into an account of theirs.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use psabridge_identity::secret_token::{constant_time_eq, new_token};
use serde::Deserialize;

use super::{page_error, render, url_encode};
use crate::AppState;
use crate::accounts::{
    Credentials, CurrentUser, client_address, end_session, log_in, session_cookie, throttle_key,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/login/sso", get(sso_start))
        .route("/logout", post(logout))
        .route("/choose", get(choose))
}

const LOGIN_CSRF_COOKIE: &str = "psab_login_csrf";

/// Where a signed-in person starts: their partner's dashboard, or the chooser.
pub(super) async fn home(CurrentUser(user): CurrentUser) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login").into_response();
    };
    let partner =
        user.session.partner_id.clone().or_else(|| {
            (user.memberships.len() == 1).then(|| user.memberships[0].partner_id.clone())
        });
    match partner {
        Some(p) => Redirect::to(&format!("/p/{}", url_encode(&p))).into_response(),
        None => Redirect::to("/choose").into_response(),
    }
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    email: String,
    partner: String,
    next: String,
    /// The account needs its TOTP code (or a recovery code): the code field is marked.
    need_code: bool,
    error: Option<String>,
    login_csrf: String,
    /// A login page for one partner (`/login?partner=acme`) whose identity provider is set
    /// up: (partner, what the button calls the provider).
    idp: Option<(String, String)>,
    /// The partner a person typed for "Log in with your identity provider", when it has none.
    no_idp: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    partner: Option<String>,
}

/// "Log in with Okta" for a partner with an identity provider, if the link named one.
async fn idp_button(s: &AppState, partner: Option<&str>) -> Option<(String, String)> {
    let p = partner.map(str::trim).filter(|p| !p.is_empty())?;
    let settings = s.store.sso_settings(p).await.ok().flatten()?;
    let name = if settings.display_name.is_empty() {
        "your identity provider".to_string()
    } else {
        settings.display_name
    };
    Some((p.to_string(), name))
}

/// Only a path of ours, never another site (an open redirect would help phishing).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/p/") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn login_csrf_cookie(s: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if s.accounts.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn login_page(s: &AppState, page: LoginPage) -> Response {
    let mut resp = render(&page);
    resp.headers_mut().append(
        header::SET_COOKIE,
        login_csrf_cookie(s, &page.login_csrf, 3600),
    );
    resp
}

async fn login_form(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(q): Query<NextQuery>,
) -> Response {
    if user.is_some() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let idp = idp_button(&s, q.partner.as_deref()).await;
    let typed = q
        .partner
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    login_page(
        &s,
        LoginPage {
            email: String::new(),
            partner: idp.as_ref().map(|(p, _)| p.clone()).unwrap_or_default(),
            next: safe_next(q.next.as_deref()),
            need_code: false,
            error: None,
            login_csrf: new_token(),
            no_idp: typed.filter(|_| idp.is_none()).map(str::to_string),
            idp,
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    partner: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    login_csrf: String,
}

async fn login_submit(State(s): State<AppState>, req: Request) -> Response {
    let address = client_address(req.extensions());
    let key = throttle_key(req.extensions());
    let headers = req.headers().clone();
    let Form(form) = match Form::<LoginForm>::from_request(req, &s).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let next = safe_next(Some(&form.next));
    let again = |error: String, need_code: bool| LoginPage {
        email: form.email.clone(),
        partner: form.partner.clone(),
        next: next.clone(),
        need_code,
        error: Some(error),
        login_csrf: new_token(),
        idp: None,
        no_idp: None,
    };
    let cookie = session_cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(cookie, &form.login_csrf) || cross_site(&headers) {
        let mut resp = login_page(
            &s,
            again("The form had expired: please sign in again.".into(), false),
        );
        *resp.status_mut() = axum::http::StatusCode::FORBIDDEN;
        return resp;
    }
    // A code is a TOTP code when it is six digits, else a recovery code.
    let code = form.code.trim().to_string();
    let (totp_code, recovery_code) = match code.as_str() {
        "" => (None, None),
        c if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => (Some(code.clone()), None),
        _ => (None, Some(code.clone())),
    };
    let credentials = Credentials {
        email: form.email.trim().to_string(),
        password: form.password.clone(),
        totp_code,
        recovery_code,
        partner: Some(form.partner.trim().to_string()).filter(|p| !p.is_empty()),
    };
    match log_in(&s, credentials, &address, &key).await {
        Ok(Ok(logged_in)) => {
            let to = match (&logged_in.partner, next.as_str()) {
                (_, n) if n != "/" => n.to_string(),
                (Some(p), _) => format!("/p/{}", url_encode(p)),
                (None, _) => "/choose".to_string(),
            };
            let mut resp = Redirect::to(&to).into_response();
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, logged_in.cookie);
            h.append(header::SET_COOKIE, login_csrf_cookie(&s, "", 0));
            resp
        }
        Ok(Err(refusal)) => {
            let status = refusal.status();
            let wait = refusal
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(|s| format!(" Try again in {s} seconds."))
                .unwrap_or_default();
            let need_code = status == axum::http::StatusCode::UNAUTHORIZED;
            let message = if need_code {
                "This account is receiving many failed sign-ins: enter your authenticator code (or a recovery code) too.".to_string()
            } else {
                format!("Too many failed sign-ins.{wait}")
            };
            let mut resp = login_page(&s, again(message, need_code));
            *resp.status_mut() = status;
            resp
        }
        Err(p) => {
            let need_code = p.extra.contains_key("second_factor_required");
            let message = if need_code {
                "Enter the code from your authenticator app (or a recovery code).".to_string()
            } else if p.status == axum::http::StatusCode::UNAUTHORIZED {
                "The email, password or code is wrong.".to_string()
            } else {
                let mut m = p.detail.clone().unwrap_or_else(|| p.title.clone());
                for e in &p.errors {
                    m = format!("{}: {}", e.path, e.problem);
                }
                m
            };
            let mut resp = login_page(&s, again(message, need_code));
            *resp.status_mut() = if need_code {
                axum::http::StatusCode::OK
            } else {
                p.status
            };
            resp
        }
    }
}

/// A browser that says the form came from another site (`Sec-Fetch-Site`).
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

#[derive(Deserialize)]
struct SsoQuery {
    partner: String,
}

/// "Log in with your identity provider": the partner's own login start (a link of the login
/// page: a form could not follow the redirect to the provider under the page's
/// `form-action 'self'`).
async fn sso_start(Query(q): Query<SsoQuery>) -> Response {
    let p = q.partner.trim();
    if p.is_empty() {
        return Redirect::to("/login").into_response();
    }
    Redirect::to(&format!("/api/v1/auth/sso/{}/start", url_encode(p))).into_response()
}

async fn logout(State(s): State<AppState>, CurrentUser(user): CurrentUser) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login").into_response();
    };
    match end_session(&s, &user).await {
        Ok(cookie) => {
            let mut resp = Redirect::to("/login").into_response();
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
            resp
        }
        Err(p) => page_error(p),
    }
}

#[derive(Template)]
#[template(path = "portal/choose.html")]
struct ChoosePage {
    email: String,
    partners: Vec<(String, String, &'static str)>,
}

/// The partners a person-wide session reaches, to pick one.
async fn choose(State(s): State<AppState>, CurrentUser(user): CurrentUser) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login?next=/").into_response();
    };
    let mut partners = Vec::new();
    for m in &user.memberships {
        let name = s
            .store
            .partner(&m.partner_id)
            .await
            .map(|p| p.name)
            .unwrap_or_else(|_| m.partner_id.clone());
        let role = psabridge_identity::Role::parse(&m.role).map_or("", |r| r.label());
        partners.push((m.partner_id.clone(), name, role));
    }
    render(&ChoosePage {
        email: user.user.email.clone(),
        partners,
    })
}
