//! The glue between handlers and the operations layer (`psabridge_ops`): the acting principal
//! of a request as operations take it, and their refusals as problem+json.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use psabridge_identity::Role;
use psabridge_ops::{Authority, OpsError};
use serde_json::Value;

use crate::AppState;
use crate::accounts::SessionUser;
use crate::auth::{Caller, TokenGrant};
use crate::problem::Problem;

/// The caller as `psabridge_ops::Acting`: a token with its scopes, or a person with their role
/// at the partner the session reaches (the partner the route names is checked by the
/// operation).
pub struct Acting(pub psabridge_ops::Acting);

impl FromRequestParts<AppState> for Acting {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Acting, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let authority = if let Some(grant) = parts.extensions.get::<TokenGrant>() {
            Authority::Scopes(grant.scopes.clone())
        } else if let Some(person) = parts.extensions.get::<SessionUser>() {
            // A session reaches one partner (or, person-wide, several: the middleware already
            // checked the role at the route's partner, which is the caller's principal).
            let partner = caller.implied_partner();
            match person
                .memberships
                .iter()
                .find(|m| Some(m.partner_id.as_str()) == partner)
                .and_then(|m| Role::parse(&m.role))
            {
                Some(role) => Authority::Role(role),
                None => Authority::Scopes(Vec::new()),
            }
        } else {
            // No credentials the middleware or the extractor above recognised would have
            // reached here; hold such a caller to nothing.
            Authority::Scopes(Vec::new())
        };
        Ok(Acting(psabridge_ops::Acting {
            principal: caller.0,
            actor: caller.1.0,
            authority,
        }))
    }
}

impl From<OpsError> for Problem {
    fn from(e: OpsError) -> Problem {
        match e {
            OpsError::Invalid(errors) => Problem::invalid(errors),
            OpsError::NotFound(what) => Problem::not_found(what),
            OpsError::Forbidden(why) => Problem::forbidden(&why),
            OpsError::Conflict {
                title,
                detail,
                errors,
                references,
            } => {
                let mut p = Problem::new(StatusCode::CONFLICT, title).detail(detail);
                p.errors = errors;
                if !references.is_empty() {
                    p = p.with(
                        "references",
                        serde_json::to_value(&references).unwrap_or(Value::Null),
                    );
                }
                p
            }
            OpsError::PsaRefused(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "The PSA refused").detail(m)
            }
            OpsError::PsaUnavailable(m) => {
                Problem::new(StatusCode::BAD_GATEWAY, "The PSA is unavailable").detail(m)
            }
            OpsError::PsaNoAnswer(m) => {
                Problem::new(StatusCode::BAD_GATEWAY, "The PSA did not answer").detail(m)
            }
            OpsError::Misconfigured(m) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The connection is misconfigured",
            )
            .detail(m),
            OpsError::ConnectFailed { field, message } => {
                let mut p = Problem::invalid(vec![psabridge_core::event::FieldError::new(
                    field,
                    message.clone(),
                )]);
                p.title = "Connecting to the PSA failed".into();
                p.detail = Some(message);
                p
            }
            OpsError::Store(e) => e.into(),
            OpsError::Internal(m) => Problem::internal(m),
        }
    }
}

/// A PSA's error as problem+json (422 when it refused, 502 when it did not answer).
pub(crate) fn psa_problem(e: psabridge_psa::PsaError) -> Problem {
    psabridge_ops::psa_error(e).into()
}
