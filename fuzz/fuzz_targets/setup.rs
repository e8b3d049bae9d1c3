//! A fixed pair of sessions and envelopes shared by the session targets.
#![allow(dead_code)] // each target uses part of the fixture

use quietline_proto::Id;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair};
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::{CryptoError, RandomSource, x3dh};
use quietline_proto::wire::Bundle;
use std::sync::OnceLock;

pub const CONVERSATION: Id = Id([0x42; 16]);

/// Deterministic bytes (a counter), so runs are reproducible. Fuzzing only.
pub struct Counter(pub u8);

impl RandomSource for Counter {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for b in dest {
            self.0 = self.0.wrapping_add(1);
            *b = self.0.wrapping_mul(167).wrapping_add(13);
        }
        Ok(())
    }
}

pub struct Fixture {
    pub alice: Session,
    pub bob: Session,
    pub bob_secrets: DeviceSecrets,
    /// A first message Bob has not answered yet (for `respond`).
    pub first_contact: Vec<u8>,
    /// A later prekey envelope of Alice's established run (for Bob's `decrypt`).
    pub prekey_envelope: Vec<u8>,
    /// An ordinary message from Bob (for Alice's `decrypt`, with a DH ratchet step).
    pub message_envelope: Vec<u8>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = Counter(0);
        let alice_id = IdentityKeyPair::generate_with(&mut rng).unwrap();
        let (bob_secrets, keys) = DeviceSecrets::generate_with(&mut rng, 2).unwrap();
        let bundle = Bundle {
            device_id: Id([1; 16]),
            identity_key: keys.identity_key.clone(),
            signing_key: keys.signing_key.clone(),
            identity_signature: keys.identity_signature.clone(),
            signed_prekey: keys.signed_prekey.clone(),
            one_time_prekey: keys.one_time_prekeys.first().cloned(),
            certificate: None,
        };
        let mut alice = x3dh::initiate_with(&alice_id, &bundle, CONVERSATION, &mut rng).unwrap();
        let first_contact = alice.encrypt(b"first contact").unwrap();
        let mut secrets = bob_secrets.clone();
        let (mut bob, _) =
            Session::respond_with(&mut secrets, CONVERSATION, &first_contact, &mut rng, None)
                .unwrap();
        let prekey_envelope = alice
            .encrypt(b"second, still with the X3DH header")
            .unwrap();
        let message_envelope = bob.encrypt(b"an answer").unwrap();
        Fixture {
            alice,
            bob,
            bob_secrets,
            first_contact,
            prekey_envelope,
            message_envelope,
        }
    })
}

/// XOR pairs of (position, value) from `edits` onto a copy of `base`.
pub fn flip(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for pair in edits.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([pair[0], pair[1]])) % out.len();
        out[at] ^= pair[2];
    }
    out
}
