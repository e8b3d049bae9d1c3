//! The organisation key: made on a supervisor's machine, it certifies member devices and
//! names its own successor. The relay only ever sees its public half.
//!
//! The private half is kept sealed under a passphrase: Argon2id (parameters stored in the
//! file so they can be raised later) derives a 32-byte key, and XChaCha20-Poly1305 with a
//! random 24-byte nonce seals the 32-byte Ed25519 seed. File layout (docs/CRYPTO.md,
//! "Sealed organisation key"):
//!
//! ```text
//! offset size
//! 0      4    magic "QLOK"
//! 4      1    format (1)
//! 5      4    Argon2id memory, KiB (u32 BE)
//! 9      4    Argon2id passes  (u32 BE)
//! 13     4    Argon2id lanes   (u32 BE)
//! 17     16   salt
//! 33     24   nonce
//! 57     48   XChaCha20-Poly1305(seed) || tag, AAD = "Quietline_OrgKeySeal_v1" || bytes 0..17
//! ```

use super::random::{OsRandom, RandomSource, random32};
use super::{CryptoError, labels};
use crate::b64::Bytes;
use crate::trust::{self, CertificateBody, OrgPublicKey};
use crate::wire;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

/// Magic bytes at the start of a sealed organisation key file.
pub const SEALED_MAGIC: &[u8; 4] = b"QLOK";
/// Format byte of the sealed file.
const SEALED_FORMAT: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4 + 4 + 4;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
/// Length of a sealed organisation key file.
pub const SEALED_LEN: usize = HEADER_LEN + SALT_LEN + NONCE_LEN + 32 + 16;

/// Default Argon2id memory cost, KiB (64 MiB).
pub const DEFAULT_M_KIB: u32 = 64 * 1024;
/// Default Argon2id passes.
pub const DEFAULT_T: u32 = 3;
/// Default Argon2id lanes.
pub const DEFAULT_P: u32 = 1;
/// Most memory [`OrgKeyPair::open`] accepts a file to ask for, KiB (1 GiB).
pub const MAX_M_KIB: u32 = 1024 * 1024;
/// Most passes [`OrgKeyPair::open`] accepts.
pub const MAX_T: u32 = 16;
/// Most lanes [`OrgKeyPair::open`] accepts.
pub const MAX_P: u32 = 16;

/// An organisation's Ed25519 key pair. The secret is wiped when dropped and never printed.
pub struct OrgKeyPair {
    signing: SigningKey,
}

impl std::fmt::Debug for OrgKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrgKeyPair(***)")
    }
}

impl OrgKeyPair {
    /// A new organisation key from the operating system's generator.
    pub fn generate() -> Result<Self, CryptoError> {
        Self::generate_with(&mut OsRandom)
    }

    /// [`OrgKeyPair::generate`] with a chosen source of randomness (tests and vectors).
    pub fn generate_with(rng: &mut dyn RandomSource) -> Result<Self, CryptoError> {
        Ok(OrgKeyPair {
            signing: SigningKey::from_bytes(&*random32(rng)?),
        })
    }

    /// The public half, to register (`PUT /v1/org/key`), publish and pin.
    pub fn public(&self) -> OrgPublicKey {
        OrgPublicKey::from_trusted(self.signing.verifying_key().to_bytes())
    }

    /// Certify a member device: the canonical body and the signature over
    /// `trust::labels::CERTIFICATE || body`. The caller checks the body first (an empty
    /// organisation code or one longer than 64 bytes makes a certificate no client accepts).
    pub fn certify(&self, body: &CertificateBody) -> wire::Certificate {
        let bytes = body.encode();
        let signature = self.signing.sign(&CertificateBody::signed_message(&bytes));
        wire::Certificate {
            body: Bytes(bytes),
            signature: Bytes(signature.to_bytes().to_vec()),
        }
    }

    /// Name `next` as this organisation's key from now on: the signature of the change
    /// statement (`trust::change_statement`) for `PUT /v1/org/key`. An organisation code
    /// that is empty or longer than 64 bytes gives a signature over a statement with an
    /// empty code, which no client accepts.
    pub fn endorse(&self, org: &str, next: &OrgPublicKey) -> [u8; 64] {
        let previous = self.public();
        let statement = trust::change_statement(org, &previous, next).unwrap_or_else(|_| {
            let mut m = trust::labels::ORG_KEY_CHANGE.to_vec();
            m.push(0);
            m.extend_from_slice(previous.as_bytes());
            m.extend_from_slice(next.as_bytes());
            m
        });
        self.signing.sign(&statement).to_bytes()
    }

    /// Seal the private key under `passphrase` with the default Argon2id parameters
    /// (64 MiB, 3 passes, 1 lane).
    pub fn seal(&self, passphrase: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_with_params(passphrase, DEFAULT_M_KIB, DEFAULT_T, DEFAULT_P)
    }

    /// [`OrgKeyPair::seal`] with chosen Argon2id parameters (memory in KiB, passes, lanes);
    /// they are stored in the file. Small values are for tests only.
    pub fn seal_with_params(
        &self,
        passphrase: &[u8],
        m_kib: u32,
        t: u32,
        p: u32,
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_with_params_rng(passphrase, m_kib, t, p, &mut OsRandom)
    }

    /// [`OrgKeyPair::seal_with_params`] with a chosen source of salt and nonce (tests).
    pub fn seal_with_params_rng(
        &self,
        passphrase: &[u8],
        m_kib: u32,
        t: u32,
        p: u32,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(SEALED_MAGIC);
        out.push(SEALED_FORMAT);
        out.extend_from_slice(&m_kib.to_be_bytes());
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&p.to_be_bytes());
        let params = params(m_kib, t, p)?;
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let key = derive(passphrase, &salt, params)?;
        let aad = seal_aad(&out);
        let ciphertext = XChaCha20Poly1305::new(key.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: self.signing.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Open a file made by [`OrgKeyPair::seal`]. Checks the layout and refuses parameters
    /// beyond [`MAX_M_KIB`], [`MAX_T`], [`MAX_P`] (`BadParameters`) before deriving
    /// anything, so a hostile file cannot make this allocate or compute without bound. A
    /// wrong passphrase (or a changed file) is `BadPassphrase`.
    pub fn open(sealed: &[u8], passphrase: &[u8]) -> Result<OrgKeyPair, CryptoError> {
        if sealed.len() != SEALED_LEN {
            return Err(CryptoError::Malformed);
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        if header.get(..4) != Some(SEALED_MAGIC.as_slice()) {
            return Err(CryptoError::Malformed);
        }
        if header.get(4) != Some(&SEALED_FORMAT) {
            return Err(CryptoError::UnsupportedVersion);
        }
        let word = |at: usize| -> Result<u32, CryptoError> {
            let bytes: [u8; 4] = header
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or(CryptoError::Malformed)?;
            Ok(u32::from_be_bytes(bytes))
        };
        let (m_kib, t, p) = (word(5)?, word(9)?, word(13)?);
        if m_kib > MAX_M_KIB || t > MAX_T || p > MAX_P {
            return Err(CryptoError::BadParameters);
        }
        let params = params(m_kib, t, p)?;
        let (salt, rest) = rest.split_at(SALT_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = derive(passphrase, salt, params)?;
        let seed = Zeroizing::new(
            XChaCha20Poly1305::new(key.as_ref().into())
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &seal_aad(header),
                    },
                )
                .map_err(|_| CryptoError::BadPassphrase)?,
        );
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.as_slice()
                .try_into()
                .map_err(|_| CryptoError::Malformed)?,
        );
        Ok(OrgKeyPair {
            signing: SigningKey::from_bytes(&seed),
        })
    }
}

/// The associated data of the seal: the label, then magic, format and parameters.
fn seal_aad(header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(labels::ORG_KEY_SEAL.len() + header.len());
    aad.extend_from_slice(labels::ORG_KEY_SEAL);
    aad.extend_from_slice(header);
    aad
}

fn params(m_kib: u32, t: u32, p: u32) -> Result<Params, CryptoError> {
    Params::new(m_kib, t, p, Some(32)).map_err(|_| CryptoError::BadParameters)
}

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    params: Params,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|_| CryptoError::BadParameters)?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Id;
    use crate::trust::TrustError;

    fn body(org: &str) -> CertificateBody {
        CertificateBody {
            org: org.into(),
            member_id: Id([1; 16]),
            role: wire::Role::Supervisor,
            device_id: Id([2; 16]),
            identity_key: [3; 32],
            signing_key: [4; 32],
            not_before: 100,
            not_after: 200,
        }
    }

    #[test]
    fn sealed_org_key_opens_only_with_its_passphrase() {
        let key = OrgKeyPair::generate().unwrap();
        let sealed = key.seal_with_params(b"correct horse", 64, 1, 1).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(&sealed[..4], b"QLOK");
        assert_eq!(&sealed[5..9], &64u32.to_be_bytes());
        let back = OrgKeyPair::open(&sealed, b"correct horse").unwrap();
        assert_eq!(back.public(), key.public());
        assert_eq!(
            OrgKeyPair::open(&sealed, b"correct horsE").unwrap_err(),
            CryptoError::BadPassphrase
        );
        // Two seals of one key differ (fresh salt and nonce).
        assert_ne!(
            key.seal_with_params(b"correct horse", 64, 1, 1).unwrap(),
            sealed
        );
    }

    #[test]
    fn changed_parameters_or_bytes_do_not_open() {
        let key = OrgKeyPair::generate().unwrap();
        let sealed = key.seal_with_params(b"pw", 64, 1, 1).unwrap();
        // A changed parameter derives another key and is in the AAD: it never opens.
        let mut v = sealed.clone();
        v[8] = 65; // memory 64 -> 65 KiB
        assert_eq!(
            OrgKeyPair::open(&v, b"pw").unwrap_err(),
            CryptoError::BadPassphrase
        );
        for at in [17, 33, 60, SEALED_LEN - 1] {
            let mut v = sealed.clone();
            v[at] ^= 1;
            assert_eq!(
                OrgKeyPair::open(&v, b"pw").unwrap_err(),
                CryptoError::BadPassphrase
            );
        }
        let mut v = sealed.clone();
        v[0] = b'X';
        assert_eq!(
            OrgKeyPair::open(&v, b"pw").unwrap_err(),
            CryptoError::Malformed
        );
        let mut v = sealed.clone();
        v[4] = 2;
        assert_eq!(
            OrgKeyPair::open(&v, b"pw").unwrap_err(),
            CryptoError::UnsupportedVersion
        );
        assert_eq!(
            OrgKeyPair::open(&sealed[..SEALED_LEN - 1], b"pw").unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_derivation() {
        let key = OrgKeyPair::generate().unwrap();
        let sealed = key.seal_with_params(b"pw", 64, 1, 1).unwrap();
        for (at, value) in [
            (5, MAX_M_KIB + 1),
            (5, u32::MAX),
            (9, MAX_T + 1),
            (13, MAX_P + 1),
            (9, 0),  // no pass
            (13, 0), // no lane
        ] {
            let mut v = sealed.clone();
            v[at..at + 4].copy_from_slice(&value.to_be_bytes());
            assert_eq!(
                OrgKeyPair::open(&v, b"pw").unwrap_err(),
                CryptoError::BadParameters,
                "offset {at} = {value}"
            );
        }
        // Memory below Argon2's minimum of 8 KiB per lane.
        let mut v = sealed.clone();
        v[5..9].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(
            OrgKeyPair::open(&v, b"pw").unwrap_err(),
            CryptoError::BadParameters
        );
        assert_eq!(
            key.seal_with_params(b"pw", 4, 1, 1).unwrap_err(),
            CryptoError::BadParameters
        );
    }

    #[test]
    fn certificates_and_changes_verify_under_the_org_key_only() {
        let org = OrgKeyPair::generate().unwrap();
        let other = OrgKeyPair::generate().unwrap();
        let cert = org.certify(&body("north"));
        assert_eq!(
            org.public()
                .verify_certificate(&cert, "north", 150)
                .unwrap(),
            body("north")
        );
        assert_eq!(
            other.public().verify_certificate(&cert, "north", 150),
            Err(TrustError::BadSignature)
        );
        assert_eq!(
            org.public().verify_certificate(&cert, "south", 150),
            Err(TrustError::WrongOrganisation)
        );
        assert_eq!(
            org.public().verify_certificate(&cert, "north", 99),
            Err(TrustError::Expired)
        );
        assert_eq!(
            org.public().verify_certificate(&cert, "north", 201),
            Err(TrustError::Expired)
        );
        assert!(org.public().verify_certificate(&cert, "north", 100).is_ok());
        assert!(org.public().verify_certificate(&cert, "north", 200).is_ok());

        let next = other.public();
        let sig = org.endorse("north", &next);
        assert_eq!(org.public().verify_change("north", &next, &sig), Ok(()));
        assert_eq!(
            org.public().verify_change("south", &next, &sig),
            Err(TrustError::BadSignature)
        );
        assert_eq!(
            other.public().verify_change("north", &next, &sig),
            Err(TrustError::BadSignature)
        );
        assert_eq!(
            org.public().verify_change("north", &next, &sig[..63]),
            Err(TrustError::BadSignature)
        );
    }

    #[test]
    fn debug_of_an_org_key_pair_hides_the_key() {
        assert_eq!(
            format!("{:?}", OrgKeyPair::generate().unwrap()),
            "OrgKeyPair(***)"
        );
    }
}
