//! Proof-of-work for anonymous device registration (docs/THREAT_MODEL.md, flooding).
//!
//! The server hands out a random 32-byte challenge and a difficulty `bits`; the client finds a
//! `nonce` such that SHA-256(`quietline-pow-v1` || challenge || nonce as 8 little-endian bytes)
//! starts with `bits` zero bits. Expected work is 2^bits hashes; checking costs one hash.

use sha2::{Digest, Sha256};

const LABEL: &[u8] = b"quietline-pow-v1";

/// Hard ceiling on difficulty, so a misconfiguration cannot lock every survivor out.
pub const MAX_BITS: u8 = 32;

fn digest(challenge: &[u8], nonce: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LABEL);
    h.update(challenge);
    h.update(nonce.to_le_bytes());
    h.finalize().into()
}

fn leading_zero_bits(d: &[u8; 32]) -> u32 {
    let mut n = 0;
    for byte in d {
        if *byte == 0 {
            n += 8;
        } else {
            n += byte.leading_zeros();
            break;
        }
    }
    n
}

/// Does `nonce` solve `challenge` at `bits`?
pub fn verify(challenge: &[u8], bits: u8, nonce: u64) -> bool {
    leading_zero_bits(&digest(challenge, nonce)) >= u32::from(bits.min(MAX_BITS))
}

/// Find a nonce (client side). Returns `None` only if the whole nonce space fails.
pub fn solve(challenge: &[u8], bits: u8) -> Option<u64> {
    (0..=u64::MAX).find(|&n| verify(challenge, bits, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solution_verifies_and_other_nonces_mostly_do_not() {
        let challenge = [42u8; 32];
        let nonce = solve(&challenge, 12).unwrap();
        assert!(verify(&challenge, 12, nonce));
        assert!(!verify(&[43u8; 32], 12, nonce) || !verify(&[44u8; 32], 12, nonce));
        assert!(verify(&challenge, 0, 0));
        let misses = (0..64u64).filter(|n| !verify(&challenge, 16, *n)).count();
        assert!(misses > 60);
    }
}
