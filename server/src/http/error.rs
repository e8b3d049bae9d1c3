//! [`Error`] as an HTTP response: the status from its code and the one JSON body shape.
//! The internal cause rides in a response extension for the access log, never in the body.

use crate::error::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quietline_proto::{ErrorBody, ErrorCode};

/// Internal cause of a 5xx, for the log middleware.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = ErrorBody::new(self.code);
        body.error.recipients = self.recipients;
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(body)).into_response();
        if let Some(cause) = self.internal {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

/// The error body for a status produced outside our handlers (405 from the router, 413
/// from a body limit, a caught panic).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::Timeout,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    }
}
