//! Our own frozen vectors for X3DH and the Double Ratchet (protocol version 2), and for the
//! organisation trust statements (a device certificate, an organisation key change, a
//! sealed organisation key file).
//!
//! A fixed conversation is replayed with deterministic randomness (`SeededRng`: SHA-256 of
//! a label and a counter) and every output byte is compared with `vectors/x3dh_ratchet.json`;
//! the trust statements likewise with `vectors/org_trust.json` (Ed25519 is deterministic).
//! The same file is checked by `vectors/crosscheck.py`, which recomputes every envelope
//! with PyPI's `cryptography` (OpenSSL) from the private keys alone, so the JSON is not
//! just our code agreeing with itself. Any change to a label, a KDF, the AD, the padding
//! or the envelope layout breaks this test: that is its purpose.
//!
//! To regenerate after a deliberate protocol change (with a new version number):
//! `QUIETLINE_WRITE_VECTORS=1 cargo test -p quietline-proto --test frozen_vectors`, then
//! `python3 proto/tests/vectors/crosscheck.py`. `vectors/x3dh_ratchet_v1.json` keeps the
//! version-1 vectors of the first release: tests/session.rs checks they are refused.
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{CONVERSATION, SeededRng, bundle};
use quietline_proto::Id;
use quietline_proto::crypto::RandomSource;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair, conversation_safety_number};
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::x3dh;
use quietline_proto::trust::{self, CertificateBody, OrgPublicKey};
use quietline_proto::wire::{self, Role};
use serde_json::{Map, Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/x3dh_ratchet.json"
);
const TRUST_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/org_trust.json");

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
            "identity_signature": hex::encode(alice_id.identity_signature()),
            "ephemeral_private": draw(&la, 2),
            "ratchet_private": [draw(&la, 3), draw(&la, 4)],
        },
        "bob": {
            "identity_dh_private": draw(&lb, 0),
            "signing_seed": draw(&lb, 1),
            "identity_dh_public": hex::encode(bob_keys.identity_key.as_slice()),
            "signing_public": hex::encode(bob_keys.signing_key.as_slice()),
            "identity_signature": hex::encode(bob_keys.identity_signature.as_slice()),
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
        json!("Quietline protocol version 2 frozen vectors; see proto/tests/frozen_vectors.rs and docs/CRYPTO.md"),
    );
    m.insert(
        "with_one_time_prekey".into(),
        scenario("quietline-vectors-v2", true),
    );
    m.insert(
        "without_one_time_prekey".into(),
        scenario("quietline-vectors-v2-no-otpk", false),
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

/// The organisation trust statements, from fixed keys.
fn trust_vectors() -> Value {
    let label = "quietline-vectors-v2/org";
    let mut rng = SeededRng::new(label);
    let org = OrgKeyPair::generate_with(&mut rng).unwrap();
    let next = OrgKeyPair::generate_with(&mut rng).unwrap();
    let mut device_rng = SeededRng::new("quietline-vectors-v2/advocate-device");
    let (_, device) = DeviceSecrets::generate_with(&mut device_rng, 0).unwrap();
    let survivor =
        IdentityKeyPair::generate_with(&mut SeededRng::new("quietline-vectors-v2/survivor-device"))
            .unwrap();
    let body = CertificateBody {
        org: "shelter-north".into(),
        member_id: Id([0x11; 16]),
        role: Role::Advocate,
        device_id: Id([0x22; 16]),
        identity_key: device.identity_key.as_slice().try_into().unwrap(),
        signing_key: device.signing_key.as_slice().try_into().unwrap(),
        not_before: 1_800_000_000,
        not_after: 1_800_000_000 + 365 * 86_400,
    };
    let cert = org.certify(&body);
    let change_signature = org.endorse("shelter-north", &next.public());
    let mut seal_rng = SeededRng::new("quietline-vectors-v2/seal");
    let sealed = org
        .seal_with_params_rng(b"correct horse battery staple", 64, 2, 1, &mut seal_rng)
        .unwrap();
    json!({
        "note": "Quietline organisation trust frozen vectors; see proto/tests/frozen_vectors.rs and docs/CRYPTO.md",
        "rng_org": label,
        "org_seed": draw(label, 0),
        "org_public": hex::encode(org.public().as_bytes()),
        "org_fingerprint": org.public().fingerprint(),
        "certificate": {
            "org": body.org,
            "member_id": hex::encode(body.member_id.as_bytes()),
            "role": 1,
            "device_id": hex::encode(body.device_id.as_bytes()),
            "identity_key": hex::encode(body.identity_key),
            "signing_key": hex::encode(body.signing_key),
            "not_before": body.not_before,
            "not_after": body.not_after,
            "body": hex::encode(cert.body.as_slice()),
            "signature": hex::encode(cert.signature.as_slice()),
        },
        "key_change": {
            "org": "shelter-north",
            "next_seed": draw(label, 1),
            "next_public": hex::encode(next.public().as_bytes()),
            "statement": hex::encode(
                trust::change_statement("shelter-north", &org.public(), &next.public()).unwrap()
            ),
            "signature": hex::encode(change_signature),
        },
        "survivor": {
            "identity_dh_public": hex::encode(survivor.public().dh_key()),
            "signing_public": hex::encode(survivor.public().signing_key()),
            "fingerprint": survivor.public().fingerprint(),
            "conversation_safety_number": conversation_safety_number(&org.public(), &survivor.public()),
        },
        "sealed_org_key": {
            "rng": "quietline-vectors-v2/seal",
            "passphrase": "correct horse battery staple",
            "m_kib": 64,
            "t": 2,
            "p": 1,
            "file": hex::encode(&sealed),
        },
    })
}

#[test]
fn org_trust_statements_match_the_frozen_vectors() {
    let now = trust_vectors();
    if std::env::var_os("QUIETLINE_WRITE_VECTORS").is_some() {
        std::fs::write(
            TRUST_PATH,
            serde_json::to_string_pretty(&now).unwrap() + "\n",
        )
        .unwrap();
    }
    let frozen: Value =
        serde_json::from_str(&std::fs::read_to_string(TRUST_PATH).unwrap()).unwrap();
    for key in [
        "org_public",
        "org_fingerprint",
        "certificate",
        "key_change",
        "survivor",
        "sealed_org_key",
    ] {
        assert_eq!(frozen[key], now[key], "{key}");
    }
    assert_eq!(frozen, now);
}

#[test]
fn frozen_org_trust_statements_still_verify() {
    // From the frozen bytes alone: the certificate and the change verify under the frozen
    // organisation key, and the sealed file opens to it.
    let frozen: Value =
        serde_json::from_str(&std::fs::read_to_string(TRUST_PATH).unwrap()).unwrap();
    let h = |v: &Value| hex::decode(v.as_str().unwrap()).unwrap();
    let org = OrgPublicKey::from_slice(&h(&frozen["org_public"])).unwrap();
    let cert = wire::Certificate {
        body: h(&frozen["certificate"]["body"]).into(),
        signature: h(&frozen["certificate"]["signature"]).into(),
    };
    let body = org
        .verify_certificate(&cert, "shelter-north", 1_800_000_000)
        .unwrap();
    assert_eq!(body.role, Role::Advocate);
    let next = OrgPublicKey::from_slice(&h(&frozen["key_change"]["next_public"])).unwrap();
    let chain = wire::OrgKeyChain {
        first: org.as_bytes().to_vec().into(),
        changes: vec![wire::OrgKeyChange {
            key: next.as_bytes().to_vec().into(),
            signature: h(&frozen["key_change"]["signature"]).into(),
        }],
    };
    assert_eq!(trust::verify_chain(&org, "shelter-north", &chain), Ok(next));
    let opened = OrgKeyPair::open(
        &h(&frozen["sealed_org_key"]["file"]),
        b"correct horse battery staple",
    )
    .unwrap();
    assert_eq!(opened.public(), org);
}
