//! A device's long-term and prekey secrets, the public keys it registers, and the checks on a
//! peer's bundle.
//!
//! A device identity is two keys kept apart (docs/CRYPTO.md): an X25519 key for X3DH agreement
//! and an Ed25519 key for signatures. Using one key for both would need the XEdDSA
//! conversion; separate keys keep each primitive in its textbook setting. The Ed25519 key
//! signs the signed prekey together with the X25519 identity key, which ties the two halves
//! of the identity to each other, and it signs the X25519 identity key on its own (the
//! identity binding, checked for bundles and for initiators of first messages), docs/CRYPTO.md,
//! "Keys".

use super::codec::{Put, Reader};
use super::random::{OsRandom, RandomSource, random32};
use super::{CryptoError, labels};
use crate::b64::Bytes;
use crate::trust::{self, OrgPublicKey};
use crate::wire;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// One-time prekeys a device holds at most; [`DeviceSecrets::generate_one_time_prekeys`]
/// refuses to go beyond. Bounds the stored secrets and [`DeviceSecrets::from_bytes`].
pub const MAX_ONE_TIME_PREKEYS: usize = 2000;

/// One-time prekeys [`DeviceSecrets::generate`] makes.
pub const DEFAULT_ONE_TIME_PREKEYS: usize = 100;

/// Format version of [`DeviceSecrets::to_bytes`]. Format 1 (no prekey times) is refused.
const SECRETS_FORMAT: u8 = 2;

/// A signed prekey is replaced after this long (seconds): see
/// [`DeviceSecrets::needs_rotation`].
pub const SIGNED_PREKEY_ROTATION_SECS: u64 = 7 * 86_400;

/// How long the previous signed prekey is kept after a rotation (seconds), so first messages
/// made from a bundle fetched before it still open; then
/// [`DeviceSecrets::expire_previous_signed_prekey`] erases it.
pub const SIGNED_PREKEY_GRACE_SECS: u64 = 7 * 86_400;

/// The public half of a device identity: X25519 agreement key and Ed25519 signing key.
/// This pair is what safety numbers compare and what the associated data binds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    dh: [u8; 32],
    signing: [u8; 32],
}

impl std::fmt::Debug for PublicIdentity {
    // Identity keys identify a device: keep them out of logs (docs/THREAT_MODEL.md, invariant 2).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicIdentity(***)")
    }
}

impl PublicIdentity {
    /// Length of [`PublicIdentity::encode`].
    pub const ENCODED_LEN: usize = 64;

    /// Check and build from the two public keys: each exactly 32 bytes, the signing key a
    /// valid Ed25519 point of large order. (A low-order X25519 identity key is caught by the
    /// contributory check when it is used.)
    pub fn from_slices(dh: &[u8], signing: &[u8]) -> Result<Self, CryptoError> {
        let dh: [u8; 32] = dh.try_into().map_err(|_| CryptoError::InvalidKey)?;
        let signing: [u8; 32] = signing.try_into().map_err(|_| CryptoError::InvalidKey)?;
        let identity = PublicIdentity { dh, signing };
        identity.verifying_key()?;
        Ok(identity)
    }

    /// Check and build from the two public keys and the identity binding signature: as
    /// [`PublicIdentity::from_slices`], and the signing key must have signed
    /// `labels::IDENTITY_BINDING || dh` (`verify_strict`), else `BadSignature`.
    pub fn from_signed(
        dh: &[u8],
        signing: &[u8],
        identity_signature: &[u8],
    ) -> Result<PublicIdentity, CryptoError> {
        let identity = Self::from_slices(dh, signing)?;
        identity.verify_binding(identity_signature)?;
        Ok(identity)
    }

    /// Verify the identity binding signature of this identity.
    pub fn verify_binding(&self, identity_signature: &[u8]) -> Result<(), CryptoError> {
        verify(
            self,
            &identity_binding_message(&self.dh),
            identity_signature,
        )
    }

    pub(crate) fn from_arrays(dh: [u8; 32], signing: [u8; 32]) -> Result<Self, CryptoError> {
        Self::from_slices(&dh, &signing)
    }

    /// The X25519 identity key.
    pub fn dh_key(&self) -> &[u8; 32] {
        &self.dh
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &[u8; 32] {
        &self.signing
    }

    /// `Encode(IK)` of the X3DH spec for this identity: the X25519 key then the Ed25519 key.
    pub fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.dh);
        out[32..].copy_from_slice(&self.signing);
        out
    }

    pub(crate) fn dh_public(&self) -> PublicKey {
        PublicKey::from(self.dh)
    }

    fn verifying_key(&self) -> Result<VerifyingKey, CryptoError> {
        let key = VerifyingKey::from_bytes(&self.signing).map_err(|_| CryptoError::InvalidKey)?;
        if key.is_weak() {
            return Err(CryptoError::InvalidKey);
        }
        Ok(key)
    }

    /// Verify a signed prekey of this identity with `verify_strict` (which also refuses
    /// non-canonical and small-order encodings). Returns the prekey's public key.
    pub fn verify_signed_prekey(&self, spk: &wire::SignedPrekey) -> Result<PublicKey, CryptoError> {
        let public: [u8; 32] = spk
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey)?;
        let signature: [u8; 64] = spk
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadSignature)?;
        let message = signed_prekey_message(&self.dh, spk.id, &public);
        self.verifying_key()?
            .verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| CryptoError::BadSignature)?;
        Ok(PublicKey::from(public))
    }

    /// A 30-digit fingerprint of this identity, for safety numbers: iterated SHA-512 (5200
    /// rounds, as Signal's numeric fingerprints) over the label, a fixed version byte (1) and
    /// both keys. It does not depend on the protocol version.
    pub fn fingerprint(&self) -> String {
        trust::numeric_fingerprint(labels::FINGERPRINT, &self.encode())
    }
}

/// The safety number two people compare out of band to rule out a substituted key: both
/// fingerprints, the smaller first, so both sides see the same 60 digits.
pub fn safety_number(a: &PublicIdentity, b: &PublicIdentity) -> String {
    let (fa, fb) = (a.fingerprint(), b.fingerprint());
    if fa <= fb { fa + &fb } else { fb + &fa }
}

/// The safety number of a conversation: the organisation key's fingerprint digits, then the
/// survivor device's fingerprint (60 digits, that order). A survivor and every advocate of
/// the organisation see the same number for the conversation, whichever advocate or
/// advocate device answers, so it stays the same across transfers and new advocate devices;
/// it changes only if the organisation key or the survivor's device identity does.
pub fn conversation_safety_number(org: &OrgPublicKey, survivor: &PublicIdentity) -> String {
    org.fingerprint_digits() + &survivor.fingerprint()
}

/// What a device signs to bind its X25519 identity key to its Ed25519 signing key.
fn identity_binding_message(identity_dh: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(labels::IDENTITY_BINDING.len() + 32);
    m.extend_from_slice(labels::IDENTITY_BINDING);
    m.extend_from_slice(identity_dh);
    m
}

/// What a device signs for its signed prekey: label, X25519 identity key, prekey id, prekey.
fn signed_prekey_message(identity_dh: &[u8; 32], id: u32, public: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(labels::SIGNED_PREKEY.len() + 68);
    m.extend_from_slice(labels::SIGNED_PREKEY);
    m.extend_from_slice(identity_dh);
    m.put_u32(id);
    m.extend_from_slice(public);
    m
}

/// A device's identity secrets. Both keys are wiped when dropped.
#[derive(Clone)]
pub struct IdentityKeyPair {
    dh: StaticSecret,
    signing: SigningKey,
    /// Derived once: a base-point multiplication per use would double the cost of X3DH.
    public: PublicIdentity,
}

impl std::fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKeyPair(***)")
    }
}

impl IdentityKeyPair {
    pub fn generate() -> Result<Self, CryptoError> {
        Self::generate_with(&mut OsRandom)
    }

    pub fn generate_with(rng: &mut dyn RandomSource) -> Result<Self, CryptoError> {
        let dh = StaticSecret::from(*random32(rng)?);
        let signing = SigningKey::from_bytes(&*random32(rng)?);
        Ok(Self::from_keys(dh, signing))
    }

    fn from_keys(dh: StaticSecret, signing: SigningKey) -> Self {
        let public = PublicIdentity {
            dh: PublicKey::from(&dh).to_bytes(),
            signing: signing.verifying_key().to_bytes(),
        };
        IdentityKeyPair {
            dh,
            signing,
            public,
        }
    }

    /// Rebuild from the stored 32-byte X25519 secret and 32-byte Ed25519 seed.
    pub fn from_secret_bytes(dh: [u8; 32], signing_seed: [u8; 32]) -> Self {
        Self::from_keys(
            StaticSecret::from(dh),
            SigningKey::from_bytes(&signing_seed),
        )
    }

    pub fn public(&self) -> PublicIdentity {
        self.public
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }

    /// Sign with the Ed25519 identity key (for hand-off notes and other signed statements
    /// the client makes inside the ratchet, docs/CRYPTO.md).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The identity binding: Ed25519 signature by the signing key over
    /// `labels::IDENTITY_BINDING || X25519 identity key`. Deterministic.
    pub fn identity_signature(&self) -> [u8; 64] {
        self.sign(&identity_binding_message(&self.public.dh))
    }

    fn sign_prekey(&self, id: u32, public: &PublicKey) -> [u8; 64] {
        let message = signed_prekey_message(&self.public.dh, id, public.as_bytes());
        self.sign(&message)
    }
}

/// Verify a signature made with [`IdentityKeyPair::sign`] (`verify_strict`).
pub fn verify(
    identity: &PublicIdentity,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| CryptoError::BadSignature)?;
    identity
        .verifying_key()?
        .verify_strict(message, &Signature::from_bytes(&signature))
        .map_err(|_| CryptoError::BadSignature)
}

/// A prekey secret and its id.
#[derive(Clone)]
pub(crate) struct Prekey {
    pub(crate) id: u32,
    pub(crate) secret: StaticSecret,
}

impl Prekey {
    fn public(&self) -> PublicKey {
        PublicKey::from(&self.secret)
    }
}

/// Everything secret a device holds outside its sessions: identity keys, the current and the
/// previous signed prekey (the previous one answers first messages sent before a rotation
/// reached the sender, for a grace period), and the unused one-time prekeys.
///
/// Key lifecycle (docs/CRYPTO.md, "Key lifecycle"): the signed prekey records when it was
/// made (Unix seconds from the caller: there is no clock on wasm32).
/// [`DeviceSecrets::needs_rotation`] says when [`SIGNED_PREKEY_ROTATION_SECS`] have passed;
/// [`DeviceSecrets::rotate_signed_prekey_at`] makes a new one and keeps the old one as the
/// previous, retired at that time; [`DeviceSecrets::expire_previous_signed_prekey`] erases it
/// after the grace period, after which a first message to it no longer opens.
#[derive(Clone)]
pub struct DeviceSecrets {
    identity: IdentityKeyPair,
    signed_prekey: Prekey,
    /// Unix seconds when `signed_prekey` was made.
    signed_prekey_created: u64,
    /// The previous signed prekey and when it was retired (Unix seconds).
    previous_signed_prekey: Option<(Prekey, u64)>,
    one_time_prekeys: Vec<Prekey>,
    next_prekey_id: u32,
}

impl std::fmt::Debug for DeviceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecrets")
            .field("one_time_prekeys", &self.one_time_prekeys.len())
            .field("signed_prekey_created", &self.signed_prekey_created)
            .finish_non_exhaustive()
    }
}

impl DeviceSecrets {
    /// New identity, signed prekey and [`DEFAULT_ONE_TIME_PREKEYS`] one-time prekeys, with
    /// the public [`wire::DeviceKeys`] to register. The signed prekey's creation time is
    /// recorded as 0, so the first [`DeviceSecrets::needs_rotation`] check with a real clock
    /// asks for a rotation: where a clock exists, use [`DeviceSecrets::generate_at`].
    pub fn generate() -> Result<(DeviceSecrets, wire::DeviceKeys), CryptoError> {
        Self::generate_at(0)
    }

    /// As [`DeviceSecrets::generate`], recording `now` (Unix seconds) as the signed prekey's
    /// creation time.
    pub fn generate_at(now: u64) -> Result<(DeviceSecrets, wire::DeviceKeys), CryptoError> {
        Self::generate_with_at(&mut OsRandom, DEFAULT_ONE_TIME_PREKEYS, now)
    }

    /// As [`DeviceSecrets::generate`], with `one_time` one-time prekeys and a chosen source
    /// of randomness (creation time 0).
    pub fn generate_with(
        rng: &mut dyn RandomSource,
        one_time: usize,
    ) -> Result<(DeviceSecrets, wire::DeviceKeys), CryptoError> {
        Self::generate_with_at(rng, one_time, 0)
    }

    /// The general form: randomness, number of one-time prekeys and creation time.
    pub fn generate_with_at(
        rng: &mut dyn RandomSource,
        one_time: usize,
        now: u64,
    ) -> Result<(DeviceSecrets, wire::DeviceKeys), CryptoError> {
        let identity = IdentityKeyPair::generate_with(rng)?;
        let signed_prekey = Prekey {
            id: 1,
            secret: StaticSecret::from(*random32(rng)?),
        };
        let mut secrets = DeviceSecrets {
            identity,
            signed_prekey,
            signed_prekey_created: now,
            previous_signed_prekey: None,
            one_time_prekeys: Vec::new(),
            next_prekey_id: 2,
        };
        secrets.generate_one_time_prekeys_with(rng, one_time)?;
        let keys = secrets.device_keys();
        Ok((secrets, keys))
    }

    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// The public keys to register: identity with its binding signature, signed prekey, and
    /// every unused one-time prekey held.
    pub fn device_keys(&self) -> wire::DeviceKeys {
        let public = self.identity.public();
        wire::DeviceKeys {
            identity_key: Bytes(public.dh.to_vec()),
            signing_key: Bytes(public.signing.to_vec()),
            identity_signature: Bytes(self.identity.identity_signature().to_vec()),
            signed_prekey: self.signed_prekey_public(),
            one_time_prekeys: self
                .one_time_prekeys
                .iter()
                .map(|p| wire::OneTimePrekey {
                    id: p.id,
                    public_key: Bytes(p.public().to_bytes().to_vec()),
                })
                .collect(),
        }
    }

    /// The current signed prekey with its signature, as uploaded.
    pub fn signed_prekey_public(&self) -> wire::SignedPrekey {
        let public = self.signed_prekey.public();
        wire::SignedPrekey {
            id: self.signed_prekey.id,
            public_key: Bytes(public.to_bytes().to_vec()),
            signature: Bytes(
                self.identity
                    .sign_prekey(self.signed_prekey.id, &public)
                    .to_vec(),
            ),
        }
    }

    /// Unix seconds when the current signed prekey was made (0 if made by
    /// [`DeviceSecrets::generate`]).
    pub fn signed_prekey_created(&self) -> u64 {
        self.signed_prekey_created
    }

    /// True once the signed prekey is [`SIGNED_PREKEY_ROTATION_SECS`] old at `now`. A clock
    /// set back (creation in the future) does not ask for a rotation.
    pub fn needs_rotation(&self, now: u64) -> bool {
        now.saturating_sub(self.signed_prekey_created) >= SIGNED_PREKEY_ROTATION_SECS
    }

    /// Is a previous signed prekey still held?
    pub fn has_previous_signed_prekey(&self) -> bool {
        self.previous_signed_prekey.is_some()
    }

    /// Unused one-time prekeys held.
    pub fn one_time_prekey_count(&self) -> usize {
        self.one_time_prekeys.len()
    }

    /// Make `n` more one-time prekeys and return their public halves for
    /// `PUT /v1/devices/me/prekeys`. Refused beyond [`MAX_ONE_TIME_PREKEYS`] held.
    pub fn generate_one_time_prekeys(
        &mut self,
        n: usize,
    ) -> Result<Vec<wire::OneTimePrekey>, CryptoError> {
        self.generate_one_time_prekeys_with(&mut OsRandom, n)
    }

    pub fn generate_one_time_prekeys_with(
        &mut self,
        rng: &mut dyn RandomSource,
        n: usize,
    ) -> Result<Vec<wire::OneTimePrekey>, CryptoError> {
        if self.one_time_prekeys.len().saturating_add(n) > MAX_ONE_TIME_PREKEYS {
            return Err(CryptoError::TooLarge);
        }
        let mut fresh = Vec::with_capacity(n);
        for _ in 0..n {
            let prekey = Prekey {
                id: self.take_id()?,
                secret: StaticSecret::from(*random32(rng)?),
            };
            fresh.push(wire::OneTimePrekey {
                id: prekey.id,
                public_key: Bytes(prekey.public().to_bytes().to_vec()),
            });
            self.one_time_prekeys.push(prekey);
        }
        Ok(fresh)
    }

    /// Replace the signed prekey at `now` (Unix seconds). The old one becomes the previous
    /// signed prekey, retired at `now`, so first messages already under way still open
    /// during the grace period; a previous one still held is erased. Returns the new one
    /// for upload. On error nothing changes.
    pub fn rotate_signed_prekey_at(&mut self, now: u64) -> Result<wire::SignedPrekey, CryptoError> {
        self.rotate_signed_prekey_at_with(&mut OsRandom, now)
    }

    /// [`DeviceSecrets::rotate_signed_prekey_at`] with a chosen source of randomness.
    pub fn rotate_signed_prekey_at_with(
        &mut self,
        rng: &mut dyn RandomSource,
        now: u64,
    ) -> Result<wire::SignedPrekey, CryptoError> {
        let secret = StaticSecret::from(*random32(rng)?);
        let fresh = Prekey {
            id: self.take_id()?,
            secret,
        };
        let old = std::mem::replace(&mut self.signed_prekey, fresh);
        self.previous_signed_prekey = Some((old, now));
        self.signed_prekey_created = now;
        Ok(self.signed_prekey_public())
    }

    /// Erase the previous signed prekey once `grace_secs` have passed since it was retired
    /// (normally [`SIGNED_PREKEY_GRACE_SECS`]). Returns whether it erased one. After this a
    /// first message to that prekey is refused with `UnknownPrekey`: whoever later seizes
    /// the device cannot use it to open recorded first messages.
    pub fn expire_previous_signed_prekey(&mut self, now: u64, grace_secs: u64) -> bool {
        match &self.previous_signed_prekey {
            Some((_, retired)) if now.saturating_sub(*retired) >= grace_secs => {
                self.previous_signed_prekey = None;
                true
            }
            _ => false,
        }
    }

    fn take_id(&mut self) -> Result<u32, CryptoError> {
        let id = self.next_prekey_id;
        self.next_prekey_id = id.checked_add(1).ok_or(CryptoError::CounterExhausted)?;
        Ok(id)
    }

    pub(crate) fn signed_prekey_secret(&self, id: u32) -> Option<&StaticSecret> {
        std::iter::once(&self.signed_prekey)
            .chain(self.previous_signed_prekey.as_ref().map(|(p, _)| p))
            .find(|p| p.id == id)
            .map(|p| &p.secret)
    }

    pub(crate) fn one_time_prekey_secret(&self, id: u32) -> Option<&StaticSecret> {
        self.one_time_prekeys
            .iter()
            .find(|p| p.id == id)
            .map(|p| &p.secret)
    }

    /// Forget a one-time prekey for good (X3DH §3.4: delete after use).
    pub(crate) fn consume_one_time_prekey(&mut self, id: u32) {
        self.one_time_prekeys.retain(|p| p.id != id);
    }

    /// Serialise for storage; seal the result with [`super::seal`] before writing it down.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(140 + 36 * self.one_time_prekeys.len()));
        out.put_u8(SECRETS_FORMAT);
        out.extend_from_slice(self.identity.dh.as_bytes());
        out.extend_from_slice(self.identity.signing.as_bytes());
        out.put_u32(self.next_prekey_id);
        out.put_u32(self.signed_prekey.id);
        out.extend_from_slice(self.signed_prekey.secret.as_bytes());
        out.put_u64(self.signed_prekey_created);
        match &self.previous_signed_prekey {
            Some((p, retired)) => {
                out.put_flag(true);
                out.put_u32(p.id);
                out.extend_from_slice(p.secret.as_bytes());
                out.put_u64(*retired);
            }
            None => out.put_flag(false),
        }
        // At most MAX_ONE_TIME_PREKEYS (2000) are ever held, so the count fits in u16.
        out.put_u16(u16::try_from(self.one_time_prekeys.len()).unwrap_or(u16::MAX));
        for p in &self.one_time_prekeys {
            out.put_u32(p.id);
            out.extend_from_slice(p.secret.as_bytes());
        }
        out
    }

    /// Parse what [`DeviceSecrets::to_bytes`] wrote. Never panics; anything else is
    /// `Malformed`, and another format (such as format 1, which had no prekey times) is
    /// `UnsupportedVersion`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != SECRETS_FORMAT {
            return Err(CryptoError::UnsupportedVersion);
        }
        let dh = Zeroizing::new(r.array::<32>()?);
        let seed = Zeroizing::new(r.array::<32>()?);
        let identity = IdentityKeyPair::from_secret_bytes(*dh, *seed);
        let next_prekey_id = r.u32()?;
        let signed_prekey = read_prekey(&mut r)?;
        let signed_prekey_created = r.u64()?;
        let previous_signed_prekey = if r.flag()? {
            let prekey = read_prekey(&mut r)?;
            Some((prekey, r.u64()?))
        } else {
            None
        };
        let count = usize::from(r.u16()?);
        if count > MAX_ONE_TIME_PREKEYS || count.saturating_mul(36) != r.remaining() {
            return Err(CryptoError::Malformed);
        }
        let mut one_time_prekeys = Vec::with_capacity(count);
        for _ in 0..count {
            one_time_prekeys.push(read_prekey(&mut r)?);
        }
        r.finish()?;
        Ok(DeviceSecrets {
            identity,
            signed_prekey,
            signed_prekey_created,
            previous_signed_prekey,
            one_time_prekeys,
            next_prekey_id,
        })
    }
}

fn read_prekey(r: &mut Reader<'_>) -> Result<Prekey, CryptoError> {
    let id = r.u32()?;
    let secret = Zeroizing::new(r.array::<32>()?);
    Ok(Prekey {
        id,
        secret: StaticSecret::from(*secret),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_round_trip() {
        let (mut secrets, keys) = DeviceSecrets::generate_with(&mut OsRandom, 3).unwrap();
        assert_eq!(keys.one_time_prekeys.len(), 3);
        let identity =
            PublicIdentity::from_slices(keys.identity_key.as_slice(), keys.signing_key.as_slice())
                .unwrap();
        identity.verify_signed_prekey(&keys.signed_prekey).unwrap();
        let more = secrets.generate_one_time_prekeys(2).unwrap();
        assert_eq!(more.len(), 2);
        assert_eq!(secrets.one_time_prekey_count(), 5);
        let back = DeviceSecrets::from_bytes(&secrets.to_bytes()).unwrap();
        assert_eq!(back.device_keys(), secrets.device_keys());
    }

    #[test]
    fn signature_over_another_identity_or_id_is_refused() {
        let (a, keys_a) = DeviceSecrets::generate_with(&mut OsRandom, 0).unwrap();
        let (_, keys_b) = DeviceSecrets::generate_with(&mut OsRandom, 0).unwrap();
        // B's X25519 key with A's signing key: the signature names A's X25519 key.
        let mixed = PublicIdentity::from_slices(
            keys_b.identity_key.as_slice(),
            keys_a.signing_key.as_slice(),
        )
        .unwrap();
        assert_eq!(
            mixed.verify_signed_prekey(&keys_a.signed_prekey),
            Err(CryptoError::BadSignature)
        );
        let mut spk = keys_a.signed_prekey.clone();
        spk.id += 1;
        assert_eq!(
            a.identity().public().verify_signed_prekey(&spk),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn safety_number_is_symmetric() {
        let a = IdentityKeyPair::generate().unwrap().public();
        let b = IdentityKeyPair::generate().unwrap().public();
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_eq!(safety_number(&a, &b).len(), 60);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
