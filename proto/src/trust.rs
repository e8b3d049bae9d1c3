//! The organisation root of trust: device certificates and organisation key changes.
//!
//! Each organisation has an Ed25519 organisation key made and kept on a supervisor's machine
//! (signing lives in [`crypto::org`](crate::crypto::org), feature `crypto`). It certifies each
//! member device: a [`CertificateBody`] names the organisation, member, role, device, the
//! device's two identity keys and a validity window. The relay stores and serves certificates
//! but never holds the organisation key, so it cannot make one; clients pin the organisation
//! key and refuse any member device whose certificate does not verify under it
//! (docs/CRYPTO.md, "Organisation trust").
//!
//! The codec is always compiled (the server parses certificates it stores); verification
//! needs the `verify` feature (Ed25519 only), which `crypto` implies.

use crate::Id;
use crate::wire;
use sha2::{Digest, Sha512};

/// Format byte of [`CertificateBody::encode`].
pub const CERT_FORMAT: u8 = 1;
/// Longest organisation code a certificate or change statement carries, in bytes.
pub const MAX_ORG_CODE: usize = 64;
/// Most key changes [`verify_chain`] and [`chain_head`] walk: bounds the work a relay can
/// cause by serving a long (or endless) history.
pub const MAX_ORG_KEY_CHANGES: usize = 256;

/// Domain-separation labels of what organisation keys sign (docs/CRYPTO.md, "Labels").
pub mod labels {
    /// Prefix of the message an organisation key signs to certify a device.
    pub const CERTIFICATE: &[u8] = b"Quietline_DeviceCertificate_v1";
    /// Prefix of the statement by which an organisation key names its successor.
    pub const ORG_KEY_CHANGE: &[u8] = b"Quietline_OrgKeyChange_v1";
    /// Prefix of the hash input of an organisation key fingerprint.
    pub const ORG_FINGERPRINT: &[u8] = b"Quietline_OrgKey_Fingerprint_v1";
    /// Prefix of the message a device's Ed25519 key signs over its X25519 identity key (the
    /// identity binding; also `crypto::labels::IDENTITY_BINDING`).
    pub const IDENTITY_BINDING: &[u8] = b"Quietline_IdentityBinding_v1";
}

/// Version byte of the fingerprint hash input. Fixed: fingerprints must not change when the
/// message protocol's version does.
pub(crate) const FINGERPRINT_VERSION: u8 = 1;

/// Why a certificate, key or key change was refused. Messages are fixed and carry no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Not a well-formed certificate body, key chain or signature (length, version, role
    /// byte, UTF-8, validity order, trailing bytes).
    #[error("malformed certificate or key statement")]
    Malformed,
    /// The signature does not verify under the organisation key.
    #[error("bad signature")]
    BadSignature,
    /// The certificate or statement is for another organisation.
    #[error("certificate is for another organisation")]
    WrongOrganisation,
    /// The certificate is expired or not yet valid.
    #[error("certificate expired or not yet valid")]
    Expired,
    /// The certificate does not name the device or keys it was presented with.
    #[error("certificate does not match the device keys")]
    KeyMismatch,
    /// The pinned organisation key is not part of the key history served.
    #[error("pinned organisation key not in the key history")]
    NotInChain,
    /// Not a usable Ed25519 public key (wrong length, not a point, or of small order).
    #[error("invalid organisation key")]
    InvalidKey,
}

/// What an organisation key signs for one member device.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateBody {
    /// Organisation code, 1..=[`MAX_ORG_CODE`] bytes of UTF-8.
    pub org: String,
    pub member_id: Id,
    pub role: wire::Role,
    pub device_id: Id,
    /// The device's X25519 identity key.
    pub identity_key: [u8; 32],
    /// The device's Ed25519 signing key.
    pub signing_key: [u8; 32],
    /// Unix seconds, first second of validity.
    pub not_before: i64,
    /// Unix seconds, last second of validity; greater than `not_before`.
    pub not_after: i64,
}

impl std::fmt::Debug for CertificateBody {
    // Keys and ids identify people and devices: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateBody")
            .field("org", &self.org)
            .field("role", &self.role)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn role_byte(role: wire::Role) -> u8 {
    match role {
        wire::Role::Advocate => 1,
        wire::Role::Supervisor => 2,
    }
}

/// A bounds-checked reader over a byte slice (never panics).
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TrustError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(TrustError::Malformed)?;
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], TrustError> {
        self.take(N)?.try_into().map_err(|_| TrustError::Malformed)
    }
    fn u8(&mut self) -> Result<u8, TrustError> {
        Ok(self.array::<1>()?[0])
    }
}

fn check_org(org: &str) -> Result<u8, TrustError> {
    match u8::try_from(org.len()) {
        Ok(n) if n >= 1 && usize::from(n) <= MAX_ORG_CODE => Ok(n),
        _ => Err(TrustError::Malformed),
    }
}

impl CertificateBody {
    /// Length of an encoded body with an organisation code of `org_len` bytes.
    pub const fn encoded_len(org_len: usize) -> usize {
        1 + 1 + org_len + 16 + 1 + 16 + 32 + 32 + 8 + 8
    }

    /// The canonical bytes: `CERT_FORMAT | org len u8 | org | member_id 16 | role u8 (1
    /// advocate, 2 supervisor) | device_id 16 | identity_key 32 | signing_key 32 |
    /// not_before i64 BE | not_after i64 BE`. An organisation code that is empty or longer
    /// than [`MAX_ORG_CODE`] bytes is written as length 0 with no bytes: such a body never
    /// decodes, so a certificate made from it never verifies.
    pub fn encode(&self) -> Vec<u8> {
        let (len, org) = match check_org(&self.org) {
            Ok(len) => (len, self.org.as_bytes()),
            Err(_) => (0, &[][..]),
        };
        let mut out = Vec::with_capacity(Self::encoded_len(org.len()));
        out.push(CERT_FORMAT);
        out.push(len);
        out.extend_from_slice(org);
        out.extend_from_slice(self.member_id.as_bytes());
        out.push(role_byte(self.role));
        out.extend_from_slice(self.device_id.as_bytes());
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.signing_key);
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out
    }

    /// Parse the canonical bytes strictly: the exact length, format [`CERT_FORMAT`], a known
    /// role byte, a 1..=64-byte UTF-8 organisation code and `not_after > not_before`. Never
    /// panics; anything else is [`TrustError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Self, TrustError> {
        let mut r = Cursor(bytes);
        if r.u8()? != CERT_FORMAT {
            return Err(TrustError::Malformed);
        }
        let org_len = usize::from(r.u8()?);
        if org_len == 0 || org_len > MAX_ORG_CODE || bytes.len() != Self::encoded_len(org_len) {
            return Err(TrustError::Malformed);
        }
        let org = std::str::from_utf8(r.take(org_len)?)
            .map_err(|_| TrustError::Malformed)?
            .to_owned();
        let member_id = Id(r.array()?);
        let role = match r.u8()? {
            1 => wire::Role::Advocate,
            2 => wire::Role::Supervisor,
            _ => return Err(TrustError::Malformed),
        };
        let device_id = Id(r.array()?);
        let identity_key = r.array()?;
        let signing_key = r.array()?;
        let not_before = i64::from_be_bytes(r.array()?);
        let not_after = i64::from_be_bytes(r.array()?);
        if !r.0.is_empty() || not_after <= not_before {
            return Err(TrustError::Malformed);
        }
        Ok(CertificateBody {
            org,
            member_id,
            role,
            device_id,
            identity_key,
            signing_key,
            not_before,
            not_after,
        })
    }

    /// The message the organisation key signs: `labels::CERTIFICATE || body`.
    pub fn signed_message(body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(labels::CERTIFICATE.len() + body.len());
        m.extend_from_slice(labels::CERTIFICATE);
        m.extend_from_slice(body);
        m
    }

    /// Does this certificate name exactly this device and these identity keys?
    /// [`TrustError::KeyMismatch`] if not (compare before using a bundle it came with).
    pub fn check_device(
        &self,
        device_id: Id,
        identity_key: &[u8],
        signing_key: &[u8],
    ) -> Result<(), TrustError> {
        if self.device_id == device_id
            && self.identity_key.as_slice() == identity_key
            && self.signing_key.as_slice() == signing_key
        {
            Ok(())
        } else {
            Err(TrustError::KeyMismatch)
        }
    }
}

/// The statement an organisation key signs to name its successor:
/// `labels::ORG_KEY_CHANGE || org len u8 || org || previous 32 || next 32`.
pub fn change_statement(
    org: &str,
    previous: &OrgPublicKey,
    next: &OrgPublicKey,
) -> Result<Vec<u8>, TrustError> {
    let len = check_org(org)?;
    let mut m = Vec::with_capacity(labels::ORG_KEY_CHANGE.len() + 1 + org.len() + 64);
    m.extend_from_slice(labels::ORG_KEY_CHANGE);
    m.push(len);
    m.extend_from_slice(org.as_bytes());
    m.extend_from_slice(previous.as_bytes());
    m.extend_from_slice(next.as_bytes());
    Ok(m)
}

/// An organisation's public key (Ed25519, 32 bytes). With the `verify` feature,
/// [`OrgPublicKey::from_slice`] also checks that it is a valid point not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgPublicKey([u8; 32]);

impl std::fmt::Debug for OrgPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrgPublicKey(***)")
    }
}

impl OrgPublicKey {
    /// Check and build from 32 bytes. With `verify`: a valid Ed25519 point of large order;
    /// without: the length only.
    pub fn from_slice(b: &[u8]) -> Result<Self, TrustError> {
        let bytes: [u8; 32] = b.try_into().map_err(|_| TrustError::InvalidKey)?;
        #[cfg(feature = "verify")]
        verifying_key(&bytes)?;
        Ok(OrgPublicKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From the public half of a key pair this crate made (already a valid point).
    #[cfg(feature = "crypto")]
    pub(crate) fn from_trusted(bytes: [u8; 32]) -> Self {
        OrgPublicKey(bytes)
    }

    /// The organisation's published fingerprint: 30 decimal digits in 6 groups of 5
    /// separated by spaces, from 5,200 rounds of SHA-512 over
    /// `labels::ORG_FINGERPRINT || 0x01 || key` (the construction of device fingerprints,
    /// with its own label). Always available.
    pub fn fingerprint(&self) -> String {
        let digits = self.fingerprint_digits();
        let mut out = String::with_capacity(35);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && i % 5 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    /// [`OrgPublicKey::fingerprint`] without the spaces: 30 digits.
    pub fn fingerprint_digits(&self) -> String {
        numeric_fingerprint(labels::ORG_FINGERPRINT, &self.0)
    }
}

/// 30 decimal digits: iterated SHA-512 (5,200 rounds, as Signal's numeric fingerprints)
/// over `label || FINGERPRINT_VERSION || data`, then `hash || data` per round; the first
/// 30 bytes read as six 5-byte big-endian numbers mod 100,000.
pub(crate) fn numeric_fingerprint(label: &[u8], data: &[u8]) -> String {
    let mut hash = {
        let mut h = Sha512::new();
        h.update(label);
        h.update([FINGERPRINT_VERSION]);
        h.update(data);
        h.finalize()
    };
    for _ in 1..5200 {
        let mut h = Sha512::new();
        h.update(hash);
        h.update(data);
        hash = h.finalize();
    }
    let mut digits = String::with_capacity(30);
    for chunk in hash.chunks_exact(5).take(6) {
        let mut n = 0u64;
        for b in chunk {
            n = (n << 8) | u64::from(*b);
        }
        digits.push_str(&format!("{:05}", n % 100_000));
    }
    digits
}

#[cfg(feature = "verify")]
fn verifying_key(bytes: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey, TrustError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| TrustError::InvalidKey)?;
    if key.is_weak() {
        return Err(TrustError::InvalidKey);
    }
    Ok(key)
}

#[cfg(feature = "verify")]
impl OrgPublicKey {
    fn verify_strict(&self, message: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        let signature: [u8; 64] = signature.try_into().map_err(|_| TrustError::BadSignature)?;
        verifying_key(&self.0)?
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
            .map_err(|_| TrustError::BadSignature)
    }

    /// Verify a device certificate: `verify_strict` over `labels::CERTIFICATE || body`, then
    /// a strict decode, the organisation code equal to `org`, and `now` (Unix seconds) in
    /// `[not_before, not_after]`. Returns the body, whose device and keys the caller still
    /// compares with what it was served ([`CertificateBody::check_device`], or use
    /// [`OrgPublicKey::verify_bundle`]).
    pub fn verify_certificate(
        &self,
        cert: &wire::Certificate,
        org: &str,
        now: i64,
    ) -> Result<CertificateBody, TrustError> {
        self.verify_strict(
            &CertificateBody::signed_message(cert.body.as_slice()),
            cert.signature.as_slice(),
        )?;
        let body = CertificateBody::decode(cert.body.as_slice())?;
        if body.org != org {
            return Err(TrustError::WrongOrganisation);
        }
        if now < body.not_before || now > body.not_after {
            return Err(TrustError::Expired);
        }
        Ok(body)
    }

    /// A member device's bundle as a survivor's client must check it: a certificate is
    /// present ([`TrustError::NotInChain`] without one: nothing vouches for the device), it
    /// verifies under this key for `org` at `now`, and it names the bundle's device id and
    /// both identity keys ([`TrustError::KeyMismatch`] otherwise). The identity binding and
    /// signed prekey are checked by `x3dh::initiate`.
    pub fn verify_bundle(
        &self,
        bundle: &wire::Bundle,
        org: &str,
        now: i64,
    ) -> Result<CertificateBody, TrustError> {
        let cert = bundle.certificate.as_ref().ok_or(TrustError::NotInChain)?;
        let body = self.verify_certificate(cert, org, now)?;
        body.check_device(
            bundle.device_id,
            bundle.identity_key.as_slice(),
            bundle.signing_key.as_slice(),
        )?;
        Ok(body)
    }

    /// Verify one change statement made by `self` (the previous key) naming `next`.
    pub fn verify_change(
        &self,
        org: &str,
        next: &OrgPublicKey,
        signature: &[u8],
    ) -> Result<(), TrustError> {
        self.verify_strict(&change_statement(org, self, next)?, signature)
    }
}

/// Check a device's identity binding without the `crypto` feature (the relay can refuse a
/// registration whose keys do not belong together): `signing_key` must be a valid Ed25519
/// key of large order that signed `labels::IDENTITY_BINDING || identity_key` (32 bytes),
/// checked with `verify_strict`. `InvalidKey` for a bad key or length, else `BadSignature`.
#[cfg(feature = "verify")]
pub fn verify_identity_binding(
    identity_key: &[u8],
    signing_key: &[u8],
    identity_signature: &[u8],
) -> Result<(), TrustError> {
    if identity_key.len() != 32 {
        return Err(TrustError::InvalidKey);
    }
    let signing: [u8; 32] = signing_key.try_into().map_err(|_| TrustError::InvalidKey)?;
    let mut message = Vec::with_capacity(labels::IDENTITY_BINDING.len() + 32);
    message.extend_from_slice(labels::IDENTITY_BINDING);
    message.extend_from_slice(identity_key);
    OrgPublicKey::from_slice(&signing)?.verify_strict(&message, identity_signature)
}

/// The keys of a chain, parsed, with the change signatures: `(keys, signatures)` where
/// `signatures[i]` is made by `keys[i]` over the change to `keys[i + 1]`.
#[cfg(feature = "verify")]
fn parse_chain(chain: &wire::OrgKeyChain) -> Result<Vec<OrgPublicKey>, TrustError> {
    if chain.changes.len() > MAX_ORG_KEY_CHANGES {
        return Err(TrustError::Malformed);
    }
    let mut keys = Vec::with_capacity(chain.changes.len() + 1);
    keys.push(OrgPublicKey::from_slice(chain.first.as_slice())?);
    for change in &chain.changes {
        if change.signature.len() != 64 {
            return Err(TrustError::Malformed);
        }
        keys.push(OrgPublicKey::from_slice(change.key.as_slice())?);
    }
    Ok(keys)
}

/// Verify every change of `chain` from `from` on (each signed by the key before it).
#[cfg(feature = "verify")]
fn verify_changes_from(
    org: &str,
    keys: &[OrgPublicKey],
    chain: &wire::OrgKeyChain,
    from: usize,
) -> Result<OrgPublicKey, TrustError> {
    check_org(org)?;
    for (i, change) in chain.changes.iter().enumerate().skip(from) {
        let (Some(previous), Some(next)) = (keys.get(i), keys.get(i + 1)) else {
            return Err(TrustError::Malformed);
        };
        previous.verify_change(org, next, change.signature.as_slice())?;
    }
    keys.last().copied().ok_or(TrustError::Malformed)
}

/// Walk `chain` from its first key; every change must be signed by the key before it.
/// `pinned` must be one of the keys of the chain (else [`TrustError::NotInChain`]); returns
/// the current (last) key. Changes before the pinned key are only checked syntactically:
/// they are not trusted for anything, and a history whose early part does not verify cannot
/// affect what the pin vouches for. At most [`MAX_ORG_KEY_CHANGES`] changes.
#[cfg(feature = "verify")]
pub fn verify_chain(
    pinned: &OrgPublicKey,
    org: &str,
    chain: &wire::OrgKeyChain,
) -> Result<OrgPublicKey, TrustError> {
    let keys = parse_chain(chain)?;
    // The first occurrence: if a key comes back later in the history, every change after
    // its first appearance is checked.
    let at = keys
        .iter()
        .position(|k| k == pinned)
        .ok_or(TrustError::NotInChain)?;
    verify_changes_from(org, &keys, chain, at)
}

/// The current key of a chain whose first key is trusted on first use: every change is
/// verified. At most [`MAX_ORG_KEY_CHANGES`] changes.
#[cfg(feature = "verify")]
pub fn chain_head(org: &str, chain: &wire::OrgKeyChain) -> Result<OrgPublicKey, TrustError> {
    let keys = parse_chain(chain)?;
    verify_changes_from(org, &keys, chain, 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> CertificateBody {
        CertificateBody {
            org: "shelter-north".into(),
            member_id: Id([1; 16]),
            role: wire::Role::Advocate,
            device_id: Id([2; 16]),
            identity_key: [3; 32],
            signing_key: [4; 32],
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
        }
    }

    #[test]
    fn certificate_body_layout_is_the_documented_one() {
        let body = sample();
        let bytes = body.encode();
        assert_eq!(bytes.len(), CertificateBody::encoded_len(13));
        assert_eq!(bytes.len(), 2 + 13 + 16 + 1 + 16 + 32 + 32 + 16);
        assert_eq!(bytes[0], CERT_FORMAT);
        assert_eq!(bytes[1], 13);
        assert_eq!(&bytes[2..15], b"shelter-north");
        assert_eq!(bytes[15 + 16], 1);
        assert_eq!(&bytes[bytes.len() - 8..], &1_800_000_000i64.to_be_bytes());
        assert_eq!(CertificateBody::decode(&bytes).unwrap(), body);
    }

    #[test]
    fn certificate_decode_refuses_every_malformation() {
        let good = sample().encode();
        let refused = |mutate: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            mutate(&mut b);
            assert_eq!(CertificateBody::decode(&b), Err(TrustError::Malformed));
        };
        refused(&|b| b[0] = 2); // format
        refused(&|b| b[1] = 0); // empty org
        refused(&|b| b[1] = 14); // length no longer matches
        refused(&|b| b[15 + 16] = 3); // role
        refused(&|b| b[2] = 0xff); // not UTF-8
        refused(&|b| b.push(0)); // trailing byte
        refused(&|b| {
            b.pop();
        });
        refused(&|b| {
            // not_after == not_before
            let n = b.len();
            let nb: [u8; 8] = b[n - 16..n - 8].try_into().unwrap();
            b[n - 8..].copy_from_slice(&nb);
        });
        assert_eq!(CertificateBody::decode(&[]), Err(TrustError::Malformed));
    }

    #[test]
    fn org_codes_outside_1_to_64_bytes_make_bodies_that_never_decode() {
        let mut body = sample();
        body.org = "x".repeat(64);
        assert_eq!(CertificateBody::decode(&body.encode()), Ok(body.clone()));
        for org in ["x".repeat(65), String::new()] {
            body.org = org;
            assert_eq!(
                CertificateBody::decode(&body.encode()),
                Err(TrustError::Malformed)
            );
        }
    }

    #[test]
    fn debug_of_a_certificate_body_shows_no_keys_or_ids() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains("shelter-north"));
        assert!(!shown.contains("identity_key") && !shown.contains("device_id"));
        assert!(!shown.contains("[3, 3"));
    }

    #[test]
    fn org_fingerprint_is_six_groups_of_five_digits() {
        let k = OrgPublicKey([7; 32]);
        let f = k.fingerprint();
        assert_eq!(f.len(), 35);
        let groups: Vec<&str> = f.split(' ').collect();
        assert_eq!(groups.len(), 6);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
        assert_eq!(f.replace(' ', ""), k.fingerprint_digits());
        assert_ne!(k.fingerprint(), OrgPublicKey([8; 32]).fingerprint());
        assert_eq!(format!("{k:?}"), "OrgPublicKey(***)");
    }
}
