//! The two steps of "Log in with your identity provider" that need the person: choosing the
//! partner when their identity belongs to several, and, once, proving an existing account
//! (password and TOTP code) before the identity is linked to it. The forms post to the API's
//! own routes (`POST /api/v1/auth/sso/choose`, `…/confirm`), which take HTML forms too and
//! answer a browser with a redirect to the portal.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use psabridge_identity::Role;

use super::{page_error, render};
use crate::AppState;
use crate::sso::partners_to_choose;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sso/choose", get(choose))
        .route("/sso/confirm", get(confirm))
}

#[derive(Template)]
#[template(path = "portal/sso_choose.html")]
struct ChoosePage {
    /// (partner id, name, role)
    partners: Vec<(String, String, &'static str)>,
}

async fn choose(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let memberships = match partners_to_choose(&s, &headers).await {
        Ok(m) => m,
        Err(p) => return page_error(p),
    };
    let mut partners = Vec::new();
    for m in memberships {
        let name = s
            .store
            .partner(&m.partner_id)
            .await
            .map(|p| p.name)
            .unwrap_or_else(|_| m.partner_id.clone());
        partners.push((
            m.partner_id.clone(),
            name,
            Role::parse(&m.role).map_or("", |r| r.label()),
        ));
    }
    render(&ChoosePage { partners })
}

#[derive(Template)]
#[template(path = "portal/sso_confirm.html")]
struct ConfirmPage;

async fn confirm() -> Response {
    render(&ConfirmPage)
}
