//! The key derivations of X3DH and the Double Ratchet, and the checked X25519 agreement.
//!
//! Kept in one place so the frozen vectors and the Python cross-check (proto/tests/vectors/)
//! have a single definition to match: HKDF-SHA256 and HMAC-SHA256 exactly as Signal's X3DH
//! and Double Ratchet specifications recommend, with Quietline's `info` labels.

use super::CryptoError;
use super::labels;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// A 32-byte secret (root, chain or message key) that is wiped when dropped.
pub(crate) type Key = Zeroizing<[u8; 32]>;

pub(crate) fn key(bytes: [u8; 32]) -> Key {
    Zeroizing::new(bytes)
}

/// X25519, refusing a non-contributory result (the all-zero output of a low-order peer
/// key): a peer, or a server substituting keys, must not be able to force a known secret.
pub(crate) fn dh(secret: &StaticSecret, public: &PublicKey) -> Result<Key, CryptoError> {
    let shared = secret.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(CryptoError::NonContributory);
    }
    Ok(key(shared.to_bytes()))
}

/// X3DH: `SK = HKDF(salt = 0^32, IKM = F || DH1 || DH2 || DH3 [|| DH4], info)` where `F` is
/// 32 bytes of 0xFF (X3DH §2.2, for X25519).
pub(crate) fn x3dh_secret(dhs: &[&Key]) -> Result<Key, CryptoError> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * (dhs.len() + 1)));
    ikm.extend_from_slice(&[0xFF; 32]);
    for dh in dhs {
        ikm.extend_from_slice(dh.as_ref());
    }
    let hk = Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm);
    let mut sk = key([0; 32]);
    hk.expand(labels::X3DH_INFO, sk.as_mut())
        .map_err(|_| CryptoError::Malformed)?;
    Ok(sk)
}

/// `KDF_RK(rk, dh_out)`: HKDF-SHA256 with the root key as salt, giving the next root key
/// and a chain key (Double Ratchet §5.2).
pub(crate) fn kdf_rk(rk: &Key, dh_out: &Key) -> Result<(Key, Key), CryptoError> {
    let hk = Hkdf::<Sha256>::new(Some(rk.as_ref()), dh_out.as_ref());
    let mut okm = Zeroizing::new([0u8; 64]);
    hk.expand(labels::RATCHET_INFO, okm.as_mut())
        .map_err(|_| CryptoError::Malformed)?;
    let mut root = key([0; 32]);
    let mut chain = key([0; 32]);
    root.copy_from_slice(&okm[..32]);
    chain.copy_from_slice(&okm[32..]);
    Ok((root, chain))
}

/// `KDF_CK(ck)`: message key = HMAC-SHA256(ck, 0x01), next chain key = HMAC-SHA256(ck, 0x02)
/// (Double Ratchet §5.2). Returns `(next chain key, message key)`. The keyed HMAC state is
/// computed once and cloned for the two outputs.
pub(crate) fn kdf_ck(ck: &Key) -> (Key, Key) {
    let mut next = key([0; 32]);
    let mut mk = key([0; 32]);
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here; the `if let`
    // keeps the no-panic rule without an unreachable branch.
    if let Ok(keyed) = <HmacSha256 as Mac>::new_from_slice(ck.as_ref()) {
        let mut m = keyed.clone();
        m.update(&[0x01]);
        mk.copy_from_slice(&m.finalize().into_bytes());
        let mut c = keyed;
        c.update(&[0x02]);
        next.copy_from_slice(&c.finalize().into_bytes());
    }
    (next, mk)
}

/// HMAC-SHA256 keyed with 32 zero bytes, the salt of HKDF-Extract for message keys; the key
/// schedule is the same for every message, so it is computed once.
fn zero_salt_hmac() -> Option<&'static HmacSha256> {
    static ZERO_SALT: OnceLock<Option<HmacSha256>> = OnceLock::new();
    ZERO_SALT
        .get_or_init(|| <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).ok())
        .as_ref()
}

/// The AEAD key and nonce of one message: `HKDF(salt = 0^32, IKM = mk, info)` → 32-byte
/// ChaCha20-Poly1305 key and 12-byte nonce. Each message key is used for exactly one
/// message, so a derived nonce never repeats under its key.
///
/// This is plain RFC 5869 HKDF: Extract is `HMAC(salt, IKM)` computed from the cached salt
/// state, Expand is the `hkdf` crate's. (The `info` label is kept to at most 22 bytes so
/// the second output block fits one SHA-256 block; both are cost, not security, choices.)
pub(crate) fn message_keys(mk: &Key) -> Result<(Key, [u8; 12]), CryptoError> {
    let mut extract = zero_salt_hmac().ok_or(CryptoError::Malformed)?.clone();
    extract.update(mk.as_ref());
    let mut prk = key([0; 32]);
    prk.copy_from_slice(&extract.finalize().into_bytes());
    let hk = Hkdf::<Sha256>::from_prk(prk.as_ref()).map_err(|_| CryptoError::Malformed)?;
    let mut okm = Zeroizing::new([0u8; 44]);
    hk.expand(labels::MESSAGE_KEYS_INFO, okm.as_mut())
        .map_err(|_| CryptoError::Malformed)?;
    let mut aead_key = key([0; 32]);
    aead_key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    Ok((aead_key, nonce))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_are_rfc5869_hkdf_with_zero_salt() {
        let mk = key([0x5c; 32]);
        let mut expected = [0u8; 44];
        Hkdf::<Sha256>::new(Some(&[0u8; 32]), mk.as_ref())
            .expand(labels::MESSAGE_KEYS_INFO, &mut expected)
            .unwrap();
        let (k, n) = message_keys(&mk).unwrap();
        assert_eq!(&k[..], &expected[..32]);
        assert_eq!(&n[..], &expected[32..]);
        let mut direct = [0u8; 32];
        let mut m = <HmacSha256 as Mac>::new_from_slice(mk.as_ref()).unwrap();
        m.update(&[0x01]);
        direct.copy_from_slice(&m.finalize().into_bytes());
        assert_eq!(*kdf_ck(&mk).1, direct);
    }

    #[test]
    fn chain_kdf_separates_message_and_chain_keys() {
        let ck = key([7; 32]);
        let (next, mk) = kdf_ck(&ck);
        assert_ne!(*next, *mk);
        assert_ne!(*next, *ck);
    }

    #[test]
    fn dh_with_a_low_order_point_is_refused() {
        let secret = StaticSecret::from([9u8; 32]);
        assert_eq!(
            dh(&secret, &PublicKey::from([0u8; 32])).map(|_| ()),
            Err(CryptoError::NonContributory)
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(dh(&secret, &PublicKey::from(one)).is_err());
    }
}
