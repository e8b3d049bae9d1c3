//! The binary envelope and the plaintext padding that makes its length a bucket size.
//!
//! Byte layout (big-endian integers; docs/CRYPTO.md, "Envelope"):
//!
//! ```text
//! offset size
//! 0      1    version (2)
//! 1      1    type: 1 = prekey (first messages, carries the X3DH header), 2 = message
//! -- prekey only (171 bytes) --
//! 2      32   sender X25519 identity key   IK_A
//! 34     32   sender Ed25519 signing key
//! 66     64   identity binding: Ed25519 signature by the signing key over
//!             "Quietline_IdentityBinding_v1" || IK_A
//! 130    32   sender ephemeral key         EK_A
//! 162    4    signed prekey id used
//! 166    1    one-time prekey used: 0 or 1
//! 167    4    one-time prekey id (0 when none)
//! 171    2    KEM ciphertext length: reserved for PQXDH (version 3), must be 0
//! -- ratchet header (40 bytes) --
//!        32   sender ratchet public key    DHs
//!        4    PN: messages in the sender's previous sending chain
//!        4    N:  number of this message in the current sending chain
//! -- body --
//!        rest ChaCha20-Poly1305(padded plaintext) || 16-byte tag
//! ```
//!
//! The whole envelope is exactly one of [`ENVELOPE_BUCKETS`] long (the server refuses any
//! other size). The plaintext is padded ISO/IEC 7816-4 style (0x80, then zeros) to fill the
//! smallest bucket that holds it. Everything before the body is authenticated as associated
//! data, so a changed header byte makes the message fail to decrypt.

use super::codec::{Put, Reader};
use super::keys::PublicIdentity;
use super::{CryptoError, PROTOCOL_VERSION};
use crate::padding::{ENVELOPE_BUCKETS, MAX_ENVELOPE, bucket_for, is_bucket};
use zeroize::Zeroizing;

/// Type byte of a first message (X3DH header present).
pub const TYPE_PREKEY: u8 = 1;
/// Type byte of an ordinary ratchet message.
pub const TYPE_MESSAGE: u8 = 2;

/// Length of the version and type bytes.
const PREFIX_LEN: usize = 2;
/// Length of the X3DH part of a prekey envelope (with an empty KEM slot).
const PREKEY_LEN: usize = 32 + 32 + 64 + 32 + 4 + 1 + 4 + 2;
/// Length of the ratchet header.
pub const RATCHET_HEADER_LEN: usize = 32 + 4 + 4;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// Header length of an ordinary message envelope.
pub const MESSAGE_HEADER_LEN: usize = PREFIX_LEN + RATCHET_HEADER_LEN;
/// Header length of a prekey envelope.
pub const PREKEY_HEADER_LEN: usize = PREFIX_LEN + PREKEY_LEN + RATCHET_HEADER_LEN;

/// The largest plaintext any envelope carries (a prekey envelope, with one byte of padding).
pub const MAX_PLAINTEXT: usize = MAX_ENVELOPE - PREKEY_HEADER_LEN - TAG_LEN - 1;

/// The X3DH fields of a first message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrekeyHeader {
    /// Sender's X25519 identity key (not yet checked: see [`PrekeyHeader::sender`]).
    pub identity_dh: [u8; 32],
    /// Sender's Ed25519 signing key (not yet checked).
    pub identity_signing: [u8; 32],
    /// Sender's identity binding signature (not yet checked).
    pub identity_signature: [u8; 64],
    /// Sender's X3DH ephemeral public key `EK_A`.
    pub ephemeral: [u8; 32],
    pub signed_prekey_id: u32,
    pub one_time_prekey_id: Option<u32>,
}

impl std::fmt::Debug for PrekeyHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrekeyHeader")
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id)
            .finish_non_exhaustive()
    }
}

impl PrekeyHeader {
    /// The sender's identity, checked: a valid signing key that signed the X25519 identity
    /// key (the identity binding), else `InvalidKey` or `BadSignature`.
    pub fn sender(&self) -> Result<PublicIdentity, CryptoError> {
        PublicIdentity::from_signed(
            &self.identity_dh,
            &self.identity_signing,
            &self.identity_signature,
        )
    }
}

/// The Double Ratchet header: sender's ratchet key, previous chain length, message number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatchetHeader {
    pub dh: [u8; 32],
    pub pn: u32,
    pub n: u32,
}

/// A decoded envelope, borrowing the input.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// Present on prekey envelopes.
    pub prekey: Option<PrekeyHeader>,
    pub header: RatchetHeader,
    /// Every byte before the body: authenticated as associated data.
    pub(crate) header_bytes: &'a [u8],
    /// Ciphertext and tag.
    pub(crate) body: &'a [u8],
}

impl Envelope<'_> {
    pub fn is_prekey(&self) -> bool {
        self.prekey.is_some()
    }

    /// Total encoded length (a bucket size).
    pub fn len(&self) -> usize {
        self.header_bytes.len() + self.body.len()
    }

    /// Never true for a decoded envelope; present for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decode and length-check an envelope. Never panics; refuses any length that is not a
/// bucket, any version but [`PROTOCOL_VERSION`] (`UnsupportedVersion`: version 1 envelopes
/// included), an unknown type, a non-empty KEM slot, stray flag values.
pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    if !is_bucket(bytes.len()) {
        return Err(CryptoError::Malformed);
    }
    decode_any_length(bytes)
}

/// What a client looks at before choosing a session: same checks as [`decode`].
pub fn peek(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    decode(bytes)
}

fn decode_any_length(bytes: &[u8]) -> Result<Envelope<'_>, CryptoError> {
    let mut r = Reader::new(bytes);
    if r.u8()? != PROTOCOL_VERSION {
        return Err(CryptoError::UnsupportedVersion);
    }
    let prekey = match r.u8()? {
        TYPE_PREKEY => {
            let identity_dh = r.array()?;
            let identity_signing = r.array()?;
            let identity_signature = r.array()?;
            let ephemeral = r.array()?;
            let signed_prekey_id = r.u32()?;
            let has_one_time = r.flag()?;
            let id = r.u32()?;
            let one_time_prekey_id = match (has_one_time, id) {
                (true, id) => Some(id),
                (false, 0) => None,
                (false, _) => return Err(CryptoError::Malformed),
            };
            if r.u16()? != 0 {
                // The PQXDH slot: a later version fills it; version 2 refuses it rather than
                // ignoring a KEM ciphertext it cannot check.
                return Err(CryptoError::UnsupportedKem);
            }
            Some(PrekeyHeader {
                identity_dh,
                identity_signing,
                identity_signature,
                ephemeral,
                signed_prekey_id,
                one_time_prekey_id,
            })
        }
        TYPE_MESSAGE => None,
        _ => return Err(CryptoError::Malformed),
    };
    let header = RatchetHeader {
        dh: r.array()?,
        pn: r.u32()?,
        n: r.u32()?,
    };
    let header_len = bytes.len() - r.remaining();
    let body = r.rest();
    // At least the tag and the 0x80 padding marker.
    if body.len() < TAG_LEN + 1 {
        return Err(CryptoError::Malformed);
    }
    Ok(Envelope {
        prekey,
        header,
        header_bytes: bytes.get(..header_len).ok_or(CryptoError::Malformed)?,
        body,
    })
}

/// Encode the header of an envelope (everything before the body).
pub(crate) fn encode_header(
    prekey: Option<&PrekeyHeader>,
    header: &RatchetHeader,
    out: &mut Vec<u8>,
) {
    out.put_u8(PROTOCOL_VERSION);
    match prekey {
        Some(p) => {
            out.put_u8(TYPE_PREKEY);
            out.extend_from_slice(&p.identity_dh);
            out.extend_from_slice(&p.identity_signing);
            out.extend_from_slice(&p.identity_signature);
            out.extend_from_slice(&p.ephemeral);
            out.put_u32(p.signed_prekey_id);
            out.put_flag(p.one_time_prekey_id.is_some());
            out.put_u32(p.one_time_prekey_id.unwrap_or(0));
            out.put_u16(0);
        }
        None => out.put_u8(TYPE_MESSAGE),
    }
    out.extend_from_slice(&header.dh);
    out.put_u32(header.pn);
    out.put_u32(header.n);
}

/// The bucket an envelope with this header length and plaintext length lands in.
pub fn envelope_len(header_len: usize, plaintext_len: usize) -> Result<usize, CryptoError> {
    let needed = header_len
        .checked_add(plaintext_len)
        .and_then(|n| n.checked_add(1 + TAG_LEN))
        .ok_or(CryptoError::TooLarge)?;
    bucket_for(needed).ok_or(CryptoError::TooLarge)
}

/// Append `plaintext`, the 0x80 marker and zeros to `out` until `out` is `total - TAG_LEN`
/// long, so that adding the tag makes the envelope exactly `total` bytes.
pub(crate) fn pad_into(
    out: &mut Vec<u8>,
    plaintext: &[u8],
    total: usize,
) -> Result<(), CryptoError> {
    let end = total.checked_sub(TAG_LEN).ok_or(CryptoError::TooLarge)?;
    if out.len() + plaintext.len() + 1 > end {
        return Err(CryptoError::TooLarge);
    }
    out.extend_from_slice(plaintext);
    out.push(0x80);
    out.resize(end, 0);
    Ok(())
}

/// Strip the padding: trailing zeros, then the 0x80 marker, which must be there.
pub fn unpad(padded: &[u8]) -> Result<&[u8], CryptoError> {
    let marker = padded
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(CryptoError::Malformed)?;
    if padded.get(marker) != Some(&0x80) {
        return Err(CryptoError::Malformed);
    }
    padded.get(..marker).ok_or(CryptoError::Malformed)
}

/// Pad a plaintext the way [`super::session::Session::encrypt`] does, to `padded_len` bytes.
/// Public for tests and tools; wiped on drop.
pub fn pad(plaintext: &[u8], padded_len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len));
    pad_into(&mut out, plaintext, padded_len.saturating_add(TAG_LEN))?;
    Ok(out)
}

/// The largest plaintext that fits each bucket, for a message (not prekey) envelope.
pub fn max_plaintext_per_bucket(prekey: bool) -> [usize; 4] {
    let header = if prekey {
        PREKEY_HEADER_LEN
    } else {
        MESSAGE_HEADER_LEN
    };
    ENVELOPE_BUCKETS.map(|b| b - header - TAG_LEN - 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn sample(prekey: bool, len: usize) -> Vec<u8> {
        let p = PrekeyHeader {
            identity_dh: [1; 32],
            identity_signing: [2; 32],
            identity_signature: [8; 64],
            ephemeral: [3; 32],
            signed_prekey_id: 7,
            one_time_prekey_id: Some(9),
        };
        let h = RatchetHeader {
            dh: [4; 32],
            pn: 5,
            n: 6,
        };
        let mut out = Vec::new();
        encode_header(prekey.then_some(&p), &h, &mut out);
        out.resize(len, 0xAA);
        out
    }

    #[test]
    fn header_lengths_match_the_documented_layout() {
        let mut out = Vec::new();
        let h = RatchetHeader {
            dh: [0; 32],
            pn: 0,
            n: 0,
        };
        encode_header(None, &h, &mut out);
        assert_eq!(out.len(), MESSAGE_HEADER_LEN);
        assert_eq!(MESSAGE_HEADER_LEN, 42);
        assert_eq!(PREKEY_HEADER_LEN, 213);
        let env = sample(true, 1024);
        let d = decode(&env).unwrap();
        assert_eq!(d.header_bytes.len(), PREKEY_HEADER_LEN);
        assert_eq!(d.prekey.unwrap().one_time_prekey_id, Some(9));
        assert_eq!(
            d.header,
            RatchetHeader {
                dh: [4; 32],
                pn: 5,
                n: 6
            }
        );
    }

    #[test]
    fn decode_refuses_non_bucket_lengths_and_bad_bytes() {
        assert!(decode(&sample(false, 1023)).is_err());
        assert!(decode(&sample(false, 1025)).is_err());
        for version in [0, 1, 3, 255] {
            let mut v = sample(false, 1024);
            v[0] = version;
            assert_eq!(decode(&v).unwrap_err(), CryptoError::UnsupportedVersion);
        }
        let mut v = sample(false, 1024);
        v[1] = 3;
        assert_eq!(decode(&v).unwrap_err(), CryptoError::Malformed);
        let mut v = sample(true, 1024);
        v[172] = 1; // KEM length low byte
        assert_eq!(decode(&v).unwrap_err(), CryptoError::UnsupportedKem);
        let mut v = sample(true, 1024);
        v[166] = 0; // no one-time prekey, but an id present
        assert_eq!(decode(&v).unwrap_err(), CryptoError::Malformed);
    }

    #[test]
    fn padding_round_trips_and_fills_the_bucket() {
        for len in [0usize, 1, 500, 981, 982, 4000] {
            let pt = vec![0u8; len];
            let total = envelope_len(MESSAGE_HEADER_LEN, len).unwrap();
            let mut out = vec![0u8; MESSAGE_HEADER_LEN];
            pad_into(&mut out, &pt, total).unwrap();
            assert_eq!(out.len() + TAG_LEN, total);
            assert_eq!(unpad(&out[MESSAGE_HEADER_LEN..]).unwrap(), &pt[..]);
        }
        assert_eq!(max_plaintext_per_bucket(false)[0], 1024 - 42 - 17);
        assert_eq!(envelope_len(MESSAGE_HEADER_LEN, 965).unwrap(), 1024);
        assert_eq!(envelope_len(MESSAGE_HEADER_LEN, 966).unwrap(), 4096);
        assert_eq!(
            envelope_len(PREKEY_HEADER_LEN, MAX_PLAINTEXT).unwrap(),
            MAX_ENVELOPE
        );
        assert_eq!(
            envelope_len(PREKEY_HEADER_LEN, MAX_PLAINTEXT + 1),
            Err(CryptoError::TooLarge)
        );
        assert!(unpad(&[0, 0]).is_err());
        assert!(unpad(&[1, 0x81, 0]).is_err());
        assert_eq!(unpad(&[0x80]).unwrap(), &[] as &[u8]);
    }
}
