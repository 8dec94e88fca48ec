//! What an operation can answer instead of its result. Each variant is one kind of refusal a
//! caller shows differently (the HTTP API maps them to problem+json statuses; a CLI prints
//! them); none carries a secret.

use psabridge_core::event::FieldError;
use psabridge_store::StoreError;
use serde::Serialize;

/// Something that still points at what a caller wants to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// Where the reference is, as a path relative to the partner (`clients/acme/mappings/3`).
    pub what: String,
    /// The same for a person to read.
    pub detail: String,
}

/// Why an operation did nothing (or, for a PSA that failed after the change, what failed).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Fields of the request are wrong; each names its path and the problem.
    #[error("{} field(s) are invalid", .0.len())]
    Invalid(Vec<FieldError>),
    /// The thing (or the partner) does not exist for this caller.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is valid but the current state refuses it (still referenced, email not
    /// configured); `errors` names the fields when a field is at fault.
    #[error("{title}: {detail}")]
    Conflict {
        title: String,
        detail: String,
        errors: Vec<FieldError>,
        references: Vec<Reference>,
    },
    /// The PSA refused what was asked of it (credentials, a company, a contract).
    #[error("the PSA refused: {0}")]
    PsaRefused(String),
    /// The PSA did not answer, or answered with an error of its own.
    #[error("the PSA is unavailable: {0}")]
    PsaUnavailable(String),
    /// "Connect" failed on a transient PSA error.
    #[error("the PSA did not answer: {0}")]
    PsaNoAnswer(String),
    /// The stored connection cannot build a connector.
    #[error("the connection is misconfigured: {0}")]
    Misconfigured(String),
    /// "Connect" failed for a reason the credentials most likely cause: `field` names the one.
    #[error("connecting to the PSA failed: {message}")]
    ConnectFailed { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A broken invariant of ours; the message is for the log, not the caller.
    #[error("internal: {0}")]
    Internal(String),
}

impl OpsError {
    /// One bad field.
    pub fn field(path: impl Into<String>, problem: impl Into<String>) -> OpsError {
        OpsError::Invalid(vec![FieldError::new(path, problem)])
    }

    /// `Ok` when nothing is wrong, else every error at once.
    pub fn check(errors: Vec<FieldError>) -> Result<(), OpsError> {
        match errors.is_empty() {
            true => Ok(()),
            false => Err(OpsError::Invalid(errors)),
        }
    }

    /// 409-like refusal naming what still references `what`.
    pub fn still_referenced(what: &str, references: Vec<Reference>) -> OpsError {
        OpsError::Conflict {
            title: format!("The {what} is still in use"),
            detail: format!(
                "the {what} is referenced {} time(s); point those at something else first",
                references.len()
            ),
            errors: Vec::new(),
            references,
        }
    }

    /// The field errors, if this is a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            OpsError::Invalid(e) => e,
            OpsError::Conflict { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// Result of an operation.
pub type OpsResult<T> = Result<T, OpsError>;
