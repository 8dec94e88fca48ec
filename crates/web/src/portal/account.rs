//! The signed-in person's own security: enrolling an authenticator app (a QR code of the
//! secret, drawn on the server, and the secret as text for typing in), confirming it with a
//! first code, and the recovery codes, shown once. The same functions as
//! `POST /api/v1/auth/totp/enroll` and `…/confirm`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;

use super::{AtPartner, Frame, page_error, render};
use crate::AppState;
use crate::accounts::{confirm_totp_enrolment, start_totp_enrolment};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/account", get(page))
        .route("/p/{p}/account/totp", post(start))
        .route("/p/{p}/account/totp/confirm", post(confirm))
}

/// What the page shows of the authenticator.
enum Step {
    /// None enrolled; the button to start.
    Offer,
    /// Scan or type the secret, then prove it with a code.
    Scan {
        qr_svg: String,
        secret: String,
        error: Option<String>,
    },
    /// Enrolled just now: the recovery codes, once.
    Codes(Vec<String>),
    /// Enrolled before.
    Enrolled,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    frame: Frame,
    email: String,
    step: Step,
}

async fn show(s: &AppState, at: &AtPartner, step: Step) -> Response {
    render(&AccountPage {
        frame: at.frame(s, "account", "Your account", None).await,
        email: at.user.user.email.clone(),
        step,
    })
}

async fn page(State(s): State<AppState>, at: AtPartner) -> Response {
    let step = if at.user.user.totp_enabled {
        Step::Enrolled
    } else {
        Step::Offer
    };
    show(&s, &at, step).await
}

/// The secret as a QR code an authenticator app scans (an SVG drawn here: no script, no
/// third party sees the secret).
fn qr(uri: &str) -> String {
    QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<svg::Color>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

async fn start(State(s): State<AppState>, at: AtPartner) -> Response {
    match start_totp_enrolment(&s, &at.user).await {
        Ok((secret, uri)) => {
            show(
                &s,
                &at,
                Step::Scan {
                    qr_svg: qr(&uri),
                    secret,
                    error: None,
                },
            )
            .await
        }
        Err(p) => page_error(p),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn confirm(State(s): State<AppState>, at: AtPartner, Form(f): Form<CodeForm>) -> Response {
    match confirm_totp_enrolment(&s, &at.user, f.code.trim()).await {
        Ok(codes) => show(&s, &at, Step::Codes(codes)).await,
        Err(p) if !p.errors.is_empty() => {
            // A wrong code: the same secret again (still pending), the reason by the field.
            let pending = s.store.pending_totp(at.user.user.id).await.ok().flatten();
            let Some(secret) = pending else {
                return page_error(p);
            };
            let secret = secret.expose().to_string();
            let uri = psabridge_identity::totp::secret_from_base32(&secret)
                .ok()
                .and_then(|raw| {
                    psabridge_identity::totp::otpauth_uri(&raw, &at.user.user.email, "PSA Bridge")
                        .ok()
                })
                .unwrap_or_default();
            let mut resp = show(
                &s,
                &at,
                Step::Scan {
                    qr_svg: qr(&uri),
                    secret,
                    error: p.errors.first().map(|e| e.problem.clone()),
                },
            )
            .await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
        Err(p) => page_error(p),
    }
}
