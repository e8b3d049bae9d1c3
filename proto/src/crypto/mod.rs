//! Client-side end-to-end encryption: X3DH, the Double Ratchet, the envelope format, and a
//! sealing helper for the encrypted session store (docs/CRYPTO.md; the protocol is written out
//! byte by byte in `docs/CRYPTO.md`).
//!
//! Architecture invariant: this module exists only with the `crypto` feature, which the server
//! does not enable. The server has no decrypt code (docs/THREAT_MODEL.md, invariant 1); everything
//! here runs on a survivor's or advocate's device, natively or in the browser (wasm32).
//!
//! How the client SDK uses it:
//!
//! 1. [`keys::DeviceSecrets::generate`] makes a device's secrets and the public
//!    [`wire::DeviceKeys`](crate::wire::DeviceKeys) to register; the secrets are kept with
//!    [`keys::DeviceSecrets::to_bytes`] (sealed with [`seal`]).
//!    [`keys::DeviceSecrets::generate_one_time_prekeys`] tops up one-time prekeys;
//!    [`keys::DeviceSecrets::needs_rotation`], [`keys::DeviceSecrets::rotate_signed_prekey_at`]
//!    and [`keys::DeviceSecrets::expire_previous_signed_prekey`] run the signed prekey's
//!    lifecycle.
//! 2. The sender of a first message checks the recipient's
//!    [`wire::Bundle`](crate::wire::Bundle) against the pinned organisation key
//!    ([`trust::OrgPublicKey::verify_bundle`](crate::trust::OrgPublicKey::verify_bundle),
//!    for member devices), calls [`x3dh::initiate`] with it and the conversation id, then
//!    [`session::Session::encrypt`]. Until the peer answers, its envelopes carry the X3DH
//!    header so the peer can start its side from any of them.
//! 3. A recipient looks at an incoming envelope with [`envelope::peek`]. A prekey envelope
//!    from an unknown sender goes to [`session::Session::respond`], which creates the
//!    session from the device's secrets and consumes the one-time prekey, but only once
//!    the first message has authenticated. Anything else goes to
//!    [`session::Session::decrypt`] of the sessions of that conversation.
//! 4. Sessions are stored with [`session::Session::to_bytes`] /
//!    [`session::Session::from_bytes`], sealed with [`seal`] / [`open`].
//!
//! Every output of [`session::Session::encrypt`] is exactly one of
//! [`padding::ENVELOPE_BUCKETS`](crate::padding::ENVELOPE_BUCKETS) long, as the relay
//! requires. No function here reads a clock (there is none on wasm32): expiry of skipped
//! message keys uses the caller's time, see [`session::Session::decrypt_at`].

mod codec;
mod error;
mod kdf;
mod random;
mod ratchet;
mod store;

pub mod envelope;
pub mod keys;
pub mod org;
pub mod session;
pub mod x3dh;

pub use error::CryptoError;
pub use random::{OsRandom, RandomSource};
pub use store::{SEAL_OVERHEAD, StoreKey, open, seal, seal_with};

/// The protocol version, the first byte of every envelope, of the associated data and of
/// the stored session (docs/CRYPTO.md, "Versions"). Version 1 was the first release;
/// version 2 adds the initiator's identity binding signature to the prekey header and
/// derives per-message keys with `labels::MESSAGE_KEYS_INFO`. Anything else is refused with
/// `UnsupportedVersion`. Version 3 is reserved for PQXDH (the KEM slot stays in the header).
pub const PROTOCOL_VERSION: u8 = 2;

/// Domain-separation labels. Changing any of them changes every derived key: they are part
/// of the protocol (docs/CRYPTO.md, "KDF labels").
pub mod labels {
    /// HKDF `info` of the X3DH shared secret.
    pub const X3DH_INFO: &[u8] = b"Quietline_X3DH_v1";
    /// HKDF `info` of the root-key KDF (`KDF_RK`).
    pub const RATCHET_INFO: &[u8] = b"Quietline_Ratchet_v1";
    /// HKDF `info` deriving a message's AEAD key and nonce from its message key (at most 22
    /// bytes, so HKDF-Expand's second block costs one SHA-256 compression).
    pub const MESSAGE_KEYS_INFO: &[u8] = b"Quietline_MsgKeys_v1";
    /// Prefix of the message a device signs to vouch for its signed prekey.
    pub const SIGNED_PREKEY: &[u8] = b"Quietline_SignedPrekey_v1";
    /// Prefix of the hash input of a safety-number fingerprint.
    pub const FINGERPRINT: &[u8] = b"Quietline_Fingerprint_v1";
    /// Prefix of the message a device's Ed25519 key signs over its X25519 identity key.
    pub const IDENTITY_BINDING: &[u8] = crate::trust::labels::IDENTITY_BINDING;
    /// Associated-data prefix of a sealed organisation key file (`org::OrgKeyPair::seal`).
    pub const ORG_KEY_SEAL: &[u8] = b"Quietline_OrgKeySeal_v1";
}
