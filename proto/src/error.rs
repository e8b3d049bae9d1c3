//! The one error shape of every 4xx/5xx response (docs/THREAT_MODEL.md, invariant 7).
//!
//! `{"error": {"code": "...", "message": "..."}}`, plus the current recipient list for
//! `stale_recipients`. Messages are fixed, human-readable and never echo request data.

use crate::Id;
use serde::{Deserialize, Serialize};

/// Machine-readable error codes. Stable: clients match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a missing or invalid field, a bad id.
    BadRequest,
    /// No valid credentials, or credentials that have expired or been revoked.
    Unauthorized,
    /// Signed in, but this action needs another role.
    Forbidden,
    /// Nothing here, or nothing the caller may see (the two are not told apart).
    NotFound,
    /// The method is not allowed on this route.
    MethodNotAllowed,
    /// The state changed under the request (already claimed, already exists).
    Conflict,
    /// The envelope list does not match the conversation's current devices; the body
    /// carries the current list.
    StaleRecipients,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The body is not JSON, or not the content type this route takes.
    UnsupportedMediaType,
    /// An envelope's size is not one of the padding buckets.
    BadEnvelopeSize,
    /// The proof-of-work is missing, wrong, expired or already used.
    InvalidProofOfWork,
    /// A recipient device holds as many undelivered envelopes as it may.
    QuotaExceeded,
    /// Too many requests or attempts; try again later.
    RateLimited,
    /// The request took too long.
    Timeout,
    /// Something failed on the server. Details are in the server's log, never here.
    Internal,
    /// The server cannot serve right now (database unreachable, shutting down).
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status each code is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::BadEnvelopeSize | ErrorCode::InvalidProofOfWork => {
                400
            }
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::StaleRecipients => 409,
            ErrorCode::Timeout => 408,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::QuotaExceeded | ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The fixed message sent with each code.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "the request is malformed",
            ErrorCode::Unauthorized => "missing, invalid or expired credentials",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::NotFound => "not found",
            ErrorCode::MethodNotAllowed => "method not allowed",
            ErrorCode::Conflict => "the request conflicts with the current state",
            ErrorCode::StaleRecipients => "the recipient list is out of date",
            ErrorCode::PayloadTooLarge => "the request body is too large",
            ErrorCode::UnsupportedMediaType => "expected a JSON body",
            ErrorCode::BadEnvelopeSize => "an envelope size is not an allowed bucket",
            ErrorCode::InvalidProofOfWork => "the proof of work is missing or invalid",
            ErrorCode::QuotaExceeded => "a recipient's queue is full",
            ErrorCode::RateLimited => "too many requests; try again later",
            ErrorCode::Timeout => "the request took too long",
            ErrorCode::Internal => "internal error",
            ErrorCode::Unavailable => "temporarily unavailable",
        }
    }
}

/// Body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// With `stale_recipients`: the devices the conversation's envelopes must go to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<Id>>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: code.default_message().to_owned(),
                recipients: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ErrorBody::new(ErrorCode::NotFound);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "not found"}})
        );
    }

    #[test]
    fn every_code_is_an_error_status() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::StaleRecipients,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::BadEnvelopeSize,
            ErrorCode::InvalidProofOfWork,
            ErrorCode::QuotaExceeded,
            ErrorCode::RateLimited,
            ErrorCode::Timeout,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ] {
            assert!((400..600).contains(&code.status()));
            assert!(!code.default_message().is_empty());
        }
    }
}
