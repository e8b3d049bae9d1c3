//! Randomness from the operating system, for ids, tokens and challenges.
//!
//! Every id is 128 random bits (docs/THREAT_MODEL.md, invariant 6). If the OS generator fails the
//! process aborts: continuing with predictable ids or tokens would be worse than stopping.

use quietline_proto::Id;

pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        std::process::abort();
    }
    out
}

pub fn id() -> Id {
    Id(bytes())
}

/// A 256-bit opaque token as unpadded base64url (43 characters).
pub fn token() -> String {
    quietline_proto::b64::encode(&bytes::<32>())
}

/// SHA-256 of a token, the only form in which tokens are stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}
