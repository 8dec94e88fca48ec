//! "Choose your password": where an invitation's link (or an operator's password link) lands.
//! The token rides in the link's fragment, so it reaches no server log; `portal.js` moves it
//! into the form, and without JavaScript the person pastes it. The form is checked by
//! [`crate::accounts::set_password_with_token`], the same function as `POST /api/v1/auth/password`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::{page_error, render};
use crate::AppState;
use crate::accounts::set_password_with_token;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/invitation", get(form).post(submit))
}

#[derive(Template)]
#[template(path = "portal/password.html")]
struct PasswordPage {
    token: String,
    token_error: Option<String>,
    password_error: Option<String>,
    error: Option<String>,
    done: bool,
}

async fn form() -> Response {
    render(&PasswordPage {
        token: String::new(),
        token_error: None,
        password_error: None,
        error: None,
        done: false,
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    token: String,
    password: String,
    confirm: String,
}

async fn submit(State(s): State<AppState>, Form(f): Form<PasswordForm>) -> Response {
    let again = |token_error: Option<String>, password_error: Option<String>, error| {
        let mut resp = render(&PasswordPage {
            token: f.token.clone(),
            token_error,
            password_error,
            error,
            done: false,
        });
        *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        resp
    };
    if f.password != f.confirm {
        return again(None, Some("the two passwords differ".into()), None);
    }
    match set_password_with_token(&s, f.token.trim(), f.password.clone()).await {
        Ok(()) => render(&PasswordPage {
            token: String::new(),
            token_error: None,
            password_error: None,
            error: None,
            done: true,
        }),
        Err(p) if !p.errors.is_empty() => {
            let of = |field: &str| {
                p.errors
                    .iter()
                    .find(|e| e.path == field)
                    .map(|e| e.problem.clone())
            };
            again(of("token"), of("password"), None)
        }
        Err(p) if p.status == axum::http::StatusCode::CONFLICT => {
            again(None, None, p.detail.clone())
        }
        Err(p) => page_error(p),
    }
}
