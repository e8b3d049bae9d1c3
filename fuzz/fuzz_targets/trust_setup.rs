//! A fixed organisation key, certificate, key history and sealed key file for the trust
//! targets.
#![allow(dead_code)] // each target uses part of the fixture

use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::crypto::{CryptoError, RandomSource};
use quietline_proto::trust::{CertificateBody, OrgPublicKey};
use quietline_proto::wire::{Certificate, OrgKeyChain, OrgKeyChange, Role};
use std::sync::OnceLock;

pub const ORG: &str = "shelter-north";
pub const NOW: i64 = 1_800_000_000;
pub const PASSPHRASE: &[u8] = b"fuzz passphrase";

/// Deterministic bytes (a counter), so runs are reproducible. Fuzzing only.
pub struct Counter(pub u8);

impl RandomSource for Counter {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for b in dest {
            self.0 = self.0.wrapping_add(1);
            *b = self.0.wrapping_mul(167).wrapping_add(13);
        }
        Ok(())
    }
}

pub struct Fixture {
    /// The first organisation key, pinned.
    pub org: OrgPublicKey,
    /// The last key of `chain`.
    pub current: OrgPublicKey,
    pub certificate: Certificate,
    pub chain: OrgKeyChain,
    /// The first key sealed under `PASSPHRASE` with small parameters.
    pub sealed: Vec<u8>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = Counter(0);
        let keys: Vec<OrgKeyPair> = (0..3)
            .map(|_| OrgKeyPair::generate_with(&mut rng).unwrap())
            .collect();
        let certificate = keys[0].certify(&CertificateBody {
            org: ORG.into(),
            member_id: Id([1; 16]),
            role: Role::Advocate,
            device_id: Id([2; 16]),
            identity_key: [3; 32],
            signing_key: [4; 32],
            not_before: NOW - 1,
            not_after: NOW + 1,
        });
        let chain = OrgKeyChain {
            first: Bytes(keys[0].public().as_bytes().to_vec()),
            changes: keys
                .windows(2)
                .map(|w| OrgKeyChange {
                    key: Bytes(w[1].public().as_bytes().to_vec()),
                    signature: Bytes(w[0].endorse(ORG, &w[1].public()).to_vec()),
                })
                .collect(),
        };
        let sealed = keys[0]
            .seal_with_params_rng(PASSPHRASE, 64, 1, 1, &mut rng)
            .unwrap();
        Fixture {
            org: keys[0].public(),
            current: keys[2].public(),
            certificate,
            chain,
            sealed,
        }
    })
}

/// XOR triples of (position u16, value) from `edits` onto a copy of `base`.
pub fn flip(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    if out.is_empty() {
        return out;
    }
    for triple in edits.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([triple[0], triple[1]])) % out.len();
        out[at] ^= triple[2];
    }
    out
}
