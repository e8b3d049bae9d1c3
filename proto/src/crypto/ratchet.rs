//! The Double Ratchet key schedule (Signal's specification, §3), without the message format.
//!
//! Invariant: receiving is two-phase. [`Ratchet::stage`] computes the message key and every
//! state change without touching `self`; the caller authenticates the message with that key
//! and only then calls [`Ratchet::apply`]. A tampered, replayed or misdirected message thus
//! leaves the state exactly as it was (issue 3, point 2), and no clone of the skipped-key
//! store is needed per message.
//!
//! Every secret field is a `Zeroizing` array or a `StaticSecret`, so the whole state is wiped
//! when dropped.

use super::CryptoError;
use super::codec::{Put, Reader};
use super::envelope::RatchetHeader;
use super::kdf::{Key, dh, kdf_ck, kdf_rk, key};
use super::random::{RandomSource, random32};
use std::collections::VecDeque;
use x25519_dalek::{PublicKey, StaticSecret};

/// The most message keys one message may make the receiver derive and store as skipped
/// (`MAX_SKIP`), counted over both chains a header can touch: the rest of the current
/// receiving chain up to `PN` plus `N` in a new one. A header claiming more is refused
/// before any key derivation or agreement is done for it. This bounds the work of an
/// unauthenticated header to `MAX_SKIP` chain steps (two HMAC-SHA256 each), one X25519 and
/// one AEAD tag check (docs/CRYPTO.md, "Limits", with the measured figure).
pub const MAX_SKIP: u32 = 1000;
/// Skipped message keys kept at most; beyond it the oldest are forgotten. The same bound as
/// [`MAX_SKIP`], so one message's gap always fits in the store.
pub const MAX_STORED_SKIPPED: usize = MAX_SKIP as usize;
/// A skipped key is forgotten once this many later messages have been received.
pub const SKIPPED_MAX_AGE_MESSAGES: u64 = 2000;
/// A skipped key is forgotten this many seconds after it was stored (when the caller gives
/// the time): the relay deletes undelivered envelopes after 7 days by default, so a key
/// older than that has no message left to open.
pub const SKIPPED_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

#[derive(Clone)]
pub(crate) struct SkippedKey {
    pub(crate) dh: [u8; 32],
    pub(crate) n: u32,
    pub(crate) mk: Key,
    /// `received` of the session when the key was stored.
    pub(crate) at_message: u64,
    /// Caller's Unix time when stored, if it gave one.
    pub(crate) at_time: Option<u64>,
}

#[derive(Clone)]
pub(crate) struct Ratchet {
    dhs: StaticSecret,
    dhs_public: [u8; 32],
    dhr: Option<[u8; 32]>,
    rk: Key,
    cks: Option<Key>,
    ckr: Option<Key>,
    ns: u32,
    nr: u32,
    pn: u32,
    /// Messages authenticated so far (drives expiry of skipped keys).
    received: u64,
    /// Oldest first.
    skipped: VecDeque<SkippedKey>,
}

/// The outcome of [`Ratchet::stage`]: the message key, and what to change if it opens.
pub(crate) struct Staged {
    pub(crate) mk: Key,
    change: Change,
}

enum Change {
    /// The key came from the skipped store: remove entry `index`.
    Skipped { index: usize },
    /// The key came from a chain, possibly after a DH ratchet step.
    Chain {
        step: Option<Step>,
        new_skipped: Vec<SkippedKey>,
        ckr: Key,
        nr: u32,
    },
}

/// A DH ratchet step on receiving a new ratchet key (Double Ratchet §3.5 `DHRatchet`),
/// receiving half: the sending half needs fresh randomness and is done at apply time.
struct Step {
    dhr: [u8; 32],
    rk: Key,
    pn: u32,
}

impl Ratchet {
    /// `RatchetInitAlice`: the initiator knows the responder's signed prekey, which serves
    /// as the responder's first ratchet key.
    pub(crate) fn init_initiator(
        sk: &Key,
        their_ratchet: &PublicKey,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, CryptoError> {
        let dhs = StaticSecret::from(*random32(rng)?);
        let (rk, cks) = kdf_rk(sk, &dh(&dhs, their_ratchet)?)?;
        Ok(Ratchet {
            dhs_public: PublicKey::from(&dhs).to_bytes(),
            dhs,
            dhr: Some(their_ratchet.to_bytes()),
            rk,
            cks: Some(cks),
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            received: 0,
            skipped: VecDeque::new(),
        })
    }

    /// `RatchetInitBob`: the responder's first ratchet key pair is its signed prekey.
    pub(crate) fn init_responder(sk: &Key, signed_prekey: &StaticSecret) -> Self {
        Ratchet {
            dhs_public: PublicKey::from(signed_prekey).to_bytes(),
            dhs: signed_prekey.clone(),
            dhr: None,
            rk: key(**sk),
            cks: None,
            ckr: None,
            ns: 0,
            nr: 0,
            pn: 0,
            received: 0,
            skipped: VecDeque::new(),
        }
    }

    pub(crate) fn can_send(&self) -> bool {
        self.cks.is_some()
    }

    pub(crate) fn skipped_len(&self) -> usize {
        self.skipped.len()
    }

    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The next sending message key and its header (`RatchetEncrypt`, key part).
    pub(crate) fn next_send(&mut self) -> Result<(RatchetHeader, Key), CryptoError> {
        let cks = self.cks.as_ref().ok_or(CryptoError::NotReady)?;
        let ns_next = self
            .ns
            .checked_add(1)
            .ok_or(CryptoError::CounterExhausted)?;
        let (ck, mk) = kdf_ck(cks);
        let header = RatchetHeader {
            dh: self.dhs_public,
            pn: self.pn,
            n: self.ns,
        };
        self.cks = Some(ck);
        self.ns = ns_next;
        Ok((header, mk))
    }

    /// Find or derive the message key for `header` without changing anything
    /// (`RatchetDecrypt` up to the AEAD). `now` is the caller's Unix time, if known.
    pub(crate) fn stage(
        &self,
        header: &RatchetHeader,
        now: Option<u64>,
    ) -> Result<Staged, CryptoError> {
        if let Some(index) = self.skipped.iter().position(|s| {
            s.dh == header.dh && s.n == header.n && !is_expired(s, self.received, now)
        }) {
            let mk = key(*self.skipped[index].mk);
            return Ok(Staged {
                mk,
                change: Change::Skipped { index },
            });
        }

        if self.dhr == Some(header.dh) {
            let ckr = self.ckr.as_ref().ok_or(CryptoError::DecryptFailed)?;
            if header.n < self.nr {
                // Already opened, or its skipped key expired or was evicted.
                return Err(CryptoError::Duplicate);
            }
            let mut new_skipped = Vec::new();
            let ck = skip(
                ckr,
                self.nr,
                header.n,
                &header.dh,
                &mut new_skipped,
                self.received,
                now,
            )?;
            let (ckr, mk) = kdf_ck(&ck);
            return Ok(Staged {
                mk,
                change: Change::Chain {
                    step: None,
                    new_skipped,
                    ckr,
                    nr: header
                        .n
                        .checked_add(1)
                        .ok_or(CryptoError::CounterExhausted)?,
                },
            });
        }

        // A new ratchet key from the peer: keys left in the current receiving chain up to PN
        // are kept as skipped, then the receiving half of the DH ratchet step. Both gaps
        // together are bounded by MAX_SKIP, checked before any work.
        let rest_of_chain = match self.ckr {
            Some(_) => header.pn.saturating_sub(self.nr),
            None => 0,
        };
        if u64::from(rest_of_chain) + u64::from(header.n) > u64::from(MAX_SKIP) {
            return Err(CryptoError::TooManySkipped);
        }
        let mut new_skipped = Vec::with_capacity((rest_of_chain as usize) + header.n as usize);
        if let (Some(ckr), Some(dhr)) = (self.ckr.as_ref(), self.dhr.as_ref()) {
            skip(
                ckr,
                self.nr,
                header.pn,
                dhr,
                &mut new_skipped,
                self.received,
                now,
            )?;
        }
        let their = PublicKey::from(header.dh);
        let (rk, ckr) = kdf_rk(&self.rk, &dh(&self.dhs, &their)?)?;
        let ck = skip(
            &ckr,
            0,
            header.n,
            &header.dh,
            &mut new_skipped,
            self.received,
            now,
        )?;
        let (ckr, mk) = kdf_ck(&ck);
        Ok(Staged {
            mk,
            change: Change::Chain {
                step: Some(Step {
                    dhr: header.dh,
                    rk,
                    pn: self.ns,
                }),
                new_skipped,
                ckr,
                nr: header
                    .n
                    .checked_add(1)
                    .ok_or(CryptoError::CounterExhausted)?,
            },
        })
    }

    /// Commit a staged change once its message has authenticated. A DH ratchet step makes
    /// the new sending key pair here; if the random generator fails nothing is changed.
    pub(crate) fn apply(
        &mut self,
        staged: Staged,
        now: Option<u64>,
        rng: &mut dyn RandomSource,
    ) -> Result<(), CryptoError> {
        match staged.change {
            Change::Skipped { index } => {
                self.skipped.remove(index);
            }
            Change::Chain {
                step,
                new_skipped,
                ckr,
                nr,
            } => {
                if let Some(step) = step {
                    // Sending half of the DH ratchet: fresh key pair, next root and chain key.
                    let dhs = StaticSecret::from(*random32(rng)?);
                    let (rk, cks) = kdf_rk(&step.rk, &dh(&dhs, &PublicKey::from(step.dhr))?)?;
                    self.dhs_public = PublicKey::from(&dhs).to_bytes();
                    self.dhs = dhs;
                    self.dhr = Some(step.dhr);
                    self.rk = rk;
                    self.cks = Some(cks);
                    self.pn = step.pn;
                    self.ns = 0;
                }
                self.skipped.extend(new_skipped);
                self.ckr = Some(ckr);
                self.nr = nr;
            }
        }
        self.received = self.received.saturating_add(1);
        self.expire(now);
        Ok(())
    }

    /// Forget expired skipped keys and keep at most [`MAX_STORED_SKIPPED`], oldest out first.
    pub(crate) fn expire(&mut self, now: Option<u64>) {
        let received = self.received;
        self.skipped.retain(|s| !is_expired(s, received, now));
        while self.skipped.len() > MAX_STORED_SKIPPED {
            self.skipped.pop_front();
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.dhs.as_bytes());
        out.put_opt32(self.dhr.as_ref());
        out.extend_from_slice(self.rk.as_ref());
        out.put_opt32(self.cks.as_deref());
        out.put_opt32(self.ckr.as_deref());
        out.put_u32(self.ns);
        out.put_u32(self.nr);
        out.put_u32(self.pn);
        out.put_u64(self.received);
        // Never more than MAX_STORED_SKIPPED (1000) after `expire`, so it fits in u16.
        out.put_u16(u16::try_from(self.skipped.len()).unwrap_or(u16::MAX));
        for s in &self.skipped {
            out.extend_from_slice(&s.dh);
            out.put_u32(s.n);
            out.extend_from_slice(s.mk.as_ref());
            out.put_u64(s.at_message);
            match s.at_time {
                Some(t) => {
                    out.put_flag(true);
                    out.put_u64(t);
                }
                None => out.put_flag(false),
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, CryptoError> {
        let dhs = StaticSecret::from(*key(r.array()?));
        let dhr = r.opt32()?;
        let rk = key(r.array()?);
        let cks = r.opt32()?.map(key);
        let ckr = r.opt32()?.map(key);
        let ns = r.u32()?;
        let nr = r.u32()?;
        let pn = r.u32()?;
        let received = r.u64()?;
        let count = usize::from(r.u16()?);
        if count > MAX_STORED_SKIPPED {
            return Err(CryptoError::Malformed);
        }
        let mut skipped = VecDeque::with_capacity(count.min(r.remaining() / 77));
        for _ in 0..count {
            let dh = r.array()?;
            let n = r.u32()?;
            let mk = key(r.array()?);
            let at_message = r.u64()?;
            let at_time = if r.flag()? { Some(r.u64()?) } else { None };
            skipped.push_back(SkippedKey {
                dh,
                n,
                mk,
                at_message,
                at_time,
            });
        }
        Ok(Ratchet {
            dhs_public: PublicKey::from(&dhs).to_bytes(),
            dhs,
            dhr,
            rk,
            cks,
            ckr,
            ns,
            nr,
            pn,
            received,
            skipped,
        })
    }
}

/// Expiry of a skipped key, by messages received since it was stored or by the caller's time.
fn is_expired(s: &SkippedKey, received: u64, now: Option<u64>) -> bool {
    let by_count = received.saturating_sub(s.at_message) > SKIPPED_MAX_AGE_MESSAGES;
    let by_time = match (now, s.at_time) {
        (Some(now), Some(at)) => now.saturating_sub(at) > SKIPPED_MAX_AGE_SECS,
        _ => false,
    };
    by_count || by_time
}

/// Advance chain key `ck` from message `from` to message `until`, storing the message keys
/// passed over (`SkipMessageKeys`). Refuses a gap larger than [`MAX_SKIP`].
fn skip(
    ck: &Key,
    from: u32,
    until: u32,
    dh: &[u8; 32],
    out: &mut Vec<SkippedKey>,
    received: u64,
    now: Option<u64>,
) -> Result<Key, CryptoError> {
    if until.saturating_sub(from) > MAX_SKIP {
        return Err(CryptoError::TooManySkipped);
    }
    let mut ck = key(**ck);
    for n in from..until {
        let (next, mk) = kdf_ck(&ck);
        out.push(SkippedKey {
            dh: *dh,
            n,
            mk,
            at_message: received,
            at_time: now,
        });
        ck = next;
    }
    Ok(ck)
}
