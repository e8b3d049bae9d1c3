//! The organisation key and member device certificates (docs/CRYPTO.md, "Trust").
//!
//! What keeps the encryption honest against the relay itself: a member device is a recipient
//! only with a certificate signed by the organisation key, whose private half lives with the
//! organisation's supervisors and never reaches this server. The server stores the public key
//! chain and the certificates and hands them out; clients verify them against the key they
//! pinned. The checks here (a replacement key must be signed by the current one; a
//! certificate must verify under the current key and match the device it is stored for) do
//! not make the server trusted. They stop a stolen supervisor password, which does not give
//! the organisation key, from swapping the key or certifying a device, and they turn a
//! supervisor's mistake into a clear 4xx instead of a certificate every client refuses.

use crate::app::AppState;
use crate::clock::hour;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::store::{MemberDeviceRow, to_id};
use quietline_proto::b64::Bytes;
use quietline_proto::trust::{CertificateBody, OrgPublicKey};
use quietline_proto::wire::{
    Certificate, MemberDevice, MemberDevices, OrgKeyChain, OrgKeyChange, Role, SetOrgKey,
};
use quietline_proto::{ErrorCode, Id};

fn supervisor(caller: Caller) -> Result<(Id, Id)> {
    match caller {
        Caller::Member {
            member,
            org,
            role: Role::Supervisor,
            ..
        } => Ok((member, org)),
        _ => Err(Error::forbidden()),
    }
}

/// The organisation's key chain as stored; `None` when it has no key yet.
async fn chain_of(state: &AppState, org: &[u8]) -> Result<Option<OrgKeyChain>> {
    let rows = state.store.org_key_chain(org).await?;
    let Some((first, rest)) = rows.split_first() else {
        return Ok(None);
    };
    Ok(Some(OrgKeyChain {
        first: Bytes(first.public_key.clone()),
        changes: rest
            .iter()
            .map(|r| OrgKeyChange {
                key: Bytes(r.public_key.clone()),
                signature: Bytes(r.signature.clone().unwrap_or_default()),
            })
            .collect(),
    }))
}

/// The organisation's current key, if it registered one.
async fn current_key(state: &AppState, org: &[u8]) -> Result<Option<(i64, OrgPublicKey)>> {
    let rows = state.store.org_key_chain(org).await?;
    match rows.last() {
        Some(r) => {
            let key = OrgPublicKey::from_slice(&r.public_key)
                .map_err(|_| Error::internal("stored organisation key is not a valid key"))?;
            Ok(Some((r.seq, key)))
        }
        None => Ok(None),
    }
}

/// `GET /v1/orgs/{code}/key`: the public key chain, oldest first. Anyone may read it; an
/// organisation publishes its fingerprint anyway. `not_found` for an unknown organisation
/// and for one that has not registered a key.
pub async fn org_key(state: &AppState, code: &str) -> Result<OrgKeyChain> {
    if code.is_empty() || code.len() > quietline_proto::trust::MAX_ORG_CODE {
        return Err(Error::not_found());
    }
    let org = state
        .store
        .org_by_code(code)
        .await?
        .ok_or_else(Error::not_found)?;
    chain_of(state, &org.id).await?.ok_or_else(Error::not_found)
}

/// `PUT /v1/org/key` (supervisors): register the organisation's first key, or replace the
/// current one with a change statement signed by it. A replacement without a valid
/// signature is `forbidden`; registering the same key again is a no-op.
pub async fn set_org_key(state: &AppState, caller: Caller, req: SetOrgKey) -> Result<OrgKeyChain> {
    let (_, org) = supervisor(caller)?;
    let next =
        OrgPublicKey::from_slice(req.public_key.as_slice()).map_err(|_| Error::bad_request())?;
    let o = state
        .store
        .org_by_id(&org.0)
        .await?
        .ok_or_else(Error::not_found)?;
    let now = hour(state.now());
    match current_key(state, &org.0).await? {
        None => {
            if req.signature.is_some() {
                return Err(Error::bad_request());
            }
            state
                .store
                .append_org_key(&org.0, 0, next.as_bytes(), None, now)
                .await?;
        }
        Some((_, current)) if current == next => {}
        Some((seq, current)) => {
            let signature = req.signature.as_ref().ok_or_else(Error::forbidden)?;
            current
                .verify_change(&o.code, &next, signature.as_slice())
                .map_err(|_| Error::forbidden())?;
            state
                .store
                .append_org_key(
                    &org.0,
                    seq + 1,
                    next.as_bytes(),
                    Some(signature.as_slice()),
                    now,
                )
                .await?;
        }
    }
    chain_of(state, &org.0).await?.ok_or_else(Error::not_found)
}

fn certificate_of(row: &MemberDeviceRow) -> Option<Certificate> {
    match (&row.certificate, &row.certificate_sig) {
        (Some(body), Some(sig)) => Some(Certificate {
            body: Bytes(body.clone()),
            signature: Bytes(sig.clone()),
        }),
        _ => None,
    }
}

fn to_member_device(row: &MemberDeviceRow) -> Result<MemberDevice> {
    Ok(MemberDevice {
        device_id: to_id(&row.id)?,
        member_id: to_id(&row.member_id)?,
        handle: row.handle.clone(),
        role: Role::parse(&row.role).ok_or_else(|| Error::internal("stored role is unknown"))?,
        identity_key: Bytes(row.identity_key.clone()),
        signing_key: Bytes(row.signing_key.clone()),
        identity_signature: Bytes(row.identity_signature.clone()),
        certificate: certificate_of(row),
    })
}

/// `GET /v1/org/devices` (supervisors): every device of the organisation's members, with its
/// certificate if it has one, so a supervisor can certify the pending ones.
pub async fn org_devices(state: &AppState, caller: Caller) -> Result<MemberDevices> {
    let (_, org) = supervisor(caller)?;
    let rows = state.store.org_member_devices(&org.0).await?;
    Ok(MemberDevices {
        devices: rows.iter().map(to_member_device).collect::<Result<_>>()?,
    })
}

/// `PUT /v1/devices/{id}/certificate` (supervisors): store a certificate made with the
/// organisation key for one of the organisation's member devices. It must verify under the
/// current key and name this device, its member, the member's role and the device's keys
/// exactly. A device of another organisation, a survivor device and an unknown id all get
/// `not_found`.
pub async fn certify(
    state: &AppState,
    caller: Caller,
    device: Id,
    cert: Certificate,
) -> Result<MemberDevice> {
    let (_, org) = supervisor(caller)?;
    let (row, device_org) = state
        .store
        .member_device(&device.0)
        .await?
        .ok_or_else(Error::not_found)?;
    if device_org != org.0 {
        return Err(Error::not_found());
    }
    let o = state
        .store
        .org_by_id(&org.0)
        .await?
        .ok_or_else(Error::not_found)?;
    let (_, key) = current_key(state, &org.0)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::Conflict))?;
    let body: CertificateBody = key
        .verify_certificate(&cert, &o.code, state.now())
        .map_err(|_| Error::bad_request())?;
    let matches = body.device_id == device
        && body.member_id.0[..] == row.member_id[..]
        && Some(body.role) == Role::parse(&row.role)
        && body.identity_key[..] == row.identity_key[..]
        && body.signing_key[..] == row.signing_key[..];
    if !matches {
        return Err(Error::bad_request());
    }
    state
        .store
        .set_certificate(
            &device.0,
            cert.body.as_slice(),
            cert.signature.as_slice(),
            body.not_after,
        )
        .await?;
    let mut row = row;
    row.certificate = Some(cert.body.0);
    row.certificate_sig = Some(cert.signature.0);
    to_member_device(&row)
}

/// `GET /v1/devices/me/certificate`: the calling member device's own certificate, which it
/// puts inside its first messages so a survivor can check who it is talking to. `not_found`
/// until a supervisor has certified it, and for survivor devices.
pub async fn my_certificate(state: &AppState, caller: Caller) -> Result<Certificate> {
    let Caller::Member {
        device: Some(device),
        ..
    } = caller
    else {
        return Err(Error::not_found());
    };
    let (row, _) = state
        .store
        .member_device(&device.0)
        .await?
        .ok_or_else(Error::not_found)?;
    certificate_of(&row).ok_or_else(Error::not_found)
}
