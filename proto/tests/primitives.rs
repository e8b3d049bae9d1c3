//! Published test vectors for every primitive, called the way `quietline_proto::crypto`
//! calls it: X25519 through `StaticSecret::diffie_hellman` (RFC 7748 §5.2, §6.1),
//! ChaCha20-Poly1305 through `encrypt_in_place_detached` (RFC 8439 §2.8.2), HKDF-SHA256
//! through `Hkdf::<Sha256>::new` + `expand` (RFC 5869 A.1–A.3), Ed25519 through
//! `SigningKey::sign` and `verify_strict` (RFC 8032 §7.1), XChaCha20-Poly1305 through
//! `XChaCha20Poly1305::encrypt` (draft-irtf-cfrg-xchacha-03 A.3.1), and the Wycheproof
//! X25519 low-order public keys, which must give the all-zero secret that the protocol
//! refuses.
#![cfg(feature = "crypto")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chacha20poly1305::aead::{Aead, AeadInPlace, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::DeviceSecrets;
use quietline_proto::crypto::{CryptoError, StoreKey, open, x3dh};
use sha2::{Digest, Sha256, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};

fn h<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn v(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    StaticSecret::from(k)
        .diffie_hellman(&PublicKey::from(u))
        .to_bytes()
}

#[test]
fn rfc7748_x25519_function_vectors() {
    assert_eq!(
        x25519(
            h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
            h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
        ),
        h::<32>("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    );
    // The u-coordinate's top bit is set and must be ignored.
    assert_eq!(
        x25519(
            h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
            h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
        ),
        h::<32>("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")
    );
}

fn iterate(times: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 9;
    let mut u = k;
    for _ in 0..times {
        let next = x25519(k, u);
        u = k;
        k = next;
    }
    k
}

#[test]
fn rfc7748_x25519_iterated_1_and_1000() {
    assert_eq!(
        iterate(1),
        h::<32>("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
    );
    assert_eq!(
        iterate(1000),
        h::<32>("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
    );
}

#[test]
#[ignore = "a million X25519 operations: run with --ignored --release"]
fn rfc7748_x25519_iterated_1_000_000() {
    assert_eq!(
        iterate(1_000_000),
        h::<32>("7c3911e0ab2586fd864497297e575e6f3bc601c0883c30df5f4dd2d24f665424")
    );
}

#[test]
fn rfc7748_diffie_hellman() {
    let a = StaticSecret::from(h::<32>(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let b = StaticSecret::from(h::<32>(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let pa = PublicKey::from(&a);
    let pb = PublicKey::from(&b);
    assert_eq!(
        pa.to_bytes(),
        h::<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        pb.to_bytes(),
        h::<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let k = h::<32>("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    let ab = a.diffie_hellman(&pb);
    assert!(ab.was_contributory());
    assert_eq!(ab.to_bytes(), k);
    assert_eq!(b.diffie_hellman(&pa).to_bytes(), k);
}

/// Wycheproof x25519_test.json, the "low order public key" cases (canonical and with the
/// top bit set, which X25519 ignores): every one gives the all-zero shared secret.
const LOW_ORDER_POINTS: [&str; 12] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

#[test]
fn wycheproof_low_order_points_are_non_contributory() {
    let secret = StaticSecret::from(h::<32>(
        "c8a9d5a91091ad851c668b0736c1c9a02936c0d3ad62670858088047ba057475",
    ));
    for point in LOW_ORDER_POINTS {
        let shared = secret.diffie_hellman(&PublicKey::from(h::<32>(point)));
        assert_eq!(shared.to_bytes(), [0u8; 32], "{point}");
        assert!(!shared.was_contributory(), "{point}");
    }
}

#[test]
fn x3dh_refuses_low_order_keys_in_a_bundle() {
    let mut rng = common::SeededRng::new("low-order");
    let alice = quietline_proto::crypto::keys::IdentityKeyPair::generate_with(&mut rng).unwrap();
    let (_, keys) = DeviceSecrets::generate_with(&mut rng, 1).unwrap();
    for point in LOW_ORDER_POINTS {
        // As identity key (DH2 = DH(EK_A, IK_B)).
        let mut b = common::bundle(&keys, true);
        b.identity_key = Bytes(v(point));
        // The signed prekey was signed over the real identity key, so either the signature
        // or the agreement refuses it; never a session.
        assert!(x3dh::initiate_with(&alice, &b, common::CONVERSATION, &mut rng).is_err());
        // As one-time prekey (DH4 = DH(EK_A, OPK_B)): nothing signs it, the agreement must
        // refuse it.
        let mut b = common::bundle(&keys, true);
        if let Some(opk) = b.one_time_prekey.as_mut() {
            opk.public_key = Bytes(v(point));
        }
        assert_eq!(
            x3dh::initiate_with(&alice, &b, common::CONVERSATION, &mut rng).unwrap_err(),
            CryptoError::NonContributory,
            "{point}"
        );
    }
}

const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

#[test]
fn rfc8439_chacha20_poly1305_aead() {
    let key = h::<32>("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = h::<12>("070000004041424344454647");
    let aad = v("50515253c0c1c2c3c4c5c6c7");
    let expected_ct = v(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
    );
    let expected_tag = v("1ae10b594f09e26a7e902ecbd0600691");
    let cipher = ChaCha20Poly1305::new((&key).into());
    let mut buf = SUNSCREEN.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf)
        .unwrap();
    assert_eq!(buf, expected_ct);
    assert_eq!(tag.to_vec(), expected_tag);
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf, &tag)
        .unwrap();
    assert_eq!(buf, SUNSCREEN);
    // One flipped bit anywhere fails.
    let mut bad = expected_ct.clone();
    bad[0] ^= 1;
    assert!(
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut bad, &tag)
            .is_err()
    );
}

#[test]
fn rfc5869_hkdf_sha256_cases_1_to_3() {
    #[allow(clippy::type_complexity)]
    let cases: [(Vec<u8>, Vec<u8>, Vec<u8>, &str, &str); 3] = [
        (
            vec![0x0b; 22],
            v("000102030405060708090a0b0c"),
            v("f0f1f2f3f4f5f6f7f8f9"),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            (0x00..=0x4f).collect(),
            (0x60..=0xaf).collect(),
            (0xb0..=0xff).collect(),
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            vec![0x0b; 22],
            vec![],
            vec![],
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (ikm, salt, info, prk, okm) in cases {
        let (got_prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
        assert_eq!(got_prk.to_vec(), v(prk));
        let mut out = vec![0u8; okm.len() / 2];
        hk.expand(&info, &mut out).unwrap();
        assert_eq!(out, v(okm));
        // The form the protocol uses: `new` with the salt, then `expand`.
        let mut again = vec![0u8; out.len()];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut again)
            .unwrap();
        assert_eq!(again, out);
    }
}

#[test]
fn rfc8032_ed25519_tests_1_2_3_and_sha_abc() {
    let sha_abc = Sha512::digest(b"abc").to_vec();
    let cases: [(&str, &str, Vec<u8>, &str); 4] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            vec![],
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            v("72"),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            v("af82"),
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
        (
            "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
            "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
            sha_abc,
            "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
        ),
    ];
    for (secret, public, message, signature) in cases {
        let sk = SigningKey::from_bytes(&h(secret));
        assert_eq!(sk.verifying_key().to_bytes(), h::<32>(public));
        let sig = sk.sign(&message);
        assert_eq!(sig.to_bytes(), h::<64>(signature));
        let vk = VerifyingKey::from_bytes(&h(public)).unwrap();
        vk.verify_strict(&message, &Signature::from_bytes(&h(signature)))
            .unwrap();
        let mut wrong = message.clone();
        wrong.push(0);
        assert!(vk.verify_strict(&wrong, &sig).is_err());
    }
}

#[test]
fn ed25519_verify_strict_refuses_small_order_keys_and_non_canonical_s() {
    // The identity point as a public key, with the trivial signature (R = identity, S = 0)
    // that the lenient `verify` accepts for every message.
    let identity = h::<32>("0100000000000000000000000000000000000000000000000000000000000000");
    let vk = VerifyingKey::from_bytes(&identity).unwrap();
    assert!(vk.is_weak());
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    assert!(
        vk.verify_strict(b"anything", &Signature::from_bytes(&sig))
            .is_err()
    );
    // RFC 8032 test 1 with S + L (non-canonical S) must fail.
    let vk = VerifyingKey::from_bytes(&h(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    ))
    .unwrap();
    let mut sig = h::<64>(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    let l = h::<32>("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert!(vk.verify_strict(b"", &Signature::from_bytes(&sig)).is_err());
}

#[test]
fn xchacha20_poly1305_draft_vector() {
    let key = h::<32>("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = h::<24>("404142434445464748494a4b4c4d4e4f5051525354555657");
    let aad = v("50515253c0c1c2c3c4c5c6c7");
    let expected = v(concat!(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e",
        "c0875924c1c7987947deafd8780acf49",
    ));
    let cipher = XChaCha20Poly1305::new((&key).into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: SUNSCREEN,
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(ct, expected);
    // And through our sealing format: version byte, nonce, ciphertext and tag.
    let mut sealed = vec![1u8];
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&expected);
    let opened = open(&StoreKey::from_bytes(key), &aad, &sealed).unwrap();
    assert_eq!(&opened[..], SUNSCREEN);
}
