//! Every decoder on random, truncated and mutated input: errors, never a panic (issue 3,
//! point 3). The fuzz targets in `fuzz/` do this at depth; this short run is what CI sees
//! without a nightly toolchain.
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{CONVERSATION, SeededRng, established_pair};
use quietline_proto::crypto::keys::DeviceSecrets;
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::{PROTOCOL_VERSION, RandomSource, StoreKey, envelope, open, seal};
use quietline_proto::padding::ENVELOPE_BUCKETS;

/// Run every decoder on `input`; only panics matter here.
fn all_decoders(input: &[u8], session: &Session, secrets: &DeviceSecrets, key: &StoreKey) {
    let _ = envelope::decode(input);
    let _ = envelope::unpad(input);
    let _ = Session::from_bytes(input);
    let _ = DeviceSecrets::from_bytes(input);
    let _ = open(key, b"aad", input);
    let mut s = session.clone();
    let before = s.to_bytes();
    if s.decrypt(input).is_err() {
        assert_eq!(s.to_bytes(), before, "a refused input changed the session");
    }
    let mut d = secrets.clone();
    let _ = Session::respond(&mut d, CONVERSATION, input);
}

#[test]
fn decoders_survive_random_truncated_and_mutated_input() {
    let mut rng = SeededRng::new("decode-smoke");
    let mut p = established_pair("decode-smoke");
    let (secrets, _) = DeviceSecrets::generate_with(&mut rng, 2).unwrap();
    let key = StoreKey::from_bytes([3; 32]);

    let valid: Vec<Vec<u8>> = vec![
        p.alice.encrypt(b"prekey envelope").unwrap(),
        p.bob.encrypt(b"message envelope").unwrap(),
        p.alice.to_bytes().to_vec(),
        p.bob.to_bytes().to_vec(),
        secrets.to_bytes().to_vec(),
        seal(&key, b"aad", b"sealed").unwrap(),
    ];

    for v in &valid {
        // Every prefix.
        for n in 0..v.len().min(600) {
            all_decoders(&v[..n], &p.alice, &secrets, &key);
        }
        // Single-byte mutations across the input.
        for i in (0..v.len()).step_by((v.len() / 300).max(1)) {
            let mut m = v.clone();
            m[i] ^= 0xff;
            all_decoders(&m, &p.bob, &secrets, &key);
        }
    }

    // Random bytes of random and of bucket lengths, some with a valid version/type prefix.
    let mut buf = vec![0u8; 65536];
    for round in 0..300 {
        let mut len_bytes = [0u8; 2];
        rng.fill(&mut len_bytes).unwrap();
        let len = if round % 3 == 0 {
            ENVELOPE_BUCKETS[round % 2]
        } else {
            usize::from(u16::from_be_bytes(len_bytes)) % 3000
        };
        rng.fill(&mut buf[..len]).unwrap();
        if round % 2 == 0 && len >= 2 {
            buf[0] = PROTOCOL_VERSION;
            buf[1] = 1 + (round % 4 == 0) as u8;
        }
        all_decoders(&buf[..len], &p.alice, &secrets, &key);
    }
}
