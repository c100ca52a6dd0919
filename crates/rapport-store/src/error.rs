use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store call failed. Every variant but `Backend` is the caller's doing and carries a stable code that the
/// http crate passes on to clients.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The record does not exist in this workspace (or belongs to another one, which reads the same).
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    /// The write would break a uniqueness or usage rule: a duplicate key, an identity owned by another contact,
    /// a tag still in use.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The input refers to something that does not exist or is not allowed, e.g. an unknown stage key.
    #[error("{field}: {message}")]
    Invalid { code: &'static str, field: String, message: String },
    /// The database failed; the cause chain goes to the log, never to the client.
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

impl StoreError {
    pub fn not_found(entity: &'static str) -> StoreError {
        StoreError::NotFound { entity }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> StoreError {
        StoreError::Conflict { code, message: message.into() }
    }

    pub fn invalid(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> StoreError {
        StoreError::Invalid { code, field: field.into(), message: message.into() }
    }
}
