//! Adding a person to a partner: an invitation the person accepts.
//!
//! People are global (one account per email); each partner only has memberships. So a
//! partner never attaches an account, never receives a credential for one, and never learns
//! whether an address has an account anywhere: `POST …/users` always answers 202 with the
//! same invitation shape, writes only the invitation, and emails the person. The person
//! accepts after their own password login (`GET /api/v1/auth/invitations`, then
//! `POST …/{id}/accept` or `…/decline`), or, with no password yet, through the single-use
//! link in the email (`POST /api/v1/auth/password`), which sets the password and accepts.
//! Inviting the same address again replaces the invitation and its link.
//!
//! Where the email goes: the account mailer ([`crate::accounts::AccountsConfig::mailer`],
//! else the `[smtp]` server). With neither, nothing is sent (`"delivery": "not_sent"`) and
//! the operator, who is trusted across partners, issues the link with `psabridge invite`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use psabridge_engine::mail::{MailError, Mailer, OutgoingMail};
use psabridge_identity::Role;
use psabridge_identity::people::{EMAIL_MAX_CHARS, NAME_MAX_CHARS, check_length};
use psabridge_identity::secret_token::{new_token, token_hash};
use psabridge_store::audit::NewAuditEntry;
use psabridge_store::invitations::{Invitation, Invitee, NewInvitation};
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::{CurrentUser, SessionUser, body_json, invalid, string_field};
use crate::auth::Caller;
use crate::problem::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/partners/{p}/invitations", get(list_of_partner))
        .route("/api/v1/partners/{p}/invitations/{id}", delete(revoke))
        .route("/api/v1/auth/invitations", get(mine))
        .route("/api/v1/auth/invitations/{id}/accept", post(accept))
        .route("/api/v1/auth/invitations/{id}/decline", post(decline))
}

/// An invitation as the inviting partner sees it: only what the partner itself sent.
fn partner_view(i: &Invitation) -> Value {
    json!({
        "id": i.id,
        "email": i.email,
        "name": i.name,
        "role": i.role,
        "status": "pending",
        "invited_at": psabridge_store::from_millis(i.created_at),
        "expires_at": psabridge_store::from_millis(i.expires_at),
    })
}

/// A checked email address of a person: trimmed, at most [`EMAIL_MAX_CHARS`], of the form
/// email can be sent to. Errors never echo the value.
pub(crate) fn person_email(field: &str, value: &str) -> Result<String, Problem> {
    let value = value.trim();
    check_length(value, EMAIL_MAX_CHARS).map_err(|e| invalid(field, &e))?;
    psabridge_core::email::parse_address(value)
        .map_err(|why| invalid(field, &format!("is not an email address ({why})")))?;
    Ok(value.to_string())
}

/// A checked name of a person.
pub(crate) fn person_name(field: &str, value: Option<String>) -> Result<Option<String>, Problem> {
    match value.map(|n| n.trim().to_string()) {
        None => Ok(None),
        Some(n) if n.is_empty() => Ok(None),
        Some(n) => {
            check_length(&n, NAME_MAX_CHARS).map_err(|e| invalid(field, &e))?;
            if n.chars().any(char::is_control) {
                return Err(invalid(field, "must not contain control characters"));
            }
            Ok(Some(n))
        }
    }
}

/// What became of the invitation's email. Depends only on how email is set up, never on
/// the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Emailed,
    NotSent,
    Failed,
}

impl Delivery {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Delivery::Emailed => "emailed",
            Delivery::NotSent => "not_sent",
            Delivery::Failed => "failed",
        }
    }
}

fn mailer(s: &AppState) -> Option<Arc<dyn Mailer>> {
    s.accounts.mailer.clone().or_else(|| s.engine.mailer())
}

/// How the person sets their password with `token`: the portal's page when there is one,
/// else the API call. Lines stay short so that mail transport does not fold the token.
fn link_text(s: &AppState, token: &str) -> String {
    match &s.sso.portal_url {
        Some(portal) => format!("{}/invitation#token={token}", portal.trim_end_matches('/')),
        None => {
            let base = s.public_url.as_deref().unwrap_or("").trim_end_matches('/');
            format!(
                "  POST {base}/api/v1/auth/password\n  with the JSON body\n  \
                 {{\"token\": \"<the token>\", \"password\": \"<your new password>\"}}\n\n\
                 The token:\n  {token}"
            )
        }
    }
}

/// The email a person receives: with the link when they have no password, else how to
/// accept after logging in.
pub fn invitation_email(
    partner_name: &str,
    role: Role,
    invitee: Invitee,
    invitation_id: i64,
    link: &str,
    expires: chrono::DateTime<chrono::Utc>,
) -> (String, String) {
    let subject = format!("You are invited to {partner_name} on PSA Bridge");
    let opening = format!(
        "You have been invited to join {partner_name}\non PSA Bridge as {}.\n\n",
        role.label()
    );
    let until = expires.format("%Y-%m-%d %H:%M UTC");
    let how = match invitee {
        Invitee::NoAccount | Invitee::NoPassword => format!(
            "To accept, choose your password:\n\n{link}\n\n\
             The token works once, until {until}.\n"
        ),
        Invitee::Account => format!(
            "You already have an account. To accept, log in with your\n\
             password and accept invitation {invitation_id}:\n  \
             GET /api/v1/auth/invitations\n  \
             POST /api/v1/auth/invitations/{invitation_id}/accept\n\
             (or .../decline). It stands until {until}.\n"
        ),
    };
    let closing =
        "\nIf you did not expect this, ignore this email:\nnothing changes until you accept.\n";
    (subject, format!("{opening}{how}{closing}"))
}

pub(crate) async fn send_invitation(
    s: &AppState,
    invitation: &Invitation,
    invitee: Invitee,
    token: &str,
) -> Result<Delivery, Problem> {
    let Some(mailer) = mailer(s) else {
        return Ok(Delivery::NotSent);
    };
    let partner = s.store.partner(&invitation.partner_id).await?;
    let role = Role::parse(&invitation.role).unwrap_or(Role::ReadOnly);
    let (subject, body) = invitation_email(
        &partner.name,
        role,
        invitee,
        invitation.id,
        &link_text(s, token),
        psabridge_store::from_millis(invitation.expires_at),
    );
    let mail = OutgoingMail {
        recipients: vec![invitation.email.clone()],
        subject,
        body,
        message_id: format!(
            "<psabridge.invitation.{}.{}@{}>",
            invitation.id,
            &new_token()[..16],
            mailer.sender_domain()
        ),
    };
    Ok(match mailer.send(&mail).await {
        Ok(()) => Delivery::Emailed,
        Err(MailError::Transient(e) | MailError::Permanent(e)) => {
            // The address is the partner's own input; the reason stays in the log.
            tracing::warn!(invitation = invitation.id, error = %e, "the invitation email was not sent");
            Delivery::Failed
        }
    })
}

/// `POST /api/v1/partners/{p}/users`: invite an address. The same 202 and shape whether or
/// not the address has an account anywhere; 409 only for the partner's own facts (already a
/// member here, a second Primary).
pub(crate) async fn add_user(
    State(s): State<AppState>,
    caller: Caller,
    me: CurrentUser,
    Path(p): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let body = body_json(&body)?;
    let email = person_email(
        "email",
        &string_field(&body, "email", true)?.unwrap_or_default(),
    )?;
    let name = person_name("name", string_field(&body, "name", false)?)?;
    let role = string_field(&body, "role", true)?
        .map(|r| {
            Role::parse(&r).ok_or_else(|| {
                invalid(
                    "role",
                    "must be one of primary, security_admin, admin, technician, read_only",
                )
            })
        })
        .transpose()?
        .unwrap_or(Role::ReadOnly);
    let (view, delivery) = invite(&s, &caller, me.0.is_some(), &p, email, name, role).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "invitation": view,
            "delivery": delivery,
            "detail": "the person becomes a member once they accept the invitation",
        })),
    ))
}

/// Invite a (checked) address to `p` with `role`, email the link and audit it: the invitation
/// as the API shows it and how it was delivered. A person (`by_person`) cannot make a new
/// Primary; the Primary hands it over instead. The API and the portal's "Invite".
pub(crate) async fn invite(
    s: &AppState,
    caller: &Caller,
    by_person: bool,
    p: &str,
    email: String,
    name: Option<String>,
    role: Role,
) -> Result<(Value, &'static str), Problem> {
    if role == Role::Primary && by_person {
        return Err(invalid(
            "role",
            "a person cannot make a new Primary; the Primary transfers it with PATCH",
        ));
    }
    let now = s.accounts.clock.now_ms();
    let token = new_token();
    let (invitation, invitee) = s
        .store
        .invite(
            &NewInvitation {
                partner_id: p,
                email: &email,
                name: name.as_deref(),
                role: role.as_str(),
                token_hash: &token_hash(&token),
                invited_by: &caller.1.0,
                expires_at: now + s.accounts.setup_link_lifetime.as_millis() as i64,
            },
            now,
        )
        .await?;
    let delivery = send_invitation(s, &invitation, invitee, &token).await?;
    let view = partner_view(&invitation);
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: &caller.1.0,
                action: "user.invite",
                target: &format!("invitation:{}", invitation.id),
                before: None,
                after: Some(&json!({"invitation": view, "delivery": delivery.as_str()})),
            },
            now,
        )
        .await?;
    Ok((view, delivery.as_str()))
}

async fn list_of_partner(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let list = s
        .store
        .invitations_of_partner(&p, s.accounts.clock.now_ms())
        .await?;
    Ok(Json(
        json!({"invitations": list.iter().map(partner_view).collect::<Vec<_>>()}),
    ))
}

fn parse_id(id: &str) -> Result<i64, Problem> {
    id.parse()
        .map_err(|_| Problem::not_found(format!("invitation {id}")))
}

async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    let invitation = s.store.revoke_invitation(&p, parse_id(&id)?).await?;
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(&p),
                actor: &caller.1.0,
                action: "user.invitation_revoked",
                target: &format!("invitation:{}", invitation.id),
                before: Some(&partner_view(&invitation)),
                after: None,
            },
            s.accounts.clock.now_ms(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/auth/invitations`: the logged-in person's pending invitations.
async fn mine(State(s): State<AppState>, me: SessionUser) -> Result<Json<Value>, Problem> {
    let list = s
        .store
        .invitations_for(&me.user.email, s.accounts.clock.now_ms())
        .await?;
    let mut out = Vec::with_capacity(list.len());
    for i in &list {
        let partner = s.store.partner(&i.partner_id).await?;
        out.push(json!({
            "id": i.id,
            "partner": i.partner_id,
            "partner_name": partner.name,
            "role": i.role,
            "invited_at": psabridge_store::from_millis(i.created_at),
            "expires_at": psabridge_store::from_millis(i.expires_at),
        }));
    }
    Ok(Json(json!({"invitations": out})))
}

/// Only a session the person opened with their own password may accept or decline: an
/// identity provider's session is vouched for by a partner, and a partner must not accept
/// another partner's invitation for someone.
fn require_own_login(me: &SessionUser) -> Result<(), Problem> {
    if me.session.auth_method == "idp" {
        return Err(Problem::forbidden(
            "accept or decline invitations after logging in with your password (or use the link in the invitation email)",
        ));
    }
    Ok(())
}

async fn audit_answer(
    s: &AppState,
    me: &SessionUser,
    invitation: &Invitation,
    action: &str,
) -> Result<(), Problem> {
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(&invitation.partner_id),
                actor: &format!("user:{} {:?}", me.user.id, me.user.email),
                action,
                target: &format!("invitation:{}", invitation.id),
                before: None,
                after: Some(&json!({"user": me.user.id, "role": invitation.role})),
            },
            s.accounts.clock.now_ms(),
        )
        .await?;
    Ok(())
}

async fn accept(
    State(s): State<AppState>,
    me: SessionUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require_own_login(&me)?;
    let invitation = s
        .store
        .accept_invitation(parse_id(&id)?, me.user.id, s.accounts.clock.now_ms())
        .await?;
    audit_answer(&s, &me, &invitation, "user.invitation_accepted").await?;
    let reaches = me
        .session
        .partner_id
        .as_deref()
        .is_none_or(|p| p == invitation.partner_id);
    Ok(Json(json!({
        "partner": invitation.partner_id,
        "role": invitation.role,
        "detail": if reaches {
            "you are a member now"
        } else {
            "you are a member now; this session is for another partner: log in with `partner` to open this one"
        },
    })))
}

async fn decline(
    State(s): State<AppState>,
    me: SessionUser,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    require_own_login(&me)?;
    let invitation = s
        .store
        .decline_invitation(parse_id(&id)?, me.user.id)
        .await?;
    audit_answer(&s, &me, &invitation, "user.invitation_declined").await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_email_carries_the_link_only_to_a_person_without_a_password() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for invitee in [Invitee::NoAccount, Invitee::NoPassword] {
            let (subject, body) =
                invitation_email("MSP A", Role::Technician, invitee, 7, "LINK-123", at);
            assert_eq!(subject, "You are invited to MSP A on PSA Bridge");
            assert!(
                body.contains("LINK-123") && body.contains("Technician"),
                "{body}"
            );
        }
        let (_, body) = invitation_email("MSP A", Role::Admin, Invitee::Account, 7, "LINK-123", at);
        assert!(!body.contains("LINK-123"), "{body}");
        assert!(body.contains("/api/v1/auth/invitations/7/accept"), "{body}");
        // Short lines: mail transport never folds the token.
        let (_, body) = invitation_email(
            "MSP A",
            Role::Admin,
            Invitee::NoAccount,
            7,
            &format!("  POST /x\n\nThe token:\n  {}", "a".repeat(64)),
            at,
        );
        assert!(body.lines().all(|l| l.len() <= 76), "{body}");
    }
}
