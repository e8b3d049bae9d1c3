//! What travels inside the ratchet: the plaintext format of one message.
//!
//! The relay keeps no sender column (ARCHITECTURE.md, envelopes): who sent a message is said
//! here, inside the ciphertext, where only the recipient device reads it. The format is JSON,
//! versioned, and tolerant of message types a newer client may add (they decode as
//! [`Body::Unknown`] rather than failing).

use quietline_proto::Id;
use quietline_proto::wire::Certificate;
use serde::{Deserialize, Serialize};

/// Version of the plaintext format.
pub const PAYLOAD_VERSION: u8 = 1;

/// The plaintext of one message, before padding and encryption.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// [`PAYLOAD_VERSION`].
    pub v: u8,
    /// The sending device. The recipient binds the session it opened this message with to
    /// this id, so its replies go to the right device.
    pub from: Id,
    /// A member device's certificate from its organisation, carried in the first messages
    /// of a session so the recipient can check who started it (docs/CRYPTO.md, "Trust").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<Certificate>,
    #[serde(flatten)]
    pub body: Body,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("v", &self.v)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// What a message says.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// A chat message.
    Text { text: String },
    /// A message type this client does not know (from a newer client).
    #[serde(other)]
    Unknown,
}

impl Body {
    pub fn text(text: impl Into<String>) -> Body {
        Body::Text { text: text.into() }
    }

    /// The text of a [`Body::Text`].
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Body::Text { text } => Some(text),
            Body::Unknown => None,
        }
    }
}

impl std::fmt::Debug for Body {
    // Message content stays out of logs and panic messages: only its length shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Text { text } => write!(f, "Text(len={})", text.len()),
            Body::Unknown => f.write_str("Unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_tolerate_new_types() {
        let p = Payload {
            v: PAYLOAD_VERSION,
            from: Id([3; 16]),
            cert: None,
            body: Body::text("hello"),
        };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""type":"text""#), "{json}");
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), p);

        let newer = format!(
            r#"{{"v":1,"from":"{}","type":"handoff","to_member":"x"}}"#,
            Id([3; 16])
        );
        let parsed: Payload = serde_json::from_str(&newer).unwrap();
        assert_eq!(parsed.body, Body::Unknown);
    }

    #[test]
    fn debug_hides_content() {
        let shown = format!("{:?}", Body::text("meet at the library"));
        assert!(!shown.contains("library"));
    }
}
