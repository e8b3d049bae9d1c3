//! A pairwise session: the Double Ratchet between two device identities in one conversation,
//! and the envelope encryption on top of it.
//!
//! Each message is ChaCha20-Poly1305 under a key and nonce derived from its own message key
//! (used once). The associated data is
//! `version || Encode(IK_A) || Encode(IK_B) || conversation id || envelope header`, where A
//! is the initiator and `Encode(IK)` is the X25519 then the Ed25519 identity key: a message
//! opens only in the conversation, between the two identities, with the header it was sent
//! with. State changes only after a message authenticates (see `ratchet`), so every error
//! leaves the session as it was. The state is wiped from memory when dropped.

use super::codec::{Put, Reader};
use super::envelope::{
    self, MESSAGE_HEADER_LEN, PREKEY_HEADER_LEN, PrekeyHeader, TAG_LEN, encode_header,
    envelope_len, pad_into, unpad,
};
use super::kdf::message_keys;
use super::keys::{DeviceSecrets, PublicIdentity};
use super::random::{OsRandom, RandomSource};
use super::ratchet::Ratchet;
use super::{CryptoError, PROTOCOL_VERSION, x3dh};
use crate::Id;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

pub use super::ratchet::{
    MAX_SKIP, MAX_STORED_SKIPPED, SKIPPED_MAX_AGE_MESSAGES, SKIPPED_MAX_AGE_SECS,
};

/// Format version of [`Session::to_bytes`]. Format 1 (protocol version 1, no identity
/// binding in the pending X3DH header) is refused with `UnsupportedVersion`.
const SESSION_FORMAT: u8 = 2;

/// Length of the session part of the associated data.
const SESSION_AD_LEN: usize = 1 + 64 + 64 + 16;

/// One side of a pairwise end-to-end session.
#[derive(Clone)]
pub struct Session {
    conversation_id: Id,
    local: PublicIdentity,
    peer: PublicIdentity,
    /// Did this side start the session (X3DH "Alice")?
    initiator: bool,
    ratchet: Ratchet,
    /// Initiator only: the X3DH header, repeated on every envelope until the peer answers.
    pending_prekey: Option<PrekeyHeader>,
    /// Responder only: the initiator's ephemeral key, to recognise further prekey envelopes
    /// of the same X3DH run.
    base_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("initiator", &self.initiator)
            .field("skipped_keys", &self.ratchet.skipped_len())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new_initiator(
        conversation_id: Id,
        local: PublicIdentity,
        peer: PublicIdentity,
        ratchet: Ratchet,
        prekey: PrekeyHeader,
    ) -> Self {
        Session {
            conversation_id,
            local,
            peer,
            initiator: true,
            ratchet,
            pending_prekey: Some(prekey),
            base_key: None,
        }
    }

    /// Create the responder's session from a first (prekey) envelope, using this device's
    /// secrets, and return it with the first message's plaintext.
    ///
    /// Nothing is kept unless the message authenticates: only then is the one-time prekey
    /// it names removed from `secrets` (X3DH §3.4). Refuses unknown or used prekeys, a bad
    /// sender identity (including an X25519 identity key its signing key did not sign:
    /// `BadSignature`), a non-empty KEM slot and any non-contributory agreement.
    ///
    /// Whether the sender is who it may be (the certified or pinned identity for the device
    /// the relay says sent it) is the caller's check: look at
    /// [`envelope::peek`]`(..).prekey` and [`PrekeyHeader::sender`] first.
    pub fn respond(
        secrets: &mut DeviceSecrets,
        conversation_id: Id,
        envelope: &[u8],
    ) -> Result<(Session, Zeroizing<Vec<u8>>), CryptoError> {
        Self::respond_with(secrets, conversation_id, envelope, &mut OsRandom, None)
    }

    /// [`Session::respond`] with a chosen source of randomness and the caller's time.
    pub fn respond_with(
        secrets: &mut DeviceSecrets,
        conversation_id: Id,
        envelope: &[u8],
        rng: &mut dyn RandomSource,
        now: Option<u64>,
    ) -> Result<(Session, Zeroizing<Vec<u8>>), CryptoError> {
        let env = envelope::decode(envelope)?;
        let prekey = env.prekey.ok_or(CryptoError::NotPrekey)?;
        let sender = prekey.sender()?;
        let spk = secrets
            .signed_prekey_secret(prekey.signed_prekey_id)
            .ok_or(CryptoError::UnknownPrekey)?;
        let opk = match prekey.one_time_prekey_id {
            Some(id) => Some(
                secrets
                    .one_time_prekey_secret(id)
                    .ok_or(CryptoError::UnknownPrekey)?,
            ),
            None => None,
        };
        let sk = x3dh::responder_secret(
            secrets.identity().dh_secret(),
            spk,
            opk,
            &sender.dh_public(),
            &PublicKey::from(prekey.ephemeral),
        )?;
        let mut session = Session {
            conversation_id,
            local: secrets.identity().public(),
            peer: sender,
            initiator: false,
            ratchet: Ratchet::init_responder(&sk, spk),
            pending_prekey: None,
            base_key: Some(prekey.ephemeral),
        };
        let plaintext = session.decrypt_with(envelope, rng, now)?;
        if let Some(id) = prekey.one_time_prekey_id {
            secrets.consume_one_time_prekey(id);
        }
        Ok((session, plaintext))
    }

    /// The conversation this session belongs to (bound into every message).
    pub fn conversation_id(&self) -> Id {
        self.conversation_id
    }

    /// The other device's identity, for safety numbers and for choosing a session.
    pub fn peer_identity(&self) -> &PublicIdentity {
        &self.peer
    }

    pub fn local_identity(&self) -> &PublicIdentity {
        &self.local
    }

    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// True once the peer has answered (the initiator no longer sends the X3DH header).
    pub fn is_established(&self) -> bool {
        self.pending_prekey.is_none()
    }

    /// Skipped message keys currently held (at most [`MAX_STORED_SKIPPED`]).
    pub fn skipped_keys(&self) -> usize {
        self.ratchet.skipped_len()
    }

    /// Messages this session has opened.
    pub fn messages_received(&self) -> u64 {
        self.ratchet.received()
    }

    /// The largest plaintext [`Session::encrypt`] takes right now.
    pub fn max_plaintext_len(&self) -> usize {
        crate::padding::MAX_ENVELOPE - self.header_len() - TAG_LEN - 1
    }

    fn header_len(&self) -> usize {
        if self.pending_prekey.is_some() {
            PREKEY_HEADER_LEN
        } else {
            MESSAGE_HEADER_LEN
        }
    }

    fn session_ad(&self) -> [u8; SESSION_AD_LEN] {
        let (a, b) = if self.initiator {
            (&self.local, &self.peer)
        } else {
            (&self.peer, &self.local)
        };
        let mut ad = [0u8; SESSION_AD_LEN];
        ad[0] = PROTOCOL_VERSION;
        ad[1..65].copy_from_slice(&a.encode());
        ad[65..129].copy_from_slice(&b.encode());
        ad[129..].copy_from_slice(self.conversation_id.as_bytes());
        ad
    }

    fn full_ad(&self, header: &[u8]) -> Vec<u8> {
        let mut ad = Vec::with_capacity(SESSION_AD_LEN + header.len());
        ad.extend_from_slice(&self.session_ad());
        ad.extend_from_slice(header);
        ad
    }

    /// Encrypt one message into an envelope whose length is exactly one of
    /// [`ENVELOPE_BUCKETS`](crate::padding::ENVELOPE_BUCKETS): the smallest that fits.
    /// Errors (`TooLarge`, `NotReady`) change nothing.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header_len = self.header_len();
        let total = envelope_len(header_len, plaintext.len())?;
        if !self.ratchet.can_send() {
            return Err(CryptoError::NotReady);
        }
        let (header, mk) = self.ratchet.next_send()?;
        let (aead_key, nonce) = message_keys(&mk)?;

        let mut out = Vec::with_capacity(total);
        encode_header(self.pending_prekey.as_ref(), &header, &mut out);
        pad_into(&mut out, plaintext, total)?;
        let ad = self.full_ad(out.get(..header_len).ok_or(CryptoError::Malformed)?);
        let body = out.get_mut(header_len..).ok_or(CryptoError::Malformed)?;
        let tag = ChaCha20Poly1305::new(aead_key.as_ref().into())
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &ad, body)
            .map_err(|_| CryptoError::TooLarge)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypt an envelope of this session. Uses the operating system's generator for the
    /// next ratchet key; skipped keys expire by message count only.
    pub fn decrypt(&mut self, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.decrypt_with(envelope, &mut OsRandom, None)
    }

    /// [`Session::decrypt`], also expiring skipped keys older than
    /// [`SKIPPED_MAX_AGE_SECS`] at `now` (Unix seconds, from the caller's clock).
    pub fn decrypt_at(
        &mut self,
        envelope: &[u8],
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.decrypt_with(envelope, &mut OsRandom, Some(now))
    }

    /// The general form: a chosen source of randomness and an optional time.
    ///
    /// Errors: `OtherSession` for a prekey envelope of another X3DH run (hand it to
    /// [`Session::respond`]); `Duplicate` for a message already opened; `TooManySkipped`
    /// for a header that skips more than [`MAX_SKIP`]; `DecryptFailed` when it does not
    /// authenticate. On every error the session is unchanged.
    pub fn decrypt_with(
        &mut self,
        envelope: &[u8],
        rng: &mut dyn RandomSource,
        now: Option<u64>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let env = envelope::decode(envelope)?;
        if let Some(prekey) = &env.prekey {
            // Prekey envelopes keep coming until the initiator hears back; they belong here
            // only if they are the X3DH run that made this session.
            let ours = !self.initiator
                && self.base_key == Some(prekey.ephemeral)
                && prekey.identity_dh == *self.peer.dh_key()
                && prekey.identity_signing == *self.peer.signing_key();
            if !ours {
                return Err(CryptoError::OtherSession);
            }
        }
        let staged = self.ratchet.stage(&env.header, now)?;
        let (aead_key, nonce) = message_keys(&staged.mk)?;
        let split = env
            .body
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Malformed)?;
        let (ciphertext, tag) = env.body.split_at(split);
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        ChaCha20Poly1305::new(aead_key.as_ref().into())
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &self.full_ad(env.header_bytes),
                &mut buf,
                Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::DecryptFailed)?;
        let len = unpad(&buf)?.len();
        // Authenticated: now, and only now, the state moves.
        self.ratchet.apply(staged, now, rng)?;
        self.pending_prekey = None;
        // The padding stays in the spare capacity, which `Zeroizing<Vec>` also wipes.
        buf.truncate(len);
        Ok(buf)
    }

    /// Forget skipped keys older than [`SKIPPED_MAX_AGE_SECS`] at `now` (Unix seconds).
    pub fn expire_skipped(&mut self, now: u64) {
        self.ratchet.expire(Some(now));
    }

    /// Serialise for storage (versioned binary; docs/CRYPTO.md, "Stored session"). The
    /// bytes hold the ratchet secrets: seal them with [`super::seal`] before writing.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(400 + 90 * self.ratchet.skipped_len()));
        out.put_u8(SESSION_FORMAT);
        out.put_u8(PROTOCOL_VERSION);
        out.put_flag(self.initiator);
        out.extend_from_slice(self.conversation_id.as_bytes());
        out.extend_from_slice(&self.local.encode());
        out.extend_from_slice(&self.peer.encode());
        match &self.pending_prekey {
            Some(p) => {
                out.put_flag(true);
                out.extend_from_slice(&p.identity_signature);
                out.extend_from_slice(&p.ephemeral);
                out.put_u32(p.signed_prekey_id);
                out.put_flag(p.one_time_prekey_id.is_some());
                out.put_u32(p.one_time_prekey_id.unwrap_or(0));
            }
            None => out.put_flag(false),
        }
        out.put_opt32(self.base_key.as_ref());
        self.ratchet.write(&mut out);
        out
    }

    /// Parse what [`Session::to_bytes`] wrote. Never panics on any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Session, CryptoError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != SESSION_FORMAT || r.u8()? != PROTOCOL_VERSION {
            return Err(CryptoError::UnsupportedVersion);
        }
        let initiator = r.flag()?;
        let conversation_id = Id(r.array()?);
        let local = PublicIdentity::from_arrays(r.array()?, r.array()?)?;
        let peer = PublicIdentity::from_arrays(r.array()?, r.array()?)?;
        let pending_prekey = if r.flag()? {
            let identity_signature: [u8; 64] = r.array()?;
            local
                .verify_binding(&identity_signature)
                .map_err(|_| CryptoError::Malformed)?;
            let ephemeral = r.array()?;
            let signed_prekey_id = r.u32()?;
            let one_time_prekey_id = match (r.flag()?, r.u32()?) {
                (true, id) => Some(id),
                (false, 0) => None,
                (false, _) => return Err(CryptoError::Malformed),
            };
            Some(PrekeyHeader {
                identity_dh: *local.dh_key(),
                identity_signing: *local.signing_key(),
                identity_signature,
                ephemeral,
                signed_prekey_id,
                one_time_prekey_id,
            })
        } else {
            None
        };
        let base_key = r.opt32()?;
        // Only an initiator sends the X3DH header; only a responder remembers a base key.
        if (pending_prekey.is_some() && !initiator) || (base_key.is_some() && initiator) {
            return Err(CryptoError::Malformed);
        }
        let ratchet = Ratchet::read(&mut r)?;
        r.finish()?;
        Ok(Session {
            conversation_id,
            local,
            peer,
            initiator,
            ratchet,
            pending_prekey,
            base_key,
        })
    }
}
