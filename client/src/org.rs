//! A supervisor's side of the organisation key: create it and keep it sealed under a
//! passphrase, register its public half, hand it over to a new key, and certify member
//! devices (docs/CRYPTO.md, "Trust").
//!
//! The private half of the organisation key exists only here, on a supervisor's machine,
//! sealed in a file (Argon2id + XChaCha20-Poly1305). It never goes to the relay: the relay
//! stores the public half and the certificates, and clients check both against the key they
//! pinned, so even a relay that lies cannot make a device a recipient.

use crate::api::Api;
use crate::error::{Error, Result};
use crate::state::atomic_write;
use quietline_proto::Id;
use quietline_proto::b64::Bytes;
use quietline_proto::crypto::keys::PublicIdentity;
use quietline_proto::crypto::org::OrgKeyPair;
use quietline_proto::trust::{CertificateBody, OrgPublicKey};
use quietline_proto::wire::{MemberDevice, OrgKeyChain, SetOrgKey};
use std::path::Path;

/// How long a certificate made by [`certify_pending`] is valid by default: a year. A
/// supervisor renews it, or lets it lapse to drop a device.
pub const DEFAULT_CERTIFICATE_SECS: i64 = 365 * 86_400;

/// Create a new organisation key and write it, sealed under `passphrase`, to `path`.
/// Refuses to overwrite an existing file.
pub fn create_key_file(path: &Path, passphrase: &[u8]) -> Result<OrgKeyPair> {
    if path.exists() {
        return Err(Error::State(format!(
            "{} exists; refusing to overwrite an organisation key",
            path.display()
        )));
    }
    let key = OrgKeyPair::generate()?;
    atomic_write(path, &key.seal(passphrase)?)?;
    Ok(key)
}

/// Open an organisation key file with its passphrase.
pub fn open_key_file(path: &Path, passphrase: &[u8]) -> Result<OrgKeyPair> {
    let sealed = std::fs::read(path)?;
    Ok(OrgKeyPair::open(&sealed, passphrase)?)
}

/// Register `key` as the organisation's first key (`supervisor` holds a supervisor's token).
pub async fn register_key(supervisor: &Api, key: &OrgKeyPair) -> Result<OrgKeyChain> {
    supervisor
        .set_org_key(&SetOrgKey {
            public_key: Bytes(key.public().as_bytes().to_vec()),
            signature: None,
        })
        .await
}

/// Replace the organisation key `current` with `next`, signing the change with `current`.
/// Clients that pinned `current` follow the change; certificates must then be renewed with
/// `next`.
pub async fn replace_key(
    supervisor: &Api,
    org: &str,
    current: &OrgKeyPair,
    next: &OrgKeyPair,
) -> Result<OrgKeyChain> {
    let signature = current.endorse(org, &next.public());
    supervisor
        .set_org_key(&SetOrgKey {
            public_key: Bytes(next.public().as_bytes().to_vec()),
            signature: Some(Bytes(signature.to_vec())),
        })
        .await
}

/// Is `device` certified by `key` for its current keys, valid at `now`?
fn certified(device: &MemberDevice, org: &str, key: &OrgPublicKey, now: i64) -> bool {
    let Some(cert) = &device.certificate else {
        return false;
    };
    key.verify_certificate(cert, org, now).is_ok_and(|body| {
        body.device_id == device.device_id
            && body.identity_key[..] == device.identity_key.0[..]
            && body.signing_key[..] == device.signing_key.0[..]
    })
}

/// What [`certify_pending`] did with each device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertifyReport {
    /// Devices certified now.
    pub certified: Vec<Id>,
    /// Devices already holding a valid certificate from this key.
    pub already: Vec<Id>,
    /// Devices whose keys are not signed by themselves (corrupt, or put there by the relay):
    /// never certified.
    pub refused: Vec<Id>,
}

/// Certify every member device of the organisation that has no valid certificate from `key`
/// yet, for `validity_secs` from `now`. Only `devices` (device ids) when given: a supervisor
/// who checked which browsers are really their colleagues' certifies just those.
pub async fn certify_pending(
    supervisor: &Api,
    org: &str,
    key: &OrgKeyPair,
    devices: Option<&[Id]>,
    now: i64,
    validity_secs: i64,
) -> Result<CertifyReport> {
    let public = key.public();
    let mut report = CertifyReport::default();
    for device in supervisor.org_devices().await?.devices {
        if devices.is_some_and(|only| !only.contains(&device.device_id)) {
            continue;
        }
        if certified(&device, org, &public, now) {
            report.already.push(device.device_id);
            continue;
        }
        let identity = PublicIdentity::from_signed(
            device.identity_key.as_slice(),
            device.signing_key.as_slice(),
            device.identity_signature.as_slice(),
        );
        let Ok(identity) = identity else {
            report.refused.push(device.device_id);
            continue;
        };
        let body = CertificateBody {
            org: org.to_owned(),
            member_id: device.member_id,
            role: device.role,
            device_id: device.device_id,
            identity_key: *identity.dh_key(),
            signing_key: *identity.signing_key(),
            not_before: now - 3600,
            not_after: now + validity_secs,
        };
        supervisor
            .certify(device.device_id, &key.certify(&body))
            .await?;
        report.certified.push(device.device_id);
    }
    Ok(report)
}
