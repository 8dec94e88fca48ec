//! Sign-in and security of the partner: its identity provider (issuer, client id, the secret
//! write-only, the name on the login button, just-in-time accounts and their role), the
//! "require the identity provider" switch with its no-lock-out rule and the people exempt from
//! it, and the SCIM token (shown once). The same functions as `PUT …/sso`,
//! `…/sso/exemptions` and `…/scim/token` (`crate::sso`, `crate::scim`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_identity::{Permission, Role, allows};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AtPartner, FieldErrors, Frame, page_error, render, see_other, url_encode, when};
use crate::AppState;
use crate::auth::{Caller, Principal};
use crate::problem::Problem;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/security", get(page))
        .route("/p/{p}/security/idp", post(save_idp))
        .route("/p/{p}/security/exemptions", post(add_exemption))
        .route(
            "/p/{p}/security/exemptions/{user}/remove",
            post(remove_exemption),
        )
        .route("/p/{p}/security/scim-token", post(issue_scim_token))
        .route("/p/{p}/security/scim-token/revoke", post(revoke_scim_token))
}

/// The identity-provider form, as stored or as typed.
#[derive(Default)]
struct IdpForm {
    issuer: String,
    client_id: String,
    display_name: String,
    jit_enabled: bool,
    jit_default_role: String,
    require_idp: bool,
}

struct ExemptRow {
    user: i64,
    email: String,
    role: String,
}

#[derive(Template)]
#[template(path = "portal/security.html")]
struct SecurityPage {
    frame: Frame,
    manage: bool,
    configured: bool,
    form: IdpForm,
    /// The provider needs this registered as the login's redirect URI.
    redirect_uri: Option<String>,
    /// When an administrator first logged in through the provider (what allows requiring it).
    proven_at: Option<String>,
    errors: FieldErrors,
    general: Vec<String>,
    exempt: Vec<ExemptRow>,
    /// People who could be exempted: (user id, "email (role)").
    candidates: Vec<(i64, String)>,
    exemption_error: Option<String>,
    scim_issued_at: Option<String>,
    /// A SCIM token just issued, shown this once.
    scim_token: Option<String>,
    scim_base: String,
    roles: Vec<(&'static str, &'static str)>,
}

#[derive(Deserialize, Default)]
struct Notice {
    done: Option<String>,
}

fn notice_of(n: &Notice) -> Option<String> {
    // Fixed sentences: nothing of the URL is echoed into the page.
    n.done.as_deref().map(|d| {
        match d {
            "idp" => "The identity provider settings were saved (its discovery document was read).",
            "exempt" => "The exemptions were saved.",
            "revoked" => {
                "The SCIM token was revoked: the identity provider can no longer provision."
            }
            _ => "Your changes were saved.",
        }
        .to_string()
    })
}

fn caller_of(at: &AtPartner) -> Caller {
    Caller(Principal::Partner(at.partner.clone()), at.user.actor())
}

/// What the page shows besides the form: refusals and one-time values.
#[derive(Default)]
struct Extras {
    form: Option<IdpForm>,
    errors: FieldErrors,
    exemption_error: Option<String>,
    scim_token: Option<String>,
}

async fn show(s: &AppState, at: &AtPartner, notice: Option<String>, extras: Extras) -> Response {
    let settings = match s.store.sso_settings(&at.partner).await {
        Ok(x) => x,
        Err(e) => return page_error(e.into()),
    };
    let view = crate::sso::settings_view(s, settings.as_ref());
    let form = extras.form.unwrap_or_else(|| match &settings {
        Some(x) => IdpForm {
            issuer: x.issuer.clone(),
            client_id: x.client_id.clone(),
            display_name: x.display_name.clone(),
            jit_enabled: x.jit_enabled,
            jit_default_role: x.jit_default_role.clone(),
            require_idp: x.require_idp,
        },
        None => IdpForm {
            jit_default_role: Role::ReadOnly.as_str().to_string(),
            ..IdpForm::default()
        },
    });
    let exempt_ids = match s.store.sso_exemptions(&at.partner).await {
        Ok(e) => e,
        Err(e) => return page_error(e.into()),
    };
    let members = match s.store.members_of(&at.partner).await {
        Ok(m) => m,
        Err(e) => return page_error(e.into()),
    };
    let label = |r: &str| Role::parse(r).map_or("", |r| r.label()).to_string();
    let scim_issued_at = match s.store.scim_token_issued_at(&at.partner).await {
        Ok(t) => t.map(when),
        Err(e) => return page_error(e.into()),
    };
    let shown = [
        "issuer",
        "client_id",
        "client_secret",
        "display_name",
        "jit_default_role",
        "require_idp",
    ];
    render(&SecurityPage {
        frame: at
            .frame(s, "security", "Sign-in and security", notice)
            .await,
        manage: allows(at.role, Permission::ManageUsers),
        configured: settings.is_some(),
        form,
        redirect_uri: view["redirect_uri"].as_str().map(str::to_string),
        proven_at: settings
            .as_ref()
            .and_then(|x| x.first_admin_idp_login_at)
            .map(when),
        general: extras.errors.general(&shown),
        errors: extras.errors,
        exempt: members
            .iter()
            .filter(|m| exempt_ids.contains(&m.user_id))
            .map(|m| ExemptRow {
                user: m.user_id,
                email: m.email.clone(),
                role: label(&m.role),
            })
            .collect(),
        candidates: members
            .iter()
            .filter(|m| m.active && !exempt_ids.contains(&m.user_id))
            .map(|m| (m.user_id, format!("{} ({})", m.email, label(&m.role))))
            .collect(),
        exemption_error: extras.exemption_error,
        scim_issued_at,
        scim_token: extras.scim_token,
        scim_base: format!("/scim/v2/{}", at.partner),
        roles: Role::ALL
            .into_iter()
            .filter(|r| !r.is_privileged())
            .map(|r| (r.as_str(), r.label()))
            .collect(),
    })
}

async fn page(State(s): State<AppState>, at: AtPartner, Query(n): Query<Notice>) -> Response {
    show(&s, &at, notice_of(&n), Extras::default()).await
}

fn back(at: &AtPartner, done: &str) -> Response {
    see_other(&format!(
        "/p/{}/security?done={done}",
        url_encode(&at.partner)
    ))
}

/// A refusal that is about the input: the page again with it (422 or 409); anything else
/// (forbidden, not found) as an error page.
async fn refused(s: &AppState, at: &AtPartner, p: Problem, extras: Extras) -> Response {
    let status = p.status;
    if !matches!(status.as_u16(), 409 | 422) {
        return page_error(p);
    }
    let errors = FieldErrors(if p.errors.is_empty() {
        vec![(String::new(), p.detail.clone().unwrap_or(p.title.clone()))]
    } else {
        p.errors
            .iter()
            .map(|e| (e.path.clone(), e.problem.clone()))
            .collect()
    });
    let mut resp = show(s, at, None, Extras { errors, ..extras }).await;
    *resp.status_mut() = status;
    resp
}

async fn save_idp(
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
    let typed = IdpForm {
        issuer: get("issuer"),
        client_id: get("client_id"),
        display_name: get("display_name"),
        jit_enabled: get("jit_enabled") == "on",
        jit_default_role: get("jit_default_role"),
        require_idp: get("require_idp") == "on",
    };
    // The API's body: an empty secret input keeps the stored secret.
    let mut body = Map::new();
    body.insert("issuer".into(), Value::String(typed.issuer.clone()));
    body.insert("client_id".into(), Value::String(typed.client_id.clone()));
    let secret = get("client_secret");
    if !secret.is_empty() {
        body.insert("client_secret".into(), Value::String(secret));
    }
    body.insert(
        "display_name".into(),
        Value::String(typed.display_name.clone()),
    );
    body.insert("jit_enabled".into(), Value::Bool(typed.jit_enabled));
    body.insert(
        "jit_default_role".into(),
        Value::String(typed.jit_default_role.clone()),
    );
    body.insert("require_idp".into(), Value::Bool(typed.require_idp));
    match crate::sso::save_settings(&s, &caller_of(&at), &at.partner, &body).await {
        Ok(_) => back(&at, "idp"),
        Err(p) => {
            refused(
                &s,
                &at,
                p,
                Extras {
                    form: Some(typed),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct ExemptForm {
    #[serde(default)]
    user: String,
}

async fn add_exemption(
    State(s): State<AppState>,
    at: AtPartner,
    Form(form): Form<ExemptForm>,
) -> Response {
    let Ok(user) = form.user.trim().parse::<i64>() else {
        return show(
            &s,
            &at,
            None,
            Extras {
                exemption_error: Some("Choose a person.".into()),
                ..Extras::default()
            },
        )
        .await;
    };
    match crate::sso::exempt(&s, &caller_of(&at), &at.partner, user).await {
        Ok(()) => back(&at, "exempt"),
        Err(p) if p.status.as_u16() == 422 => {
            let why = p
                .errors
                .first()
                .map_or_else(|| p.title.clone(), |e| e.problem.clone());
            show(
                &s,
                &at,
                None,
                Extras {
                    exemption_error: Some(format!("That person {why}.")),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(p) => page_error(p),
    }
}

async fn remove_exemption(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, user)): Path<(String, i64)>,
) -> Response {
    match crate::sso::unexempt(&s, &caller_of(&at), &at.partner, user).await {
        Ok(()) => back(&at, "exempt"),
        Err(p) => page_error(p),
    }
}

async fn issue_scim_token(State(s): State<AppState>, at: AtPartner) -> Response {
    match crate::scim::issue_token(&s, &caller_of(&at), &at.partner).await {
        // Shown on this answer only (not a redirect: the token must not reach a URL).
        Ok(token) => {
            show(
                &s,
                &at,
                Some("A new SCIM token was issued; the previous one no longer works.".into()),
                Extras {
                    scim_token: Some(token),
                    ..Extras::default()
                },
            )
            .await
        }
        Err(p) => page_error(p),
    }
}

async fn revoke_scim_token(State(s): State<AppState>, at: AtPartner) -> Response {
    match crate::scim::revoke_scim_token(&s, &caller_of(&at), &at.partner).await {
        Ok(()) => back(&at, "revoked"),
        Err(p) => page_error(p),
    }
}
