//! Criterion benchmarks of the client-side crypto (docs/BENCHMARKS.md: ratchet encrypt + decrypt
//! of 1 KiB ≤ 10 µs, X3DH ≤ 1 ms). Figures and the command are in docs/BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use quietline_proto::Id;
use quietline_proto::crypto::envelope;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair};
use quietline_proto::crypto::session::MAX_SKIP;
use quietline_proto::crypto::session::Session;
use quietline_proto::crypto::{CryptoError, OsRandom, PROTOCOL_VERSION, x3dh};
use quietline_proto::padding::MAX_ENVELOPE;
use quietline_proto::wire::{Bundle, DeviceKeys};
use std::hint::black_box;

const CONVERSATION: Id = Id([7; 16]);

fn bundle(keys: &DeviceKeys) -> Bundle {
    Bundle {
        device_id: Id([1; 16]),
        identity_key: keys.identity_key.clone(),
        signing_key: keys.signing_key.clone(),
        identity_signature: keys.identity_signature.clone(),
        signed_prekey: keys.signed_prekey.clone(),
        one_time_prekey: keys.one_time_prekeys.first().cloned(),
        certificate: None,
    }
}

/// Alice → Bob established, and Bob has answered once, so both send ordinary envelopes.
fn pair() -> (Session, Session) {
    let alice_id = IdentityKeyPair::generate().unwrap();
    let (mut bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut OsRandom, 1).unwrap();
    let mut alice = x3dh::initiate(&alice_id, &bundle(&bob_keys), CONVERSATION).unwrap();
    let first = alice.encrypt(b"hi").unwrap();
    let (mut bob, _) = Session::respond(&mut bob_secrets, CONVERSATION, &first).unwrap();
    let reply = bob.encrypt(b"hello").unwrap();
    alice.decrypt(&reply).unwrap();
    (alice, bob)
}

fn bench_x3dh(c: &mut Criterion) {
    let alice_id = IdentityKeyPair::generate().unwrap();
    let (bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut OsRandom, 1).unwrap();
    let b = bundle(&bob_keys);
    let mut group = c.benchmark_group("x3dh");
    group.bench_function("initiate", |bench| {
        bench.iter(|| x3dh::initiate(black_box(&alice_id), black_box(&b), CONVERSATION).unwrap())
    });
    // Responder: X3DH from the first envelope plus opening it (what a device does on first
    // contact). The secrets are cloned per iteration so the one-time prekey is there again.
    let first = x3dh::initiate(&alice_id, &b, CONVERSATION)
        .unwrap()
        .encrypt(b"first contact")
        .unwrap();
    group.bench_function("respond", |bench| {
        bench.iter_batched(
            || bob_secrets.clone(),
            |mut secrets| Session::respond(&mut secrets, CONVERSATION, black_box(&first)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("initiate+respond", |bench| {
        bench.iter_batched(
            || bob_secrets.clone(),
            |mut secrets| {
                let mut alice = x3dh::initiate(&alice_id, &b, CONVERSATION).unwrap();
                let first = alice.encrypt(b"first contact").unwrap();
                Session::respond(&mut secrets, CONVERSATION, &first).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_ratchet(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratchet");
    // Plaintext sizes: the largest that fills the 1 KiB and the 16 KiB envelope bucket, and
    // exactly 1 KiB / 16 KiB of plaintext (which land in the 4 KiB / 64 KiB buckets).
    let max = envelope::max_plaintext_per_bucket(false);
    for (name, len) in [
        ("1KiB_bucket", max[0]),
        ("1KiB_plaintext", 1024),
        ("16KiB_bucket", max[2]),
        ("16KiB_plaintext", 16 * 1024),
    ] {
        let plaintext = vec![0x5a; len];
        group.throughput(Throughput::Bytes(len as u64));
        // Same-chain messages: the symmetric ratchet step, the common case.
        let (mut alice, mut bob) = pair();
        group.bench_function(format!("encrypt+decrypt/{name}"), |bench| {
            bench.iter(|| {
                let env = alice.encrypt(black_box(&plaintext)).unwrap();
                bob.decrypt(&env).unwrap()
            })
        });
        let (mut alice, _) = pair();
        group.bench_function(format!("encrypt/{name}"), |bench| {
            bench.iter(|| alice.encrypt(black_box(&plaintext)).unwrap())
        });
    }
    // Alternating senders: every message also performs a DH ratchet step (two X25519 and a
    // fresh key pair on the receiving side).
    let plaintext = vec![0x5a; max[0]];
    let (mut alice, mut bob) = pair();
    group.bench_function("ping-pong_with_dh_step/1KiB_bucket", |bench| {
        bench.iter(|| {
            let env = alice.encrypt(&plaintext).unwrap();
            bob.decrypt(&env).unwrap();
            let env = bob.encrypt(&plaintext).unwrap();
            alice.decrypt(&env).unwrap()
        })
    });
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let (mut alice, _) = pair();
    let env = alice.encrypt(&[1; 100]).unwrap();
    let stored = alice.to_bytes();
    let mut group = c.benchmark_group("decode");
    group.bench_function("envelope_1KiB", |bench| {
        bench.iter(|| envelope::decode(black_box(&env)).unwrap().header)
    });
    group.bench_function("session_from_bytes", |bench| {
        bench.iter(|| Session::from_bytes(black_box(&stored)).unwrap())
    });
    group.finish();
}

/// An ordinary-message envelope with a chosen ratchet header and a body that does not
/// authenticate, in the largest bucket (the longest tag check).
fn forged(dh: [u8; 32], pn: u32, n: u32) -> Vec<u8> {
    let mut env = vec![PROTOCOL_VERSION, envelope::TYPE_MESSAGE];
    env.extend_from_slice(&dh);
    env.extend_from_slice(&pn.to_be_bytes());
    env.extend_from_slice(&n.to_be_bytes());
    env.resize(MAX_ENVELOPE, 0xA5);
    env
}

/// The most work one unauthenticated envelope can cause a session: a header that passes
/// every check before the tag, with the largest skip allowed (docs/CRYPTO.md, "Limits").
fn bench_forged_header(c: &mut Criterion) {
    let (mut alice, mut bob) = pair();
    // Alice has opened messages 0 and 1 of Bob's current chain (next expected: 2).
    let env = bob.encrypt(b"one").unwrap();
    alice.decrypt(&env).unwrap();
    let stored = alice.to_bytes();
    // A new ratchet key: the rest of the current chain up to PN plus N in the new chain,
    // MAX_SKIP chain steps in all, then one X25519, the root KDF and the tag check.
    let half = MAX_SKIP / 2;
    let new_key = forged(
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([9u8; 32])).to_bytes(),
        2 + half,
        MAX_SKIP - half,
    );
    // The current receiving key with N at the bound: MAX_SKIP chain steps, no X25519.
    let header = envelope::decode(&env).unwrap().header;
    let same_chain = forged(header.dh, header.pn, header.n + 1 + MAX_SKIP);
    for forged in [&new_key, &same_chain] {
        assert_eq!(
            alice.decrypt(forged).unwrap_err(),
            CryptoError::DecryptFailed
        );
        assert_eq!(alice.to_bytes(), stored);
    }
    c.bench_function("forged_header_worst_case", |bench| {
        bench.iter(|| alice.decrypt(black_box(&new_key)).unwrap_err())
    });
    c.bench_function("forged_header_same_chain", |bench| {
        bench.iter(|| alice.decrypt(black_box(&same_chain)).unwrap_err())
    });
}

/// The primitives alone, on this machine, to read the figures above against.
fn bench_primitives(c: &mut Criterion) {
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
    use hkdf::Hkdf;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use x25519_dalek::{PublicKey, StaticSecret};

    let mut group = c.benchmark_group("primitives");
    let secret = StaticSecret::from([3u8; 32]);
    let public = PublicKey::from(&StaticSecret::from([4u8; 32]));
    group.bench_function("x25519", |bench| {
        bench.iter(|| black_box(&secret).diffie_hellman(black_box(&public)))
    });
    group.bench_function("x25519_public_from_secret", |bench| {
        bench.iter(|| PublicKey::from(black_box(&secret)))
    });
    group.bench_function("hmac_sha256_32B", |bench| {
        bench.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&[1u8; 32])).unwrap();
            mac.update(&[1]);
            mac.finalize()
        })
    });
    group.bench_function("hkdf_sha256_44B", |bench| {
        bench.iter(|| {
            let mut out = [0u8; 44];
            Hkdf::<Sha256>::new(Some(&[0u8; 32]), black_box(&[1u8; 32]))
                .expand(b"Quietline_MsgKeys_v1", &mut out)
                .unwrap();
            out
        })
    });
    let cipher = ChaCha20Poly1305::new(&[9u8; 32].into());
    let mut buf = vec![0u8; 1024 - 42 - 16];
    group.bench_function("chacha20poly1305_966B", |bench| {
        bench.iter(|| {
            cipher
                .encrypt_in_place_detached(Nonce::from_slice(&[0; 12]), &[0; 187], &mut buf)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_primitives,
    bench_x3dh,
    bench_ratchet,
    bench_decode,
    bench_forged_header
);
criterion_main!(benches);
