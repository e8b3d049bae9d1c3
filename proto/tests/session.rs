//! Behaviour of sessions as a client sees it: first contact, buckets, loss, reordering,
//! replay, tampering, the skip bounds and their expiry, storage, and every refusal leaving
//! the state unchanged (issue 3, points 1–3).
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{BrokenRng, CONVERSATION, SeededRng, bundle, established_pair};
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::envelope::{self, MAX_PLAINTEXT, TYPE_MESSAGE, TYPE_PREKEY};
use quietline_proto::crypto::keys::{
    DeviceSecrets, IdentityKeyPair, SIGNED_PREKEY_GRACE_SECS, SIGNED_PREKEY_ROTATION_SECS,
    safety_number,
};
use quietline_proto::crypto::session::{
    MAX_SKIP, MAX_STORED_SKIPPED, SKIPPED_MAX_AGE_MESSAGES, SKIPPED_MAX_AGE_SECS, Session,
};
use quietline_proto::crypto::{CryptoError, x3dh};
use quietline_proto::padding::{ENVELOPE_BUCKETS, is_bucket};

fn snapshot(s: &Session) -> Vec<u8> {
    s.to_bytes().to_vec()
}

#[test]
fn conversation_round_trips_and_every_envelope_is_a_bucket() {
    let mut p = established_pair("round-trip");
    for (i, len) in [0usize, 1, 900, 1000, 5000, 20_000, 60_000]
        .into_iter()
        .enumerate()
    {
        let msg = vec![i as u8; len];
        let env = p.bob.encrypt(&msg).unwrap();
        assert!(is_bucket(env.len()), "{len} -> {}", env.len());
        assert_eq!(&p.alice.decrypt(&env).unwrap()[..], &msg[..]);
        let env = p.alice.encrypt(&msg).unwrap();
        assert!(is_bucket(env.len()));
        assert_eq!(&p.bob.decrypt(&env).unwrap()[..], &msg[..]);
    }
}

#[test]
fn smallest_bucket_that_fits_is_used() {
    let mut p = established_pair("buckets");
    let max = envelope::max_plaintext_per_bucket(false);
    for (i, bucket) in ENVELOPE_BUCKETS.iter().enumerate() {
        assert_eq!(p.bob.encrypt(&vec![1; max[i]]).unwrap().len(), *bucket);
        if i + 1 < ENVELOPE_BUCKETS.len() {
            assert_eq!(
                p.bob.encrypt(&vec![1; max[i] + 1]).unwrap().len(),
                ENVELOPE_BUCKETS[i + 1]
            );
        }
    }
    // Plaintext ending in zeros survives the 0x80-then-zeros padding.
    let env = p.bob.encrypt(b"abc\0\0\x80\0").unwrap();
    assert_eq!(&p.alice.decrypt(&env).unwrap()[..], &b"abc\0\0\x80\0"[..]);
}

#[test]
fn too_large_plaintext_is_refused_without_using_a_key() {
    let mut p = established_pair("too-large");
    // Alice still sends prekey envelopes (Bob has not answered): the tightest limit.
    assert_eq!(p.alice.max_plaintext_len(), MAX_PLAINTEXT);
    let before = snapshot(&p.alice);
    assert_eq!(
        p.alice.encrypt(&vec![0; MAX_PLAINTEXT + 1]).unwrap_err(),
        CryptoError::TooLarge
    );
    assert_eq!(snapshot(&p.alice), before);
    let env = p.alice.encrypt(&vec![0; MAX_PLAINTEXT]).unwrap();
    assert_eq!(env.len(), 65536);
    assert_eq!(p.bob.decrypt(&env).unwrap().len(), MAX_PLAINTEXT);
}

#[test]
fn initiator_repeats_the_x3dh_header_until_the_first_answer() {
    let mut p = established_pair("prekey-repeat");
    let second = p.alice.encrypt(b"second").unwrap();
    assert_eq!(second[1], TYPE_PREKEY);
    assert!(!p.alice.is_established());
    // Bob's existing session takes later prekey envelopes of the same X3DH run.
    assert_eq!(&p.bob.decrypt(&second).unwrap()[..], b"second");
    let reply = p.bob.encrypt(b"reply").unwrap();
    assert_eq!(reply[1], TYPE_MESSAGE);
    p.alice.decrypt(&reply).unwrap();
    assert!(p.alice.is_established());
    assert_eq!(p.alice.encrypt(b"third").unwrap()[1], TYPE_MESSAGE);
}

#[test]
fn one_time_prekey_is_consumed_only_after_the_first_message_authenticates() {
    let mut rng = SeededRng::new("otpk");
    let alice = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (mut bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut rng, 3).unwrap();
    let mut session =
        x3dh::initiate_with(&alice, &bundle(&bob_keys, true), CONVERSATION, &mut rng).unwrap();
    let first = session.encrypt(b"first").unwrap();

    let mut tampered = first.clone();
    tampered[400] ^= 1;
    assert_eq!(
        Session::respond(&mut bob_secrets, CONVERSATION, &tampered).unwrap_err(),
        CryptoError::DecryptFailed
    );
    assert_eq!(bob_secrets.one_time_prekey_count(), 3);

    // The wrong conversation id is in the associated data: refused, prekey kept.
    assert_eq!(
        Session::respond(&mut bob_secrets, Id([1; 16]), &first).unwrap_err(),
        CryptoError::DecryptFailed
    );
    assert_eq!(bob_secrets.one_time_prekey_count(), 3);

    let (bob, pt) = Session::respond(&mut bob_secrets, CONVERSATION, &first).unwrap();
    assert_eq!(&pt[..], b"first");
    assert_eq!(bob_secrets.one_time_prekey_count(), 2);
    assert_eq!(bob.peer_identity(), &alice.public());
    assert_eq!(
        safety_number(bob.peer_identity(), bob.local_identity()),
        safety_number(session.local_identity(), session.peer_identity())
    );

    // Replaying the first message cannot start a second session: its prekey is gone.
    assert_eq!(
        Session::respond(&mut bob_secrets, CONVERSATION, &first).unwrap_err(),
        CryptoError::UnknownPrekey
    );
}

#[test]
fn bundle_without_one_time_prekey_still_agrees() {
    let mut rng = SeededRng::new("no-otpk");
    let alice = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (mut bob_secrets, bob_keys) = DeviceSecrets::generate_with(&mut rng, 0).unwrap();
    let mut a =
        x3dh::initiate_with(&alice, &bundle(&bob_keys, false), CONVERSATION, &mut rng).unwrap();
    let first = a.encrypt(b"no one-time prekey left").unwrap();
    let env = envelope::decode(&first).unwrap();
    assert_eq!(env.prekey.unwrap().one_time_prekey_id, None);
    let (mut b, pt) = Session::respond(&mut bob_secrets, CONVERSATION, &first).unwrap();
    assert_eq!(&pt[..], b"no one-time prekey left");
    let reply = b.encrypt(b"ok").unwrap();
    assert_eq!(&a.decrypt(&reply).unwrap()[..], b"ok");
}

#[test]
fn bad_bundles_are_refused() {
    let mut rng = SeededRng::new("bad-bundle");
    let alice = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (_, keys) = DeviceSecrets::generate_with(&mut rng, 1).unwrap();
    let (_, other) = DeviceSecrets::generate_with(&mut rng, 1).unwrap();
    let try_bundle = |b: quietline_proto::wire::Bundle| {
        x3dh::initiate(&alice, &b, CONVERSATION)
            .map(|_| ())
            .unwrap_err()
    };

    let mut b = bundle(&keys, true);
    b.signed_prekey.signature.0[10] ^= 1;
    assert_eq!(try_bundle(b), CryptoError::BadSignature);

    // Another device's signed prekey, or another device's signing key.
    let mut b = bundle(&keys, true);
    b.signed_prekey = other.signed_prekey.clone();
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    let mut b = bundle(&keys, true);
    b.signing_key = other.signing_key.clone();
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    // A substituted X25519 identity key breaks the signature too (it is signed).
    let mut b = bundle(&keys, true);
    b.identity_key = other.identity_key.clone();
    assert_eq!(try_bundle(b), CryptoError::BadSignature);

    for bad in [vec![], vec![1; 31], vec![1; 33]] {
        let mut b = bundle(&keys, true);
        b.identity_key = Bytes(bad.clone());
        assert_eq!(try_bundle(b), CryptoError::InvalidKey);
        let mut b = bundle(&keys, true);
        b.signing_key = Bytes(bad.clone());
        assert_eq!(try_bundle(b), CryptoError::InvalidKey);
        let mut b = bundle(&keys, true);
        b.signed_prekey.public_key = Bytes(bad.clone());
        assert_eq!(try_bundle(b), CryptoError::InvalidKey);
        let mut b = bundle(&keys, true);
        b.one_time_prekey.as_mut().unwrap().public_key = Bytes(bad);
        assert_eq!(try_bundle(b), CryptoError::InvalidKey);
    }
    let mut b = bundle(&keys, true);
    b.signed_prekey.signature = Bytes(vec![0; 63]);
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    // The identity binding: tampered, missing, or another device's.
    let mut b = bundle(&keys, true);
    b.identity_signature.0[5] ^= 1;
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    let mut b = bundle(&keys, true);
    b.identity_signature = Bytes(vec![]);
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    let mut b = bundle(&keys, true);
    b.identity_signature = other.identity_signature.clone();
    assert_eq!(try_bundle(b), CryptoError::BadSignature);
    // A small-order Ed25519 key (the identity point) is refused outright.
    let mut weak = vec![0u8; 32];
    weak[0] = 1;
    let mut b = bundle(&keys, true);
    b.signing_key = Bytes(weak);
    assert_eq!(try_bundle(b), CryptoError::InvalidKey);
}

#[test]
fn loss_and_reordering_within_and_across_chains() {
    let mut p = established_pair("reorder");
    let a: Vec<_> = (0..5)
        .map(|i| p.bob.encrypt(format!("b{i}").as_bytes()).unwrap())
        .collect();
    // Deliver 4, 0, 2 now; Alice answers (new chain), Bob sends more.
    for i in [4, 0, 2] {
        assert_eq!(
            &p.alice.decrypt(&a[i]).unwrap()[..],
            format!("b{i}").as_bytes()
        );
    }
    assert_eq!(p.alice.skipped_keys(), 2);
    let r = p.alice.encrypt(b"a0").unwrap();
    p.bob.decrypt(&r).unwrap();
    let later = p.bob.encrypt(b"b-next").unwrap();
    assert_eq!(&p.alice.decrypt(&later).unwrap()[..], b"b-next");
    // The old chain's stragglers still open, once each.
    for i in [3, 1] {
        assert_eq!(
            &p.alice.decrypt(&a[i]).unwrap()[..],
            format!("b{i}").as_bytes()
        );
    }
    assert_eq!(p.alice.skipped_keys(), 0);
    for env in &a {
        let before = snapshot(&p.alice);
        assert!(p.alice.decrypt(env).is_err());
        assert_eq!(snapshot(&p.alice), before);
    }
}

#[test]
fn replay_is_refused_and_changes_nothing() {
    let mut p = established_pair("replay");
    let env = p.bob.encrypt(b"once").unwrap();
    p.alice.decrypt(&env).unwrap();
    let before = snapshot(&p.alice);
    assert_eq!(p.alice.decrypt(&env).unwrap_err(), CryptoError::Duplicate);
    assert_eq!(snapshot(&p.alice), before);
}

#[test]
fn any_tampered_byte_fails_and_changes_nothing() {
    let mut p = established_pair("tamper");
    let env = p.alice.encrypt(b"prekey envelope with header").unwrap();
    let before = snapshot(&p.bob);
    // Every header byte and a spread of body bytes, including the tag.
    let positions: Vec<usize> = (0..envelope::PREKEY_HEADER_LEN)
        .chain((envelope::PREKEY_HEADER_LEN..env.len()).step_by(37))
        .chain(env.len() - 16..env.len())
        .collect();
    for i in positions {
        let mut bad = env.clone();
        bad[i] ^= 0x40;
        assert!(p.bob.decrypt(&bad).is_err(), "byte {i}");
        assert_eq!(snapshot(&p.bob), before, "byte {i}");
    }
    // Truncated or extended envelopes are not even decoded.
    assert_eq!(
        p.bob.decrypt(&env[..env.len() - 1]).unwrap_err(),
        CryptoError::Malformed
    );
    let mut longer = env.clone();
    longer.push(0);
    assert_eq!(p.bob.decrypt(&longer).unwrap_err(), CryptoError::Malformed);
    assert_eq!(snapshot(&p.bob), before);
    assert_eq!(
        &p.bob.decrypt(&env).unwrap()[..],
        b"prekey envelope with header"
    );
}

#[test]
fn a_message_for_another_session_or_conversation_does_not_open() {
    let mut p = established_pair("other");
    let mut q = established_pair("other-2");
    let env = q.bob.encrypt(b"for q").unwrap();
    let before = snapshot(&p.alice);
    assert!(p.alice.decrypt(&env).is_err());
    assert_eq!(snapshot(&p.alice), before);
    // A prekey envelope of another X3DH run is pointed to `respond`.
    let first_of_q = q.alice.encrypt(b"q again").unwrap();
    assert_eq!(
        p.bob.decrypt(&first_of_q).unwrap_err(),
        CryptoError::OtherSession
    );
    // And an initiator never takes a prekey envelope.
    assert_eq!(
        p.alice.decrypt(&first_of_q).unwrap_err(),
        CryptoError::OtherSession
    );
    // A normal message is not a first message.
    let reply = q.bob.encrypt(b"x").unwrap();
    assert_eq!(
        Session::respond(&mut p.bob_secrets, CONVERSATION, &reply).unwrap_err(),
        CryptoError::NotPrekey
    );
}

#[test]
fn skip_gap_is_bounded_and_always_fits_the_skipped_key_store() {
    // One constant bounds both: a gap the receiver accepts is never cut by the store.
    assert_eq!(MAX_SKIP as usize, MAX_STORED_SKIPPED);
    let mut p = established_pair("max-skip");
    let envs: Vec<_> = (0..=MAX_SKIP + 1)
        .map(|_| p.bob.encrypt(b"x").unwrap())
        .collect();
    let before = snapshot(&p.alice);
    // Message number MAX_SKIP + 1 would skip MAX_SKIP + 1 keys.
    assert_eq!(
        p.alice.decrypt(&envs[MAX_SKIP as usize + 1]).unwrap_err(),
        CryptoError::TooManySkipped
    );
    assert_eq!(snapshot(&p.alice), before);
    // Exactly MAX_SKIP is allowed, and every key it skipped is kept.
    p.alice.decrypt(&envs[MAX_SKIP as usize]).unwrap();
    assert_eq!(p.alice.skipped_keys(), MAX_STORED_SKIPPED);
    p.alice.decrypt(&envs[0]).unwrap();
    p.alice.decrypt(&envs[MAX_SKIP as usize - 1]).unwrap();
    assert_eq!(p.alice.skipped_keys(), MAX_STORED_SKIPPED - 2);
    p.alice.decrypt(&envs[MAX_SKIP as usize + 1]).unwrap();
    // A later gap that overfills the store evicts the oldest keys first.
    let more: Vec<_> = (0..4).map(|_| p.bob.encrypt(b"y").unwrap()).collect();
    p.alice.decrypt(&more[3]).unwrap();
    assert_eq!(p.alice.skipped_keys(), MAX_STORED_SKIPPED);
    assert!(p.alice.decrypt(&envs[1]).is_err());
    p.alice.decrypt(&envs[2]).unwrap();
    p.alice.decrypt(&more[0]).unwrap();
}

#[test]
fn skips_over_two_chains_together_are_bounded_by_max_skip() {
    // A header with a new ratchet key makes the receiver derive the rest of its current
    // chain (up to PN) and the start of the new one (up to N): both count against MAX_SKIP,
    // checked before any derivation.
    let mut p = established_pair("two-chain-skip");
    let b0 = p.bob.encrypt(b"first of bob's chain").unwrap();
    p.alice.decrypt(&b0).unwrap();
    let rest = 600u32;
    let lost: Vec<_> = (0..rest).map(|_| p.bob.encrypt(b"lost").unwrap()).collect();
    let a = p.alice.encrypt(b"makes bob step").unwrap();
    p.bob.decrypt(&a).unwrap();
    // Numbers 0 ..= MAX_SKIP - rest + 1 in Bob's next chain.
    let next_chain: Vec<_> = (0..MAX_SKIP - rest + 2)
        .map(|_| p.bob.encrypt(b"new chain").unwrap())
        .collect();
    let before = snapshot(&p.alice);
    // PN = rest + 1 with one already received, N = MAX_SKIP - rest + 1: one key too many.
    assert_eq!(
        p.alice.decrypt(next_chain.last().unwrap()).unwrap_err(),
        CryptoError::TooManySkipped
    );
    assert_eq!(snapshot(&p.alice), before);
    // rest + (MAX_SKIP - rest) is exactly the bound.
    let at_bound = &next_chain[(MAX_SKIP - rest) as usize];
    assert_eq!(&p.alice.decrypt(at_bound).unwrap()[..], b"new chain");
    assert_eq!(p.alice.skipped_keys(), MAX_SKIP as usize);
    assert_eq!(&p.alice.decrypt(&lost[0]).unwrap()[..], b"lost");
    assert_eq!(&p.alice.decrypt(&next_chain[0]).unwrap()[..], b"new chain");
}

#[test]
fn skipped_keys_expire_by_time() {
    let mut p = established_pair("expiry-time");
    let t0 = 1_800_000_000;
    let lost = p.bob.encrypt(b"late").unwrap();
    let next = p.bob.encrypt(b"on time").unwrap();
    p.alice.decrypt_at(&next, t0).unwrap();
    assert_eq!(p.alice.skipped_keys(), 1);
    // Still there just before the deadline.
    p.alice.expire_skipped(t0 + SKIPPED_MAX_AGE_SECS);
    assert_eq!(p.alice.skipped_keys(), 1);
    let before = snapshot(&p.alice);
    assert!(
        p.alice
            .decrypt_at(&lost, t0 + SKIPPED_MAX_AGE_SECS + 1)
            .is_err()
    );
    assert_eq!(snapshot(&p.alice), before);
    p.alice.expire_skipped(t0 + SKIPPED_MAX_AGE_SECS + 1);
    assert_eq!(p.alice.skipped_keys(), 0);
}

#[test]
fn skipped_keys_expire_by_message_count() {
    let mut p = established_pair("expiry-count");
    let lost = p.bob.encrypt(b"late").unwrap();
    for _ in 0..SKIPPED_MAX_AGE_MESSAGES {
        let env = p.bob.encrypt(b"m").unwrap();
        p.alice.decrypt(&env).unwrap();
    }
    assert_eq!(p.alice.skipped_keys(), 1);
    let env = p.bob.encrypt(b"m").unwrap();
    p.alice.decrypt(&env).unwrap();
    assert_eq!(p.alice.skipped_keys(), 0);
    assert!(p.alice.decrypt(&lost).is_err());
}

#[test]
fn session_survives_storage() {
    let mut p = established_pair("storage");
    let lost = p.bob.encrypt(b"skipped").unwrap();
    let env = p.bob.encrypt(b"one").unwrap();
    p.alice.decrypt(&env).unwrap();
    let stored = p.alice.to_bytes();
    let mut alice = Session::from_bytes(&stored).unwrap();
    assert_eq!(alice.to_bytes(), stored);
    assert_eq!(alice.conversation_id(), CONVERSATION);
    assert_eq!(&alice.decrypt(&lost).unwrap()[..], b"skipped");
    let out = alice.encrypt(b"after restore").unwrap();
    assert_eq!(&p.bob.decrypt(&out).unwrap()[..], b"after restore");
    let mut bob = Session::from_bytes(&p.bob.to_bytes()).unwrap();
    let out = bob.encrypt(b"bob restored").unwrap();
    assert_eq!(&alice.decrypt(&out).unwrap()[..], b"bob restored");
    // Every truncation is refused, never a panic.
    for n in 0..stored.len() {
        assert!(Session::from_bytes(&stored[..n]).is_err(), "{n}");
    }
    let mut longer = stored.to_vec();
    longer.push(0);
    assert!(Session::from_bytes(&longer).is_err());
}

#[test]
fn device_secrets_survive_storage_and_rotation() {
    let t0 = 1_800_000_000;
    let mut rng = SeededRng::new("secrets");
    let alice = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (mut bob, old_keys) = DeviceSecrets::generate_with_at(&mut rng, 2, t0).unwrap();
    assert_eq!(bob.signed_prekey_created(), t0);
    // A first message written against the old signed prekey...
    let mut a = x3dh::initiate(&alice, &bundle(&old_keys, true), CONVERSATION).unwrap();
    let first = a.encrypt(b"sent before rotation").unwrap();
    // ...still opens after one rotation and a round trip through storage.
    let new_spk = bob.rotate_signed_prekey_at(t0 + 10).unwrap();
    assert_ne!(new_spk.id, old_keys.signed_prekey.id);
    let mut bob = DeviceSecrets::from_bytes(&bob.to_bytes()).unwrap();
    assert_eq!(bob.device_keys().signed_prekey, new_spk);
    assert_eq!(bob.signed_prekey_created(), t0 + 10);
    assert!(bob.has_previous_signed_prekey());
    let (_, pt) = Session::respond(&mut bob, CONVERSATION, &first).unwrap();
    assert_eq!(&pt[..], b"sent before rotation");
    // After a second rotation the oldest signed prekey is gone.
    let mut a = x3dh::initiate(&alice, &bundle(&old_keys, false), CONVERSATION).unwrap();
    let first = a.encrypt(b"too late").unwrap();
    bob.rotate_signed_prekey_at(t0 + 20).unwrap();
    assert_eq!(
        Session::respond(&mut bob, CONVERSATION, &first).unwrap_err(),
        CryptoError::UnknownPrekey
    );
    let stored = bob.to_bytes();
    for n in 0..stored.len() {
        assert!(DeviceSecrets::from_bytes(&stored[..n]).is_err(), "{n}");
    }
}

#[test]
fn previous_signed_prekey_opens_first_messages_during_the_grace_and_not_after_erasure() {
    let t0 = 1_800_000_000;
    let mut rng = SeededRng::new("grace");
    let alice = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (mut bob, old_keys) = DeviceSecrets::generate_with_at(&mut rng, 0, t0).unwrap();
    assert!(!bob.needs_rotation(t0 + SIGNED_PREKEY_ROTATION_SECS - 1));
    assert!(bob.needs_rotation(t0 + SIGNED_PREKEY_ROTATION_SECS));
    // A clock set back never asks for a rotation.
    assert!(!bob.needs_rotation(t0 - 1));
    let rotated = t0 + SIGNED_PREKEY_ROTATION_SECS;
    bob.rotate_signed_prekey_at(rotated).unwrap();
    assert!(!bob.needs_rotation(rotated));

    // Two first messages made from the bundle fetched before the rotation.
    let first = |text: &[u8]| {
        x3dh::initiate(&alice, &bundle(&old_keys, false), CONVERSATION)
            .unwrap()
            .encrypt(text)
            .unwrap()
    };
    let during = first(b"during the grace");
    let after = first(b"after the grace");

    // Not erased one second before the grace ends; the message opens.
    assert!(!bob.expire_previous_signed_prekey(
        rotated + SIGNED_PREKEY_GRACE_SECS - 1,
        SIGNED_PREKEY_GRACE_SECS
    ));
    let (_, pt) = Session::respond(&mut bob, CONVERSATION, &during).unwrap();
    assert_eq!(&pt[..], b"during the grace");

    // Erased at the end of the grace (and the erasure survives storage): refused.
    assert!(bob.expire_previous_signed_prekey(
        rotated + SIGNED_PREKEY_GRACE_SECS,
        SIGNED_PREKEY_GRACE_SECS
    ));
    assert!(!bob.has_previous_signed_prekey());
    assert!(!bob.expire_previous_signed_prekey(
        rotated + SIGNED_PREKEY_GRACE_SECS,
        SIGNED_PREKEY_GRACE_SECS
    ));
    let mut bob = DeviceSecrets::from_bytes(&bob.to_bytes()).unwrap();
    assert_eq!(
        Session::respond(&mut bob, CONVERSATION, &after).unwrap_err(),
        CryptoError::UnknownPrekey
    );
    // The current signed prekey still works.
    let fresh = x3dh::initiate(&alice, &bundle(&bob.device_keys(), false), CONVERSATION)
        .unwrap()
        .encrypt(b"new bundle")
        .unwrap();
    assert!(Session::respond(&mut bob, CONVERSATION, &fresh).is_ok());
}

#[test]
fn device_secrets_of_the_first_format_are_refused_cleanly() {
    let (secrets, _) = DeviceSecrets::generate_with(&mut SeededRng::new("format-1"), 1).unwrap();
    let mut old = secrets.to_bytes().to_vec();
    old[0] = 1;
    assert_eq!(
        DeviceSecrets::from_bytes(&old).unwrap_err(),
        CryptoError::UnsupportedVersion
    );
}

#[test]
fn random_generator_failure_changes_nothing() {
    let mut p = established_pair("broken-rng");
    // Bob answers, so Alice's next receive is a DH ratchet step needing a new key pair.
    let reply = p.bob.encrypt(b"needs a ratchet step").unwrap();
    let before = snapshot(&p.alice);
    assert_eq!(
        p.alice
            .decrypt_with(&reply, &mut BrokenRng, None)
            .unwrap_err(),
        CryptoError::Random
    );
    assert_eq!(snapshot(&p.alice), before);
    assert_eq!(
        &p.alice.decrypt(&reply).unwrap()[..],
        b"needs a ratchet step"
    );
}

#[test]
fn prekey_envelope_with_an_invalid_sender_key_is_refused() {
    // A prekey envelope whose sender signing key is not a valid point is refused before any
    // agreement.
    let mut p = established_pair("bad-sender");
    let mut env = p.alice.encrypt(b"x").unwrap();
    env[34..66].copy_from_slice(&{
        let mut weak = [0u8; 32];
        weak[0] = 1;
        weak
    });
    let (mut secrets, _) = DeviceSecrets::generate().unwrap();
    assert_eq!(
        Session::respond(&mut secrets, CONVERSATION, &env).unwrap_err(),
        CryptoError::InvalidKey
    );
}

#[test]
fn initiator_whose_x25519_key_is_not_signed_by_its_signing_key_is_refused() {
    // A relay that runs X3DH under its own X25519 key but names an existing advocate's
    // signing key (and copies that advocate's binding signature) to pass as the advocate:
    // the binding covers the advocate's X25519 key, not the relay's.
    let mut rng = SeededRng::new("binding");
    let relay = IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (_, advocate) = DeviceSecrets::generate_with(&mut rng, 0).unwrap();
    let (mut survivor, survivor_keys) = DeviceSecrets::generate_with(&mut rng, 1).unwrap();
    let mut forged = x3dh::initiate(&relay, &bundle(&survivor_keys, true), CONVERSATION)
        .unwrap()
        .encrypt(b"this is your advocate")
        .unwrap();
    forged[34..66].copy_from_slice(advocate.signing_key.as_slice());
    forged[66..130].copy_from_slice(advocate.identity_signature.as_slice());
    let before = survivor.to_bytes();
    assert_eq!(
        Session::respond(&mut survivor, CONVERSATION, &forged).unwrap_err(),
        CryptoError::BadSignature
    );
    assert_eq!(survivor.to_bytes(), before);
    // The same forgery with the relay's own binding signature left in place.
    let mut forged = x3dh::initiate(&relay, &bundle(&survivor_keys, true), CONVERSATION)
        .unwrap()
        .encrypt(b"this is your advocate")
        .unwrap();
    forged[34..66].copy_from_slice(advocate.signing_key.as_slice());
    assert_eq!(
        Session::respond(&mut survivor, CONVERSATION, &forged).unwrap_err(),
        CryptoError::BadSignature
    );
    // The honest header carries a binding that verifies, and the sender it names.
    let honest = x3dh::initiate(&relay, &bundle(&survivor_keys, true), CONVERSATION)
        .unwrap()
        .encrypt(b"hello")
        .unwrap();
    let header = envelope::peek(&honest).unwrap().prekey.unwrap();
    assert_eq!(header.sender().unwrap(), relay.public());
    assert_eq!(header.identity_signature, relay.identity_signature());
}

#[test]
fn version_1_envelopes_and_sessions_are_refused() {
    // The frozen version-1 vectors: real envelopes and stored sessions of the first release.
    let v1: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/x3dh_ratchet_v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut p = established_pair("v1");
    let (mut secrets, _) = DeviceSecrets::generate().unwrap();
    for case in ["with_one_time_prekey", "without_one_time_prekey"] {
        for i in 0..4 {
            let env = hex::decode(v1[case]["messages"][i]["envelope"].as_str().unwrap()).unwrap();
            assert_eq!(env[0], 1);
            assert_eq!(
                envelope::decode(&env).unwrap_err(),
                CryptoError::UnsupportedVersion
            );
            let before = snapshot(&p.bob);
            assert_eq!(
                p.bob.decrypt(&env).unwrap_err(),
                CryptoError::UnsupportedVersion
            );
            assert_eq!(snapshot(&p.bob), before);
            assert_eq!(
                Session::respond(&mut secrets, CONVERSATION, &env).unwrap_err(),
                CryptoError::UnsupportedVersion
            );
        }
        for who in ["alice_session_after", "bob_session_after"] {
            let stored = hex::decode(v1[case][who].as_str().unwrap()).unwrap();
            assert_eq!(
                Session::from_bytes(&stored).unwrap_err(),
                CryptoError::UnsupportedVersion
            );
        }
    }
    // And a current envelope relabelled as version 1 is refused the same way.
    let mut env = p.alice.encrypt(b"x").unwrap();
    env[0] = 1;
    assert_eq!(
        p.bob.decrypt(&env).unwrap_err(),
        CryptoError::UnsupportedVersion
    );
}
