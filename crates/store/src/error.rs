use thiserror::Error;

/// What can go wrong in storage, classified for the caller.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The thing asked for does not exist (or is not the caller's partner's).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule refused the write (e.g. a partner id already taken).
    #[error("{0}")]
    Conflict(String),
    /// The write refers to something that does not exist or is still referenced.
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("secret sealing failed: {0}")]
    Seal(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The batched write of accepted events failed; none of the batch was stored.
    #[error("storing the events failed: {0}")]
    Write(String),
    /// The store is shutting down; the request was not carried out.
    #[error("the store is shutting down")]
    Closed,
}

impl StoreError {
    /// Map a unique-constraint violation to [`StoreError::Conflict`] with `what`.
    pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Invalid(what())
            }
            _ => StoreError::Database(e),
        }
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
