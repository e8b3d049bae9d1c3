//! The SDK's one error type.
//!
//! An answer from the relay that is not a success keeps its HTTP status and, when the body has
//! the relay's uniform shape (docs/THREAT_MODEL.md, invariant 7), the parsed [`ErrorBody`], so callers
//! and tests can match on [`ErrorCode`]s such as `stale_recipients` and read the recipient list
//! that comes with it. Nothing here formats a token, a key or message content.

use quietline_proto::{ErrorBody, ErrorCode, Id};

/// Errors from the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The relay answered with an error status and its uniform error body.
    #[error("the relay answered {status} {code:?}: {message}", code = body.error.code, message = body.error.message)]
    Api { status: u16, body: ErrorBody },

    /// The relay (or a proxy in front of it) answered with an error status and a body that is
    /// not the relay's error shape. `body` is at most the first 512 bytes, lossily decoded.
    #[error("the server answered {status} without an error body")]
    Status { status: u16, body: String },

    /// The request could not be sent or the answer could not be read (connection refused,
    /// timeout, reset).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),

    /// The WebSocket stream failed.
    #[error("stream: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),

    /// A success answer whose body is not what the route promises.
    #[error("unexpected response body: {0}")]
    Decode(#[from] serde_json::Error),

    /// The base URL is not an absolute `http://` or `https://` URL.
    #[error("invalid base URL: {0}")]
    Url(String),

    /// A header name or value given to a raw request or the stream is not valid.
    #[error("invalid header: {0}")]
    Header(String),

    /// No proof-of-work solution was found (only possible with an absurd difficulty).
    #[error("no proof-of-work solution found")]
    ProofOfWork,

    /// A call that needs a bearer token was made without one.
    #[error("this call needs an access token")]
    NoToken,

    /// Encryption or decryption failed (a tampered, replayed or foreign envelope, a bad key,
    /// a message too large for the largest envelope).
    #[error("crypto: {0}")]
    Crypto(#[from] quietline_proto::crypto::CryptoError),

    /// A device whose identity this device had pinned now presents another one: a
    /// substituted key. Nothing was sent to it. Show it as a warning; never accept it
    /// silently (docs/CRYPTO.md, "Trust").
    #[error("the identity of a device in this conversation changed; nothing was sent")]
    IdentityChanged { device: Id },

    /// The trust rules refused a device, a bundle or the organisation key; nothing was sent
    /// to it (docs/CRYPTO.md, "Trust").
    #[error("refused: {reason}; nothing was sent")]
    Untrusted {
        device: Id,
        reason: crate::trust::Refusal,
    },

    /// The conversation has no recipient device right now (nobody on duty, nobody assigned).
    #[error("nobody can receive this message yet")]
    NoRecipients,

    /// Reading or writing the state file failed.
    #[error("state file: {0}")]
    Io(#[from] std::io::Error),

    /// The passphrase does not open the state file: it is wrong, or the file (its header
    /// included) was altered after it was written. The two cannot be told apart: the salt and
    /// cost parameters in the header are inputs to the key.
    #[error("the passphrase does not open this state file (wrong passphrase or altered file)")]
    WrongPassphrase,

    /// Another `StateFile` (in this process or another) holds the state's lock.
    #[error("the state is in use by another process")]
    StateLocked,

    /// The state file is not one this client reads: the old format with its key in a separate
    /// file, another kind of file, or key derivation parameters out of bounds.
    #[error("state file: {0}")]
    StateFormat(&'static str),

    /// The state is inconsistent with the request (for example, no session and no way to make
    /// one, or a conversation the client does not know).
    #[error("{0}")]
    State(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}

impl Error {
    /// The HTTP status of an error answer from the relay or a proxy.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } => Some(*status),
            Error::Transport(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The relay's error body, when it sent one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The relay's error code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.body().map(|b| b.error.code)
    }

    /// Is this an error answer from the relay with `code`?
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(code)
    }

    /// With `409 stale_recipients`: the devices the conversation's envelopes must go to now.
    pub fn stale_recipients(&self) -> Option<&[Id]> {
        match self.body() {
            Some(b) if b.error.code == ErrorCode::StaleRecipients => {
                Some(b.error.recipients.as_deref().unwrap_or(&[]))
            }
            _ => None,
        }
    }

    /// Build the error for a non-success answer: the relay's body if it parses, the raw text
    /// otherwise.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Error {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(body) => Error::Api { status, body },
            Err(_) => {
                let cut = &body[..body.len().min(512)];
                Error::Status {
                    status,
                    body: String::from_utf8_lossy(cut).into_owned(),
                }
            }
        }
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_recipients_body_exposes_the_current_list() {
        let a = Id([1; 16]);
        let b = Id([2; 16]);
        let json = format!(
            r#"{{"error":{{"code":"stale_recipients","message":"the recipient list is out of date","recipients":["{a}","{b}"]}}}}"#
        );
        let err = Error::from_response(409, json.as_bytes());
        assert_eq!(err.status(), Some(409));
        assert!(err.is(ErrorCode::StaleRecipients));
        assert_eq!(err.stale_recipients(), Some(&[a, b][..]));
    }

    #[test]
    fn other_codes_have_no_recipient_list() {
        let err = Error::from_response(401, br#"{"error":{"code":"unauthorized","message":"x"}}"#);
        assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
        assert_eq!(err.stale_recipients(), None);
    }

    #[test]
    fn a_body_of_another_shape_keeps_status_and_text() {
        let err = Error::from_response(502, b"<html>bad gateway</html>");
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.code(), None);
        match err {
            Error::Status { body, .. } => assert!(body.contains("bad gateway")),
            other => panic!("unexpected {other:?}"),
        }
        let long = vec![b'x'; 4096];
        match Error::from_response(500, &long) {
            Error::Status { body, .. } => assert_eq!(body.len(), 512),
            other => panic!("unexpected {other:?}"),
        }
    }
}
