//! Helpers shared by the integration tests: a deterministic random source and a ready-made
//! pair of sessions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use quietline_proto::Id;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair};
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::{CryptoError, RandomSource, x3dh};
use quietline_proto::wire::{Bundle, DeviceKeys};
use sha2::{Digest, Sha256};

/// Deterministic bytes: block i is SHA-256(label || i as u64 big-endian), concatenated.
/// The Python cross-check (tests/vectors/crosscheck.py) reproduces the same stream.
pub struct SeededRng {
    label: Vec<u8>,
    counter: u64,
    buffer: Vec<u8>,
}

impl SeededRng {
    pub fn new(label: &str) -> Self {
        SeededRng {
            label: label.as_bytes().to_vec(),
            counter: 0,
            buffer: Vec::new(),
        }
    }
}

impl RandomSource for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        while self.buffer.len() < dest.len() {
            let mut h = Sha256::new();
            h.update(&self.label);
            h.update(self.counter.to_be_bytes());
            self.counter += 1;
            self.buffer.extend_from_slice(&h.finalize());
        }
        let rest = self.buffer.split_off(dest.len());
        dest.copy_from_slice(&self.buffer);
        self.buffer = rest;
        Ok(())
    }
}

/// A random source that always fails.
pub struct BrokenRng;

impl RandomSource for BrokenRng {
    fn fill(&mut self, _dest: &mut [u8]) -> Result<(), CryptoError> {
        Err(CryptoError::Random)
    }
}

pub const CONVERSATION: Id = Id([0x42; 16]);

/// The bundle the relay would hand out for `keys`, with its first one-time prekey if any.
pub fn bundle(keys: &DeviceKeys, with_one_time: bool) -> Bundle {
    Bundle {
        device_id: Id([9; 16]),
        identity_key: keys.identity_key.clone(),
        signing_key: keys.signing_key.clone(),
        identity_signature: keys.identity_signature.clone(),
        signed_prekey: keys.signed_prekey.clone(),
        one_time_prekey: if with_one_time {
            keys.one_time_prekeys.first().cloned()
        } else {
            None
        },
        certificate: None,
    }
}

pub struct Pair {
    pub alice: Session,
    pub bob: Session,
    pub bob_secrets: DeviceSecrets,
}

/// Alice initiates to Bob and Bob answers the first message, so both can send.
pub fn established_pair(seed: &str) -> Pair {
    let mut rng_a = SeededRng::new(&format!("{seed}/alice"));
    let mut rng_b = SeededRng::new(&format!("{seed}/bob"));
    let alice_id = IdentityKeyPair::generate_with(&mut rng_a).unwrap();
    let (mut bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut rng_b, 2).unwrap();
    let mut alice = x3dh::initiate_with(
        &alice_id,
        &bundle(&bob_keys, true),
        CONVERSATION,
        &mut rng_a,
    )
    .unwrap();
    let first = alice.encrypt(b"hello").unwrap();
    let (bob, pt) =
        Session::respond_with(&mut bob_secrets, CONVERSATION, &first, &mut rng_b, None).unwrap();
    assert_eq!(&pt[..], b"hello");
    Pair {
        alice,
        bob,
        bob_secrets,
    }
}
