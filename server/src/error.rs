//! The one error type of the service and HTTP layers (docs/THREAT_MODEL.md, invariant 7).
//!
//! An [`Error`] carries a [`ErrorCode`] from `proto` and, for `stale_recipients`, the current
//! device list. Internal causes are kept for the log and never reach the client; they must not
//! contain secrets or survivor identifiers (database errors do not include bound values).

use crate::store::StoreError;
use quietline_proto::{ErrorCode, Id};

#[derive(Debug)]
pub struct Error {
    pub code: ErrorCode,
    pub recipients: Option<Vec<Id>>,
    /// For the server log only.
    pub internal: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode) -> Self {
        Error {
            code,
            recipients: None,
            internal: None,
        }
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error {
            code: ErrorCode::Internal,
            recipients: None,
            internal: Some(cause.to_string()),
        }
    }
    pub fn stale(recipients: Vec<Id>) -> Self {
        Error {
            code: ErrorCode::StaleRecipients,
            recipients: Some(recipients),
            internal: None,
        }
    }
    pub fn bad_request() -> Self {
        Error::new(ErrorCode::BadRequest)
    }
    pub fn not_found() -> Self {
        Error::new(ErrorCode::NotFound)
    }
    pub fn unauthorized() -> Self {
        Error::new(ErrorCode::Unauthorized)
    }
    pub fn forbidden() -> Self {
        Error::new(ErrorCode::Forbidden)
    }
    pub fn conflict() -> Self {
        Error::new(ErrorCode::Conflict)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.internal {
            Some(cause) => write!(f, "{:?}: {cause}", self.code),
            None => write!(f, "{:?}", self.code),
        }
    }
}

impl std::error::Error for Error {}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::new(code)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Error::conflict(),
            StoreError::Quota => Error::new(ErrorCode::QuotaExceeded),
            StoreError::Db(sqlx::Error::PoolTimedOut) => Error {
                code: ErrorCode::Unavailable,
                recipients: None,
                internal: Some("database pool timed out".into()),
            },
            other => Error::internal(other),
        }
    }
}
