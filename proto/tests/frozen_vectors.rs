//! Our own frozen vectors for X3DH and the Double Ratchet (issue 3, point 4).
//!
//! A fixed conversation is replayed with deterministic randomness (`SeededRng`: SHA-256 of
//! a label and a counter) and every output byte is compared with `vectors/x3dh_ratchet.json`.
//! The same file is checked by `vectors/crosscheck.py`, which recomputes every envelope
//! with PyPI's `cryptography` (OpenSSL) from the private keys alone, so the JSON is not
//! just our code agreeing with itself. Any change to a label, a KDF, the AD, the padding
//! or the envelope layout breaks this test: that is its purpose.
//!
//! To regenerate after a deliberate protocol change (with a new version number):
//! `QUIETLINE_WRITE_VECTORS=1 cargo test -p quietline-proto --test frozen_vectors`, then
//! `python3 proto/tests/vectors/crosscheck.py`.
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{CONVERSATION, SeededRng, bundle};
use quietline_proto::crypto::RandomSource;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair};
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::x3dh;
use serde_json::{Map, Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/x3dh_ratchet.json"
);

/// The next 32 bytes a fresh `SeededRng(label)` would give after `skip` draws of 32.
fn draw(label: &str, index: usize) -> String {
    let mut rng = SeededRng::new(label);
    let mut out = [0u8; 32];
    for _ in 0..=index {
        rng.fill(&mut out).unwrap();
    }
    hex::encode(out)
}

fn scenario(label: &str, with_one_time: bool) -> Value {
    let la = format!("{label}/alice");
    let lb = format!("{label}/bob");
    let mut rng_a = SeededRng::new(&la);
    let mut rng_b = SeededRng::new(&lb);
    let alice_id = IdentityKeyPair::generate_with(&mut rng_a).unwrap();
    let (mut bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut rng_b, 2).unwrap();
    let b = bundle(&bob_keys, with_one_time);

    let mut alice = x3dh::initiate_with(&alice_id, &b, CONVERSATION, &mut rng_a).unwrap();
    let m1 = alice
        .encrypt(b"Hello Bob, this is the first message.")
        .unwrap();
    let m2 = alice
        .encrypt(b"A second message before any answer.")
        .unwrap();
    let (mut bob, p1) =
        Session::respond_with(&mut bob_secrets, CONVERSATION, &m1, &mut rng_b, None).unwrap();
    let p2 = bob.decrypt_with(&m2, &mut rng_b, None).unwrap();
    let m3 = bob.encrypt(b"Hi Alice, answer from Bob.").unwrap();
    let p3 = alice.decrypt_with(&m3, &mut rng_a, None).unwrap();
    let m4 = alice
        .encrypt(b"Third from Alice, after a DH ratchet step.")
        .unwrap();
    let p4 = bob.decrypt_with(&m4, &mut rng_b, None).unwrap();

    let mut messages = Vec::new();
    for (from, env, pt) in [
        ("alice", &m1, &p1),
        ("alice", &m2, &p2),
        ("bob", &m3, &p3),
        ("alice", &m4, &p4),
    ] {
        messages.push(json!({
            "from": from,
            "plaintext": String::from_utf8(pt.to_vec()).unwrap(),
            "envelope": hex::encode(env),
        }));
    }
    let public = alice_id.public();
    json!({
        "rng_alice": la,
        "rng_bob": lb,
        "conversation_id": hex::encode(CONVERSATION.as_bytes()),
        "alice": {
            "identity_dh_private": draw(&la, 0),
            "signing_seed": draw(&la, 1),
            "identity_dh_public": hex::encode(public.dh_key()),
            "signing_public": hex::encode(public.signing_key()),
            "ephemeral_private": draw(&la, 2),
            "ratchet_private": [draw(&la, 3), draw(&la, 4)],
        },
        "bob": {
            "identity_dh_private": draw(&lb, 0),
            "signing_seed": draw(&lb, 1),
            "identity_dh_public": hex::encode(bob_keys.identity_key.as_slice()),
            "signing_public": hex::encode(bob_keys.signing_key.as_slice()),
            "signed_prekey_id": bob_keys.signed_prekey.id,
            "signed_prekey_private": draw(&lb, 2),
            "signed_prekey_public": hex::encode(bob_keys.signed_prekey.public_key.as_slice()),
            "signed_prekey_signature": hex::encode(bob_keys.signed_prekey.signature.as_slice()),
            "one_time_prekey_id": b.one_time_prekey.as_ref().map(|p| p.id),
            "one_time_prekey_private": with_one_time.then(|| draw(&lb, 3)),
            "ratchet_private": [draw(&lb, 5), draw(&lb, 6)],
        },
        "messages": messages,
        "alice_session_after": hex::encode(alice.to_bytes().as_slice()),
        "bob_session_after": hex::encode(bob.to_bytes().as_slice()),
    })
}

fn all() -> Value {
    let mut m = Map::new();
    m.insert(
        "note".into(),
        json!("Quietline protocol version 1 frozen vectors; see proto/tests/frozen_vectors.rs and docs/CRYPTO.md"),
    );
    m.insert(
        "with_one_time_prekey".into(),
        scenario("quietline-vectors-v1", true),
    );
    m.insert(
        "without_one_time_prekey".into(),
        scenario("quietline-vectors-v1-no-otpk", false),
    );
    Value::Object(m)
}

#[test]
fn x3dh_and_ratchet_match_the_frozen_vectors() {
    let now = all();
    // Always compare with the committed file as it was before this run.
    let frozen: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    if std::env::var_os("QUIETLINE_WRITE_VECTORS").is_some() && frozen != now {
        std::fs::write(PATH, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        panic!(
            "frozen vectors rewritten: review the diff, run crosscheck.py, and run this test again"
        );
    }
    for case in ["with_one_time_prekey", "without_one_time_prekey"] {
        let (f, n) = (&frozen[case], &now[case]);
        for key in ["alice", "bob", "alice_session_after", "bob_session_after"] {
            assert_eq!(f[key], n[key], "{case}: {key}");
        }
        assert_eq!(f["messages"].as_array().unwrap().len(), 4, "{case}");
        for i in 0..4 {
            assert_eq!(f["messages"][i], n["messages"][i], "{case}: message {i}");
        }
    }
    assert_eq!(frozen, now);
}

/// Every frozen envelope opens from the frozen bytes alone on the receiving side, in both
/// cases: Bob opens Alice's first two messages and her third, sent after a DH ratchet step;
/// Alice opens Bob's answer. A changed envelope does not open.
#[test]
fn frozen_envelopes_still_open() {
    let frozen: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    for (name, with_one_time) in [
        ("with_one_time_prekey", true),
        ("without_one_time_prekey", false),
    ] {
        let case = &frozen[name];
        let env =
            |i: usize| hex::decode(case["messages"][i]["envelope"].as_str().unwrap()).unwrap();
        let text = |i: usize| {
            case["messages"][i]["plaintext"]
                .as_str()
                .unwrap()
                .as_bytes()
                .to_vec()
        };
        assert_eq!(case["messages"][2]["from"], "bob");

        // Bob, rebuilt from his seed: every message from Alice, including the one after the
        // ratchet step (message 4, under a ratchet key he has not seen before).
        let mut rng_b = SeededRng::new(case["rng_bob"].as_str().unwrap());
        let (mut secrets, bob_keys) = DeviceSecrets::generate_with(&mut rng_b, 2).unwrap();
        let (mut bob, p1) =
            Session::respond_with(&mut secrets, CONVERSATION, &env(0), &mut rng_b, None).unwrap();
        assert_eq!(p1.to_vec(), text(0), "{name}");
        assert_eq!(bob.decrypt(&env(1)).unwrap().to_vec(), text(1), "{name}");
        let mut tampered = env(3);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(
            bob.decrypt_with(&tampered, &mut rng_b, None).is_err(),
            "{name}"
        );
        assert_eq!(
            bob.decrypt_with(&env(3), &mut rng_b, None)
                .unwrap()
                .to_vec(),
            text(3),
            "{name}"
        );
        assert!(bob.decrypt(&env(3)).is_err(), "{name}: replay");

        // Alice, rebuilt from her seed up to her two first sends: Bob's answer opens.
        let mut rng_a = SeededRng::new(case["rng_alice"].as_str().unwrap());
        let alice_id = IdentityKeyPair::generate_with(&mut rng_a).unwrap();
        let b = bundle(&bob_keys, with_one_time);
        let mut alice = x3dh::initiate_with(&alice_id, &b, CONVERSATION, &mut rng_a).unwrap();
        alice.encrypt(&text(0)).unwrap();
        alice.encrypt(&text(1)).unwrap();
        assert_eq!(
            alice
                .decrypt_with(&env(2), &mut rng_a, None)
                .unwrap()
                .to_vec(),
            text(2),
            "{name}"
        );
    }
}
