//! Binary fields on the wire: unpadded base64url strings in JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Opaque bytes, carried as an unpadded base64url string.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for Bytes {
    // Never print the contents: they may be ciphertext or key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes(len={})", self.0.len())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode(&text)
            .map(Bytes)
            .map_err(|_| serde::de::Error::custom("expected unpadded base64url"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Bytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("unpadded base64url bytes"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Bytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_padding_and_standard_alphabet() {
        let b = Bytes(vec![0xfb, 0xff, 0x00]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"-_8A\"");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"+/8A\"").is_err());
        assert!(serde_json::from_str::<Bytes>("\"AA==\"").is_err());
        assert!(serde_json::from_str::<Bytes>("12").is_err());
    }
}
