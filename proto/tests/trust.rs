//! The organisation root of trust as a client uses it: certificates, key histories, bundles
//! and conversation safety numbers; property tests over valid certificates and chains
//! (round trip, every single-byte change refused, random bytes never panic).
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{SeededRng, bundle};
use proptest::prelude::*;
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::{DeviceSecrets, IdentityKeyPair, conversation_safety_number};
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::trust::{
    CertificateBody, MAX_ORG_KEY_CHANGES, OrgPublicKey, TrustError, chain_head, verify_chain,
    verify_identity_binding,
};
use quietline_proto::wire::{self, Bundle, OrgKeyChain, OrgKeyChange, Role};

const ORG: &str = "shelter-north";
const NOW: i64 = 1_800_000_000;

fn org_key(seed: &str) -> OrgKeyPair {
    OrgKeyPair::generate_with(&mut SeededRng::new(seed)).unwrap()
}

fn body_for(keys: &wire::DeviceKeys, device_id: Id) -> CertificateBody {
    CertificateBody {
        org: ORG.into(),
        member_id: Id([5; 16]),
        role: Role::Advocate,
        device_id,
        identity_key: keys.identity_key.as_slice().try_into().unwrap(),
        signing_key: keys.signing_key.as_slice().try_into().unwrap(),
        not_before: NOW - 86_400,
        not_after: NOW + 86_400,
    }
}

/// A bundle for `keys` as the relay serves it, with a certificate by `org`.
fn certified_bundle(org: &OrgKeyPair, keys: &wire::DeviceKeys) -> Bundle {
    let mut b = bundle(keys, true);
    b.certificate = Some(org.certify(&body_for(keys, b.device_id)));
    b
}

/// A history of `n` keys: the key pairs and the chain the relay would serve.
fn history(seed: &str, n: usize) -> (Vec<OrgKeyPair>, OrgKeyChain) {
    let mut rng = SeededRng::new(seed);
    let keys: Vec<OrgKeyPair> = (0..n)
        .map(|_| OrgKeyPair::generate_with(&mut rng).unwrap())
        .collect();
    let changes = keys
        .windows(2)
        .map(|w| OrgKeyChange {
            key: Bytes(w[1].public().as_bytes().to_vec()),
            signature: Bytes(w[0].endorse(ORG, &w[1].public()).to_vec()),
        })
        .collect();
    let chain = OrgKeyChain {
        first: Bytes(keys[0].public().as_bytes().to_vec()),
        changes,
    };
    (keys, chain)
}

#[test]
fn certified_bundle_verifies_and_one_from_another_org_key_is_refused() {
    let org = org_key("org");
    let (_, keys) = DeviceSecrets::generate_with(&mut SeededRng::new("advocate"), 1).unwrap();
    let b = certified_bundle(&org, &keys);
    let body = org.public().verify_bundle(&b, ORG, NOW).unwrap();
    assert_eq!(body.device_id, b.device_id);

    // (f) A certificate signed by a key other than the pinned one.
    let impostor = org_key("relay's own org key");
    let forged = certified_bundle(&impostor, &keys);
    assert_eq!(
        org.public().verify_bundle(&forged, ORG, NOW),
        Err(TrustError::BadSignature)
    );
    // No certificate at all: nothing vouches for the device.
    let mut bare = b.clone();
    bare.certificate = None;
    assert_eq!(
        org.public().verify_bundle(&bare, ORG, NOW),
        Err(TrustError::NotInChain)
    );
    // Outside its validity, or for another organisation.
    assert_eq!(
        org.public().verify_bundle(&b, ORG, NOW + 86_401),
        Err(TrustError::Expired)
    );
    assert_eq!(
        org.public().verify_bundle(&b, ORG, NOW - 86_401),
        Err(TrustError::Expired)
    );
    assert_eq!(
        org.public().verify_bundle(&b, "shelter-south", NOW),
        Err(TrustError::WrongOrganisation)
    );
}

#[test]
fn certificate_for_other_keys_or_another_device_is_a_key_mismatch() {
    // (a) The relay swaps in its own keys but keeps the advocate's genuine certificate.
    let org = org_key("org");
    let (_, keys) = DeviceSecrets::generate_with(&mut SeededRng::new("advocate"), 1).unwrap();
    let (_, relay) = DeviceSecrets::generate_with(&mut SeededRng::new("relay"), 1).unwrap();
    let genuine = certified_bundle(&org, &keys);
    let mut swapped = bundle(&relay, true);
    swapped.certificate = genuine.certificate.clone();
    assert_eq!(
        org.public().verify_bundle(&swapped, ORG, NOW),
        Err(TrustError::KeyMismatch)
    );
    // Only the signing key, or only the X25519 key, swapped.
    for which in 0..2 {
        let mut b = genuine.clone();
        if which == 0 {
            b.identity_key = relay.identity_key.clone();
        } else {
            b.signing_key = relay.signing_key.clone();
        }
        assert_eq!(
            org.public().verify_bundle(&b, ORG, NOW),
            Err(TrustError::KeyMismatch)
        );
    }
    // (b) A genuine certificate moved to another device id (a ghost device).
    let mut ghost = genuine.clone();
    ghost.device_id = Id([0x66; 16]);
    assert_eq!(
        org.public().verify_bundle(&ghost, ORG, NOW),
        Err(TrustError::KeyMismatch)
    );
}

#[test]
fn key_history_verifies_from_the_pinned_key_to_the_current_one() {
    let (keys, chain) = history("history", 4);
    let current = keys[3].public();
    for pinned in &keys {
        assert_eq!(verify_chain(&pinned.public(), ORG, &chain), Ok(current));
    }
    assert_eq!(chain_head(ORG, &chain), Ok(current));
    // A key the history does not contain.
    assert_eq!(
        verify_chain(&org_key("stranger").public(), ORG, &chain),
        Err(TrustError::NotInChain)
    );
    // A change for another organisation's code does not verify.
    assert_eq!(
        verify_chain(&keys[0].public(), "shelter-south", &chain),
        Err(TrustError::BadSignature)
    );
}

#[test]
fn key_change_not_signed_by_the_previous_key_is_refused() {
    let (keys, mut chain) = history("history", 3);
    // The relay appends its own key, signing the change itself.
    let relay = org_key("relay");
    chain.changes.push(OrgKeyChange {
        key: Bytes(relay.public().as_bytes().to_vec()),
        signature: Bytes(relay.endorse(ORG, &relay.public()).to_vec()),
    });
    assert_eq!(
        verify_chain(&keys[0].public(), ORG, &chain),
        Err(TrustError::BadSignature)
    );
    assert_eq!(chain_head(ORG, &chain), Err(TrustError::BadSignature));
    // A change signed by an older key than the one before it.
    let (keys, mut chain) = history("history", 3);
    chain.changes[1].signature = Bytes(keys[0].endorse(ORG, &keys[2].public()).to_vec());
    assert_eq!(
        verify_chain(&keys[0].public(), ORG, &chain),
        Err(TrustError::BadSignature)
    );
    // Before the pin, a change is not relied on: the pinned key vouches from itself on.
    assert_eq!(
        verify_chain(&keys[1].public(), ORG, &chain),
        Err(TrustError::BadSignature)
    );
    assert_eq!(
        verify_chain(&keys[2].public(), ORG, &chain),
        Ok(keys[2].public())
    );
}

#[test]
fn key_history_length_and_key_validity_are_bounded() {
    let (keys, chain) = history("history", 2);
    let mut long = chain.clone();
    long.changes = vec![chain.changes[0].clone(); MAX_ORG_KEY_CHANGES + 1];
    assert_eq!(
        verify_chain(&keys[0].public(), ORG, &long),
        Err(TrustError::Malformed)
    );
    let mut bad = chain.clone();
    bad.changes[0].key = Bytes(vec![1; 31]);
    assert_eq!(chain_head(ORG, &bad), Err(TrustError::InvalidKey));
    let mut bad = chain.clone();
    bad.changes[0].signature = Bytes(vec![1; 63]);
    assert_eq!(chain_head(ORG, &bad), Err(TrustError::Malformed));
    // Small-order and non-point keys are not organisation keys.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    assert_eq!(
        OrgPublicKey::from_slice(&identity_point),
        Err(TrustError::InvalidKey)
    );
    // y = 2 is not the y-coordinate of any point of the curve.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert_eq!(
        OrgPublicKey::from_slice(&not_a_point),
        Err(TrustError::InvalidKey)
    );
    assert_eq!(OrgPublicKey::from_slice(&[]), Err(TrustError::InvalidKey));
    let mut weak_first = chain.clone();
    weak_first.first = Bytes(identity_point.to_vec());
    assert_eq!(chain_head(ORG, &weak_first), Err(TrustError::InvalidKey));
    // An organisation code of 65 bytes is never signed over.
    let long_org = "x".repeat(65);
    let sig = keys[0].endorse(&long_org, &keys[1].public());
    assert_eq!(
        keys[0]
            .public()
            .verify_change(&long_org, &keys[1].public(), &sig),
        Err(TrustError::Malformed)
    );
}

#[test]
fn conversation_safety_number_is_the_same_for_every_advocate_device() {
    let org = org_key("org");
    let survivor = IdentityKeyPair::generate_with(&mut SeededRng::new("survivor")).unwrap();
    let number = conversation_safety_number(&org.public(), &survivor.public());
    assert_eq!(number.len(), 60);
    assert!(number.bytes().all(|b| b.is_ascii_digit()));
    // Organisation fingerprint first, survivor fingerprint second.
    assert_eq!(&number[..30], org.public().fingerprint().replace(' ', ""));
    assert_eq!(&number[30..], survivor.public().fingerprint());
    // It names no advocate device: a transfer or a new advocate device leaves it as it is;
    // another survivor device or organisation key changes it.
    let other_survivor = IdentityKeyPair::generate_with(&mut SeededRng::new("other")).unwrap();
    assert_ne!(
        conversation_safety_number(&org.public(), &other_survivor.public()),
        number
    );
    assert_ne!(
        conversation_safety_number(&org_key("other org").public(), &survivor.public()),
        number
    );
}

#[test]
fn identity_binding_check_without_crypto_agrees_with_the_device_keys() {
    let (_, keys) = DeviceSecrets::generate_with(&mut SeededRng::new("binding"), 0).unwrap();
    let (_, other) = DeviceSecrets::generate_with(&mut SeededRng::new("other"), 0).unwrap();
    let check = |ik: &Bytes, sk: &Bytes, sig: &Bytes| {
        verify_identity_binding(ik.as_slice(), sk.as_slice(), sig.as_slice())
    };
    assert_eq!(
        check(
            &keys.identity_key,
            &keys.signing_key,
            &keys.identity_signature
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &other.identity_key,
            &keys.signing_key,
            &keys.identity_signature
        ),
        Err(TrustError::BadSignature)
    );
    assert_eq!(
        check(
            &keys.identity_key,
            &other.signing_key,
            &keys.identity_signature
        ),
        Err(TrustError::BadSignature)
    );
    assert_eq!(
        check(
            &keys.identity_key,
            &keys.signing_key,
            &other.identity_signature
        ),
        Err(TrustError::BadSignature)
    );
    assert_eq!(
        check(
            &Bytes(vec![1; 31]),
            &keys.signing_key,
            &keys.identity_signature
        ),
        Err(TrustError::InvalidKey)
    );
    assert_eq!(
        check(&keys.identity_key, &Bytes(vec![]), &keys.identity_signature),
        Err(TrustError::InvalidKey)
    );
}

// ---------------------------------------------------------------- properties

fn valid_body() -> impl Strategy<Value = CertificateBody> {
    (
        "[a-z0-9-]{1,40}|\\PC{1,20}",
        any::<[u8; 16]>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<i64>(),
        1..=i64::MAX,
    )
        .prop_filter("org code is 1..=64 bytes", |t| t.0.len() <= 64)
        .prop_map(|(org, member, supervisor, device, ik, sk, start, span)| {
            let not_before = start.min(i64::MAX - 1);
            CertificateBody {
                org,
                member_id: Id(member),
                role: if supervisor {
                    Role::Supervisor
                } else {
                    Role::Advocate
                },
                device_id: Id(device),
                identity_key: ik,
                signing_key: sk,
                not_before,
                not_after: not_before.saturating_add(span),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn certificate_bodies_round_trip(body in valid_body()) {
        let bytes = body.encode();
        prop_assert_eq!(bytes.len(), CertificateBody::encoded_len(body.org.len()));
        prop_assert_eq!(CertificateBody::decode(&bytes), Ok(body));
    }

    #[test]
    fn any_single_byte_change_to_a_certificate_is_refused(
        body in valid_body(),
        at in any::<usize>(),
        xor in 1..=255u8,
        in_signature in any::<bool>(),
    ) {
        let org = org_key("prop-org");
        let cert = org.certify(&body);
        let now = body.not_before;
        prop_assert_eq!(org.public().verify_certificate(&cert, &body.org, now), Ok(body.clone()));
        let mut changed = cert.clone();
        let bytes = if in_signature { &mut changed.signature.0 } else { &mut changed.body.0 };
        let i = at % bytes.len();
        bytes[i] ^= xor;
        prop_assert!(org.public().verify_certificate(&changed, &body.org, now).is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_certificate_checks(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
        org in ".{0,70}",
        now in any::<i64>(),
    ) {
        let _ = CertificateBody::decode(&body);
        let cert = wire::Certificate { body: Bytes(body), signature: Bytes(signature) };
        prop_assert!(org_key("prop-org").public().verify_certificate(&cert, &org, now).is_err());
    }

    #[test]
    fn valid_key_histories_verify_and_any_change_after_the_pin_is_refused(
        n in 1usize..5,
        pin in any::<usize>(),
        at in any::<usize>(),
        xor in 1..=255u8,
        in_key in any::<bool>(),
    ) {
        let (keys, chain) = history(&format!("prop-history-{n}"), n);
        let pinned = keys[pin % n].public();
        let current = keys[n - 1].public();
        prop_assert_eq!(verify_chain(&pinned, ORG, &chain), Ok(current));
        prop_assert_eq!(chain_head(ORG, &chain), Ok(current));
        // Change one byte of a change at or after the pinned key.
        let after: Vec<usize> = (pin % n..n - 1).collect();
        if !after.is_empty() {
            let which = after[at % after.len()];
            let mut changed = chain.clone();
            let bytes = if in_key {
                &mut changed.changes[which].key.0
            } else {
                &mut changed.changes[which].signature.0
            };
            let i = (at / 7) % bytes.len();
            bytes[i] ^= xor;
            prop_assert!(verify_chain(&pinned, ORG, &changed).is_err());
            prop_assert!(chain_head(ORG, &changed).is_err());
        }
    }

    #[test]
    fn arbitrary_key_history_json_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(chain) = serde_json::from_slice::<OrgKeyChain>(&data) {
            let _ = chain_head(ORG, &chain);
            let _ = verify_chain(&org_key("prop-org").public(), ORG, &chain);
        }
    }
}
