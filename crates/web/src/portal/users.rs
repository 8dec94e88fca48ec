//! People: the partner's members with their role, whether they can sign in, and whether they
//! have an authenticator; pending invitations; inviting someone with a role; changing a role,
//! switching a membership off or on, removing a member, and (for the Primary) handing Primary
//! over. Each change is the API's own function (`invitations::invite`,
//! `accounts::update_member`, `accounts::remove_member`), with the Primary's rules there.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_identity::{Permission, Role, allows};
use serde::Deserialize;

use super::{AtPartner, Frame, page_error, render, see_other, url_encode, when};
use crate::AppState;
use crate::accounts::{remove_member, update_member};
use crate::auth::{Caller, Principal};
use crate::invitations::{invite, person_email, person_name};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/users", get(page).post(invite_person))
        .route("/p/{p}/users/{user}", post(change))
        .route("/p/{p}/users/{user}/remove", post(remove))
}

struct MemberRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    role_label: &'static str,
    active: bool,
    totp: bool,
    password_set: bool,
    is_me: bool,
}

struct InvitationRow {
    email: String,
    role: &'static str,
    expires: String,
}

#[derive(Template)]
#[template(path = "portal/users.html")]
struct UsersPage {
    frame: Frame,
    manage: bool,
    i_am_primary: bool,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    /// (value, label) of the roles a person may give here.
    roles: Vec<(&'static str, &'static str)>,
    invite_email: String,
    invite_name: String,
    invite_role: String,
    email_error: Option<String>,
    name_error: Option<String>,
    role_error: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn caller_of(at: &AtPartner) -> Caller {
    Caller(Principal::Partner(at.partner.clone()), at.user.actor())
}

struct InviteForm {
    email: String,
    name: String,
    role: String,
    email_error: Option<String>,
    name_error: Option<String>,
    role_error: Option<String>,
    error: Option<String>,
}

async fn users_page(
    s: &AppState,
    at: &AtPartner,
    notice: Option<String>,
    form: InviteForm,
) -> Response {
    let members = match s.store.members_of(&at.partner).await {
        Ok(m) => m,
        Err(e) => return page_error(e.into()),
    };
    let invitations = match s
        .store
        .invitations_of_partner(&at.partner, s.accounts.clock.now_ms())
        .await
    {
        Ok(i) => i,
        Err(e) => return page_error(e.into()),
    };
    let i_am_primary = at.role == Role::Primary;
    let label = |r: &str| Role::parse(r).map_or("", |r| r.label());
    render(&UsersPage {
        frame: at.frame(s, "users", "Users", notice).await,
        manage: allows(at.role, Permission::ManageUsers),
        i_am_primary,
        members: members
            .iter()
            .map(|m| MemberRow {
                id: m.user_id,
                email: m.email.clone(),
                name: m.name.clone(),
                role: m.role.clone(),
                role_label: label(&m.role),
                active: m.active,
                totp: m.totp_enabled,
                password_set: m.password_set,
                is_me: m.user_id == at.user.user.id,
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationRow {
                email: i.email.clone(),
                role: label(&i.role),
                expires: when(i.expires_at),
            })
            .collect(),
        roles: Role::ALL
            .into_iter()
            .filter(|r| *r != Role::Primary)
            .map(|r| (r.as_str(), r.label()))
            .collect(),
        invite_email: form.email,
        invite_name: form.name,
        invite_role: form.role,
        email_error: form.email_error,
        name_error: form.name_error,
        role_error: form.role_error,
        error: form.error,
    })
}

fn empty_form() -> InviteForm {
    InviteForm {
        email: String::new(),
        name: String::new(),
        role: "read_only".into(),
        email_error: None,
        name_error: None,
        role_error: None,
        error: None,
    }
}

async fn page(State(s): State<AppState>, at: AtPartner, Query(d): Query<Done>) -> Response {
    let notice = d.done.map(|d| {
        match d.as_str() {
            "invited" => "The invitation was sent.",
            "removed" => "The member was removed.",
            _ => "Your changes were saved.",
        }
        .to_string()
    });
    users_page(&s, &at, notice, empty_form()).await
}

#[derive(Deserialize)]
struct InviteFields {
    email: String,
    #[serde(default)]
    name: String,
    role: String,
}

async fn invite_person(
    State(s): State<AppState>,
    at: AtPartner,
    Form(f): Form<InviteFields>,
) -> Response {
    let mut form = InviteForm {
        email: f.email.clone(),
        name: f.name.clone(),
        role: f.role.clone(),
        ..empty_form()
    };
    let checked = (|| {
        let email = person_email("email", f.email.trim())?;
        let name = person_name(
            "name",
            Some(f.name.trim().to_string()).filter(|n| !n.is_empty()),
        )?;
        let role = Role::parse(&f.role).ok_or_else(|| {
            crate::accounts::invalid(
                "role",
                "must be one of security_admin, admin, technician, read_only",
            )
        })?;
        Ok::<_, crate::problem::Problem>((email, name, role))
    })();
    let outcome = match checked {
        Ok((email, name, role)) => {
            invite(&s, &caller_of(&at), true, &at.partner, email, name, role)
                .await
                .map(|_| ())
        }
        Err(p) => Err(p),
    };
    match outcome {
        Ok(()) => see_other(&format!(
            "/p/{}/users?done=invited",
            url_encode(&at.partner)
        )),
        Err(p) if p.status == axum::http::StatusCode::FORBIDDEN => page_error(p),
        Err(p) => {
            let of = |field: &str| {
                p.errors
                    .iter()
                    .find(|e| e.path == field)
                    .map(|e| e.problem.clone())
            };
            form.email_error = of("email");
            form.name_error = of("name");
            form.role_error = of("role");
            if p.errors.is_empty() {
                form.error = Some(p.detail.clone().unwrap_or_else(|| p.title.clone()));
            }
            let status = p.status;
            let mut resp = users_page(&s, &at, None, form).await;
            *resp.status_mut() = status;
            resp
        }
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    /// A new role (`primary` hands Primary over).
    role: Option<String>,
    /// `on` or `off`.
    active: Option<String>,
}

async fn change(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, user)): Path<(String, i64)>,
    Form(f): Form<ChangeForm>,
) -> Response {
    let role = match f.role.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => match Role::parse(r) {
            Some(r) => Some(r),
            None => {
                return page_error(crate::accounts::invalid("role", "is not a role"));
            }
        },
    };
    let active = f.active.as_deref().map(|a| a == "on");
    match update_member(
        &s,
        &caller_of(&at),
        Some(&at.user),
        &at.partner,
        user,
        role,
        active,
    )
    .await
    {
        Ok(_) => see_other(&format!("/p/{}/users?done=saved", url_encode(&at.partner))),
        Err(p) if p.status == axum::http::StatusCode::CONFLICT => {
            let mut form = empty_form();
            form.error = p.detail.clone();
            let mut resp = users_page(&s, &at, None, form).await;
            *resp.status_mut() = p.status;
            resp
        }
        Err(p) => page_error(p),
    }
}

async fn remove(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, user)): Path<(String, i64)>,
) -> Response {
    match remove_member(&s, &caller_of(&at), &at.partner, user).await {
        Ok(()) => see_other(&format!(
            "/p/{}/users?done=removed",
            url_encode(&at.partner)
        )),
        Err(p) if p.status == axum::http::StatusCode::CONFLICT => {
            let mut form = empty_form();
            form.error = p.detail.clone();
            let mut resp = users_page(&s, &at, None, form).await;
            *resp.status_mut() = p.status;
            resp
        }
        Err(p) => page_error(p),
    }
}
