//! The one error type of the crypto layer.
//!
//! Messages are fixed and never carry key material or plaintext (docs/THREAT_MODEL.md, invariant 2):
//! they may end up in a client's log.

/// Why a crypto operation was refused. Every refusal leaves the session, the device secrets
/// and the caller's buffers as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The bytes are not a well-formed envelope, session or key store (wrong length, bad
    /// tag byte, trailing data).
    #[error("malformed input")]
    Malformed,
    /// A version this build does not speak.
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    /// A post-quantum KEM ciphertext in a version-2 envelope: the slot is reserved (PQXDH,
    /// version 3).
    #[error("post-quantum KEM not supported in this version")]
    UnsupportedKem,
    /// A public key has the wrong length or is not usable (weak or small-order).
    #[error("invalid public key")]
    InvalidKey,
    /// A signature does not verify under the signing key (signed prekey, identity binding).
    #[error("bad signature")]
    BadSignature,
    /// An X25519 agreement produced the all-zero value (a low-order peer key).
    #[error("non-contributory key agreement")]
    NonContributory,
    /// The envelope names a prekey this device does not hold (never issued, or already used).
    #[error("unknown or used prekey")]
    UnknownPrekey,
    /// `Session::respond` was given an envelope that is not a first (prekey) message.
    #[error("not a first message")]
    NotPrekey,
    /// The envelope is a first message of another session; start one with `Session::respond`.
    #[error("envelope belongs to another session")]
    OtherSession,
    /// The envelope did not authenticate: tampered, for another session, or a replay whose
    /// key is gone.
    #[error("decryption failed")]
    DecryptFailed,
    /// The message was already decrypted (a duplicate delivery).
    #[error("duplicate message")]
    Duplicate,
    /// The header skips more messages than allowed.
    #[error("too many skipped messages")]
    TooManySkipped,
    /// The session cannot send yet (a responder session before its first message).
    #[error("session cannot send yet")]
    NotReady,
    /// The plaintext does not fit in the largest envelope bucket.
    #[error("plaintext too large")]
    TooLarge,
    /// A message counter would overflow.
    #[error("message counter exhausted")]
    CounterExhausted,
    /// The operating system's random generator failed.
    #[error("random generator failed")]
    Random,
    /// A sealed key file did not open: wrong passphrase (or a changed file: the two cannot
    /// be told apart).
    #[error("wrong passphrase")]
    BadPassphrase,
    /// Key-derivation parameters outside the accepted bounds (a sealed key file asking for
    /// too much memory or time, or too little to be valid).
    #[error("unsupported key derivation parameters")]
    BadParameters,
}
