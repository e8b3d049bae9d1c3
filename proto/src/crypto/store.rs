//! Sealing for data at rest on the device: the session store and the device secrets.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per seal (docs/CRYPTO.md: random nonces
//! where a key is reused). A 24-byte nonce makes random collisions negligible for any
//! number of writes a phone will make under one key. Layout: `1 || nonce (24) ||
//! ciphertext || tag (16)`, the first byte being the format version.

use super::CryptoError;
use super::random::{OsRandom, RandomSource, random32};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const SEAL_FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// Bytes [`seal`] adds to the plaintext: format byte, nonce and tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// A 256-bit key for [`seal`] / [`open`]; wiped when dropped, never printed.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(***)")
    }
}

impl StoreKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(StoreKey(random32(&mut OsRandom)?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StoreKey(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Encrypt `plaintext`, binding `aad` (for example the record's name, so sealed records
/// cannot be swapped), under a fresh random nonce.
pub fn seal(key: &StoreKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal_with(key, aad, plaintext, &mut OsRandom)
}

/// [`seal`] with a chosen nonce source (tests only).
pub fn seal_with(
    key: &StoreKey,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let ciphertext = XChaCha20Poly1305::new(key.0.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::TooLarge)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(SEAL_FORMAT);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypt what [`seal`] made under the same key and `aad`. Never panics on any input.
pub fn open(key: &StoreKey, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (&format, rest) = sealed.split_first().ok_or(CryptoError::Malformed)?;
    if format != SEAL_FORMAT {
        return Err(CryptoError::UnsupportedVersion);
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.0.as_ref().into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::DecryptFailed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = StoreKey::generate().unwrap();
        let sealed = seal(&key, b"session/1", b"ratchet state").unwrap();
        assert_eq!(sealed.len(), 13 + SEAL_OVERHEAD);
        assert_eq!(
            &open(&key, b"session/1", &sealed).unwrap()[..],
            b"ratchet state"
        );
        assert_eq!(
            open(&key, b"session/2", &sealed).unwrap_err(),
            CryptoError::DecryptFailed
        );
        let other = StoreKey::generate().unwrap();
        assert_eq!(
            open(&other, b"session/1", &sealed).unwrap_err(),
            CryptoError::DecryptFailed
        );
        assert!(open(&key, b"", &[]).is_err());
        assert!(open(&key, b"", &sealed[..20]).is_err());
        // Two seals of the same data differ (random nonce).
        assert_ne!(
            seal(&key, b"", b"x").unwrap(),
            seal(&key, b"", b"x").unwrap()
        );
    }
}
