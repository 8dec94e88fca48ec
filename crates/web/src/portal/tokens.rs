//! API tokens of the partner: each with its scopes, expiry and last use; making one (name,
//! scopes within what the person's role allows, expiry), shown once; revoking one. The same
//! functions as `POST /api/v1/partners/{p}/tokens` and `DELETE …/tokens/{id}`.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_identity::scopes::SCOPES;
use psabridge_identity::{Permission, allows};
use serde_json::Value;

use super::{AtPartner, Frame, page_error, render, see_other, url_encode};
use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::config_api::{NewToken, make_token, partner_tokens, revoke};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/tokens", get(page).post(create))
        .route("/p/{p}/tokens/{id}/revoke", post(revoke_one))
}

struct TokenRow {
    id: i64,
    name: String,
    scopes: String,
    status: String,
    expires: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "portal/tokens.html")]
struct TokensPage {
    frame: Frame,
    manage: bool,
    tokens: Vec<TokenRow>,
    /// (scope, what it allows, within the person's role)
    scopes: Vec<(&'static str, &'static str, bool)>,
    /// The token just made, shown this once.
    made: Option<String>,
    name: String,
    errors: Vec<(String, String)>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("—").to_string()
}

async fn show(
    s: &AppState,
    at: &AtPartner,
    made: Option<String>,
    name: String,
    errors: Vec<(String, String)>,
) -> Response {
    let tokens = match partner_tokens(s, &at.partner).await {
        Ok(t) => t,
        Err(p) => return page_error(p),
    };
    render(&TokensPage {
        frame: at.frame(s, "tokens", "API tokens", None).await,
        manage: allows(at.role, Permission::ManageTokens),
        tokens: tokens
            .iter()
            .map(|t| TokenRow {
                id: t["id"].as_i64().unwrap_or_default(),
                name: text(&t["name"]),
                scopes: t["scopes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                status: text(&t["status"]),
                expires: t["expires_at"].as_str().unwrap_or("never").to_string(),
                last_used: t["last_used_at"].as_str().unwrap_or("never").to_string(),
            })
            .collect(),
        scopes: SCOPES
            .iter()
            .map(|(scope, name, _, what)| (*name, *what, scope.within_role(at.role)))
            .collect(),
        made,
        name,
        errors,
    })
}

async fn page(State(s): State<AppState>, at: AtPartner) -> Response {
    show(&s, &at, None, String::new(), Vec::new()).await
}

async fn create(
    State(s): State<AppState>,
    at: AtPartner,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let name = get("name");
    let scopes: Vec<String> = form
        .iter()
        .filter(|(n, _)| n == "scope")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .collect();
    let expires_in_days = get("expires_in_days").parse::<i64>().ok();
    let t = NewToken {
        name: name.clone(),
        // An empty choice is refused by name, not read as "every scope".
        scopes: Some(scopes),
        expires_in_days,
        expires_at: None,
    };
    let caller = Caller(Principal::Partner(at.partner.clone()), at.user.actor());
    match make_token(&s, &caller, (None, Some(&at.user)), Some(&at.partner), t).await {
        Ok(shown) => {
            let token = shown["token"].as_str().map(str::to_string);
            show(&s, &at, token, String::new(), Vec::new()).await
        }
        Err(p) if !p.errors.is_empty() => {
            let errors = p
                .errors
                .iter()
                .map(|e| (e.path.clone(), e.problem.clone()))
                .collect();
            let mut resp = show(&s, &at, None, name, errors).await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
        Err(p) => page_error(p),
    }
}

async fn revoke_one(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
) -> Response {
    let caller = Caller(Principal::Partner(at.partner.clone()), at.user.actor());
    match revoke(&s, &caller, &at.partner, id).await {
        Ok(()) => see_other(&format!("/p/{}/tokens", url_encode(&at.partner))),
        Err(p) => page_error(p),
    }
}
