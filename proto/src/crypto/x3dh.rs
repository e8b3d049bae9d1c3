//! X3DH key agreement (Signal's specification, §3), initiator side, and the shared-secret
//! computation both sides use.
//!
//! `SK = HKDF-SHA256(salt = 0^32, IKM = F || DH1 || DH2 || DH3 [|| DH4], info =
//! "Quietline_X3DH_v1")` with `F` = 32 bytes of 0xFF and
//! `DH1 = DH(IK_A, SPK_B)`, `DH2 = DH(EK_A, IK_B)`, `DH3 = DH(EK_A, SPK_B)`,
//! `DH4 = DH(EK_A, OPK_B)`. Every DH must be contributory. The responder side is
//! [`Session::respond`](super::session::Session::respond), which only keeps its result (and
//! only consumes the one-time prekey) once the first message has authenticated.
//!
//! Version 2 has no post-quantum KEM; the envelope keeps a length-prefixed slot for its
//! ciphertext (always empty here, refused if not) so that PQXDH can be added as version 3.

use super::CryptoError;
use super::envelope::PrekeyHeader;
use super::kdf::{Key, dh, x3dh_secret};
use super::keys::{IdentityKeyPair, PublicIdentity};
use super::random::{OsRandom, RandomSource, random32};
use super::ratchet::Ratchet;
use super::session::Session;
use crate::Id;
use crate::wire;
use x25519_dalek::{PublicKey, StaticSecret};

/// Start a session with the device whose [`wire::Bundle`] the relay handed out.
///
/// Checks the bundle first: key lengths, a valid signing key, the identity binding (the
/// signing key signed the X25519 identity key) and the signed prekey's signature, both with
/// `verify_strict`. Whether the bundle's device is one to talk to at all (its certificate
/// under the pinned organisation key, or the pinned identity) is the caller's check, before
/// this. The returned session sends prekey envelopes (carrying the X3DH header: identity,
/// identity binding, ephemeral key, prekey ids, empty KEM slot) until the peer's first
/// answer arrives.
pub fn initiate(
    me: &IdentityKeyPair,
    bundle: &wire::Bundle,
    conversation_id: Id,
) -> Result<Session, CryptoError> {
    initiate_with(me, bundle, conversation_id, &mut OsRandom)
}

/// [`initiate`] with a chosen source of randomness (tests and frozen vectors).
pub fn initiate_with(
    me: &IdentityKeyPair,
    bundle: &wire::Bundle,
    conversation_id: Id,
    rng: &mut dyn RandomSource,
) -> Result<Session, CryptoError> {
    let peer = PublicIdentity::from_signed(
        bundle.identity_key.as_slice(),
        bundle.signing_key.as_slice(),
        bundle.identity_signature.as_slice(),
    )?;
    let spk = peer.verify_signed_prekey(&bundle.signed_prekey)?;
    let opk = match &bundle.one_time_prekey {
        Some(p) => {
            let public: [u8; 32] = p
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| CryptoError::InvalidKey)?;
            Some((p.id, PublicKey::from(public)))
        }
        None => None,
    };

    let ek = StaticSecret::from(*random32(rng)?);
    let sk = initiator_secret(
        me.dh_secret(),
        &ek,
        &peer.dh_public(),
        &spk,
        opk.as_ref().map(|(_, k)| k),
    )?;
    let ratchet = Ratchet::init_initiator(&sk, &spk, rng)?;
    let local = me.public();
    let prekey = PrekeyHeader {
        identity_dh: *local.dh_key(),
        identity_signing: *local.signing_key(),
        identity_signature: me.identity_signature(),
        ephemeral: PublicKey::from(&ek).to_bytes(),
        signed_prekey_id: bundle.signed_prekey.id,
        one_time_prekey_id: opk.map(|(id, _)| id),
    };
    // `ek` is dropped (and wiped) here: X3DH §3.3, Alice deletes her ephemeral private key.
    Ok(Session::new_initiator(
        conversation_id,
        local,
        peer,
        ratchet,
        prekey,
    ))
}

/// Alice's side: DH1..DH4 and the KDF.
fn initiator_secret(
    ik_a: &StaticSecret,
    ek_a: &StaticSecret,
    ik_b: &PublicKey,
    spk_b: &PublicKey,
    opk_b: Option<&PublicKey>,
) -> Result<Key, CryptoError> {
    let dh1 = dh(ik_a, spk_b)?;
    let dh2 = dh(ek_a, ik_b)?;
    let dh3 = dh(ek_a, spk_b)?;
    match opk_b {
        Some(opk) => {
            let dh4 = dh(ek_a, opk)?;
            x3dh_secret(&[&dh1, &dh2, &dh3, &dh4])
        }
        None => x3dh_secret(&[&dh1, &dh2, &dh3]),
    }
}

/// Bob's side: the same four agreements from the other ends.
pub(crate) fn responder_secret(
    ik_b: &StaticSecret,
    spk_b: &StaticSecret,
    opk_b: Option<&StaticSecret>,
    ik_a: &PublicKey,
    ek_a: &PublicKey,
) -> Result<Key, CryptoError> {
    let dh1 = dh(spk_b, ik_a)?;
    let dh2 = dh(ik_b, ek_a)?;
    let dh3 = dh(spk_b, ek_a)?;
    match opk_b {
        Some(opk) => {
            let dh4 = dh(opk, ek_a)?;
            x3dh_secret(&[&dh1, &dh2, &dh3, &dh4])
        }
        None => x3dh_secret(&[&dh1, &dh2, &dh3]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::keys::DeviceSecrets;

    #[test]
    fn both_sides_derive_the_same_secret() {
        let a = IdentityKeyPair::generate().unwrap();
        let (b, _) = DeviceSecrets::generate_with(&mut OsRandom, 0).unwrap();
        let spk = StaticSecret::from([5u8; 32]);
        let opk = StaticSecret::from([6u8; 32]);
        let ek = StaticSecret::from([7u8; 32]);
        let ik_b = b.identity().public().dh_public();
        let left = initiator_secret(
            a.dh_secret(),
            &ek,
            &ik_b,
            &PublicKey::from(&spk),
            Some(&PublicKey::from(&opk)),
        )
        .unwrap();
        let right = responder_secret(
            b.identity().dh_secret(),
            &spk,
            Some(&opk),
            &a.public().dh_public(),
            &PublicKey::from(&ek),
        )
        .unwrap();
        assert_eq!(*left, *right);
    }
}
