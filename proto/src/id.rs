//! Unguessable 128-bit identifiers (docs/THREAT_MODEL.md, invariant 6).
//!
//! Every id the server hands out is 16 random bytes from the OS generator, carried as 22
//! characters of unpadded base64url. Parsing is strict: any other length or alphabet is refused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A 128-bit random identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid id")]
pub struct ParseIdError;

impl Id {
    pub const LEN: usize = 16;

    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        <[u8; 16]>::try_from(bytes).ok().map(Id)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::b64::encode(&self.0))
    }
}

impl fmt::Debug for Id {
    // Ids of survivors' devices and conversations must not end up in logs by accident
    // (docs/THREAT_MODEL.md, invariant 2): Debug prints nothing of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Id(***)")
    }
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 22 {
            return Err(ParseIdError);
        }
        let bytes = crate::b64::decode(s).map_err(|_| ParseIdError)?;
        Id::from_slice(&bytes).ok_or(ParseIdError)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("expected a 22-character id"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "128-bit random id, 22 characters of unpadded base64url",
            ))
            .min_length(Some(22))
            .max_length(Some(22))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Id {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_its_own_format() {
        let id = Id([7; 16]);
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<Id>(), Ok(id));
        assert!("".parse::<Id>().is_err());
        assert!("BwcHBwcHBwcHBwcHBwcHBw==".parse::<Id>().is_err());
        assert!("BwcHBwcHBwcHBwcHBwcHB".parse::<Id>().is_err());
        assert!("BwcHBwcHBwcHBwcHBwcH+w".parse::<Id>().is_err());
        assert_eq!(format!("{id:?}"), "Id(***)");
    }
}
