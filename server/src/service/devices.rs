//! Device registration (survivors after a proof-of-work, members when signed in), prekeys
//! and bundles. Only public keys are taken; nothing identifying is asked for or kept.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::clock::hour;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::store::{NewDevice, to_id};
use quietline_proto::wire::{
    Bundle, Certificate, Challenge, DeviceKeys, DeviceRegistered, OneTimePrekey, PowSolution,
    PrekeyCount, SignedPrekey, UploadPrekeys,
};
use quietline_proto::{ErrorCode, Id, b64::Bytes, pow};

/// Most one-time prekeys in one request, and held per device.
pub const MAX_PREKEYS_PER_REQUEST: usize = 200;
pub const MAX_PREKEYS_STORED: i64 = 1000;

/// `POST /v1/devices/challenge`.
pub async fn challenge(state: &AppState) -> Result<Challenge> {
    crate::service::limit_anonymous(state, crate::limits::AnonRoute::Challenge)?;
    let challenge = crate::random::bytes::<32>();
    let bits = state.limits.next_pow_bits(
        state.now(),
        state.config.pow_bits,
        state.config.pow_adaptive_per_minute,
        state.config.pow_max_extra_bits,
    );
    let ttl = state.config.challenge_ttl_secs;
    state
        .store
        .insert_challenge(&challenge, bits, crate::clock::expiry(state.now(), ttl))
        .await?;
    Ok(Challenge {
        challenge: Bytes(challenge.to_vec()),
        bits,
        expires_in: ttl,
    })
}

/// Check a proof-of-work solution against a challenge we issued; `invalid_proof_of_work`
/// otherwise. The challenge is spent whether or not the solution is right.
pub async fn spend_proof_of_work(state: &AppState, solution: &PowSolution) -> Result<()> {
    if solution.challenge.len() != 32 {
        return Err(ErrorCode::InvalidProofOfWork.into());
    }
    let bits = state
        .store
        .take_challenge(solution.challenge.as_slice(), state.now())
        .await?
        .ok_or(ErrorCode::InvalidProofOfWork)?;
    if !pow::verify(solution.challenge.as_slice(), bits, solution.nonce) {
        return Err(ErrorCode::InvalidProofOfWork.into());
    }
    Ok(())
}

fn key32(b: &Bytes) -> Result<()> {
    if b.len() == 32 {
        Ok(())
    } else {
        Err(Error::bad_request())
    }
}

fn check_signed(s: &SignedPrekey) -> Result<()> {
    key32(&s.public_key)?;
    if s.signature.len() != 64 {
        return Err(Error::bad_request());
    }
    Ok(())
}

fn check_one_time(keys: &[OneTimePrekey]) -> Result<Vec<(u32, Vec<u8>)>> {
    if keys.len() > MAX_PREKEYS_PER_REQUEST {
        return Err(Error::bad_request());
    }
    let mut seen = std::collections::HashSet::new();
    keys.iter()
        .map(|k| {
            key32(&k.public_key)?;
            if !seen.insert(k.id) {
                return Err(Error::bad_request());
            }
            Ok((k.id, k.public_key.0.clone()))
        })
        .collect()
}

fn check_keys(keys: &DeviceKeys) -> Result<Vec<(u32, Vec<u8>)>> {
    key32(&keys.identity_key)?;
    key32(&keys.signing_key)?;
    if keys.identity_signature.len() != 64 {
        return Err(Error::bad_request());
    }
    check_signed(&keys.signed_prekey)?;
    check_one_time(&keys.one_time_prekeys)
}

/// `POST /v1/devices`.
pub async fn register(
    state: &AppState,
    caller: Option<Caller>,
    req: quietline_proto::wire::RegisterDevice,
) -> Result<DeviceRegistered> {
    if caller.is_none() {
        crate::service::limit_anonymous(state, crate::limits::AnonRoute::Register)?;
    }
    let one_time = check_keys(&req.keys)?;
    let now = state.now();
    let device = crate::random::id();
    let (member, exit_token) = match caller {
        Some(Caller::Member { member, .. }) => {
            if req.pow.is_some() {
                return Err(Error::bad_request());
            }
            (Some(member), None)
        }
        Some(Caller::Survivor { .. }) => return Err(Error::forbidden()),
        None => {
            let solution = req.pow.as_ref().ok_or(ErrorCode::InvalidProofOfWork)?;
            spend_proof_of_work(state, solution).await?;
            (None, Some(crate::random::token()))
        }
    };
    let exit_hash = exit_token.as_deref().map(crate::random::token_hash);
    let k = &req.keys;
    state
        .store
        .create_device(
            &NewDevice {
                id: &device.0,
                member_id: member.as_ref().map(|m| &m.0[..]),
                identity_key: k.identity_key.as_slice(),
                signing_key: k.signing_key.as_slice(),
                identity_signature: k.identity_signature.as_slice(),
                signed_prekey_id: k.signed_prekey.id,
                signed_prekey: k.signed_prekey.public_key.as_slice(),
                signed_prekey_sig: k.signed_prekey.signature.as_slice(),
                exit_token_hash: exit_hash.as_deref(),
                created_hour: hour(now),
            },
            &one_time,
        )
        .await?;
    let (subject, epoch) = match member {
        Some(member) => {
            let m = state
                .store
                .member(&member.0)
                .await?
                .ok_or_else(Error::unauthorized)?;
            (
                Subject::Member {
                    member,
                    device: Some(device),
                },
                crate::service::auth::current_member_epoch(state, m.token_epoch, Some(device))
                    .await?,
            )
        }
        None => (Subject::Survivor { device }, 0),
    };
    let tokens = crate::service::auth::issue_tokens(state, subject, epoch, None).await?;
    Ok(DeviceRegistered {
        device_id: device,
        tokens,
        exit_token,
    })
}

/// `PUT /v1/devices/me/prekeys`.
pub async fn upload_prekeys(
    state: &AppState,
    caller: Caller,
    req: UploadPrekeys,
) -> Result<PrekeyCount> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    let one_time = check_one_time(&req.one_time_prekeys)?;
    if let Some(s) = &req.signed_prekey {
        check_signed(s)?;
    }
    let signed = req
        .signed_prekey
        .as_ref()
        .map(|s| (s.id, s.public_key.as_slice(), s.signature.as_slice()));
    let count = state
        .store
        .add_prekeys(&device.0, signed, &one_time, MAX_PREKEYS_STORED)
        .await?
        .ok_or_else(Error::conflict)?;
    Ok(PrekeyCount {
        one_time_prekeys: count.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

/// `GET /v1/devices/{id}/bundle`: only for a device the caller may open a session with,
/// so nobody can drain another device's one-time prekeys. Others get `not_found`.
pub async fn bundle(state: &AppState, caller: Caller, target: Id) -> Result<Bundle> {
    bundle_with(state, caller, target, true).await
}

/// A bundle with or without one of the device's one-time prekeys. Without one, the session
/// starts from the signed prekey alone (X3DH allows it), and nothing is used up.
pub async fn bundle_with(
    state: &AppState,
    caller: Caller,
    target: Id,
    take_one_time: bool,
) -> Result<Bundle> {
    if !may_fetch_bundle(state, caller, target).await? {
        return Err(Error::not_found());
    }
    let row = state
        .store
        .bundle_keys(&target.0)
        .await?
        .ok_or_else(Error::not_found)?;
    let one_time = if take_one_time {
        state.store.take_one_time_prekey(&target.0).await?
    } else {
        None
    };
    Ok(Bundle {
        device_id: to_id(&row.id)?,
        identity_key: Bytes(row.identity_key),
        signing_key: Bytes(row.signing_key),
        signed_prekey: SignedPrekey {
            id: row.signed_prekey_id.clamp(0, i64::from(u32::MAX)) as u32,
            public_key: Bytes(row.signed_prekey),
            signature: Bytes(row.signed_prekey_sig),
        },
        one_time_prekey: one_time.map(|(id, key)| OneTimePrekey {
            id,
            public_key: Bytes(key),
        }),
        identity_signature: Bytes(row.identity_signature),
        certificate: match (row.certificate, row.certificate_sig) {
            (Some(body), Some(signature)) => Some(Certificate {
                body: Bytes(body),
                signature: Bytes(signature),
            }),
            _ => None,
        },
    })
}

async fn may_fetch_bundle(state: &AppState, caller: Caller, target: Id) -> Result<bool> {
    let Some(me) = caller.device() else {
        return Ok(false);
    };
    if me == target {
        return Ok(false);
    }
    match caller {
        Caller::Survivor { device } => {
            let Some(conv) = state.store.conversation_of_device(&device.0).await? else {
                return Ok(false);
            };
            let allowed = crate::service::conversations::member_side_devices(state, &conv).await?;
            Ok(allowed.contains(&target))
        }
        Caller::Member { member, org, .. } => {
            let Some(d) = state.store.device_auth(&target.0).await? else {
                return Ok(false);
            };
            match d.member_id {
                // A colleague's device (or my own other device): same organisation.
                Some(other) => {
                    let m = state.store.member(&other).await?;
                    Ok(m.is_some_and(|m| m.org_id == org.0 && m.revoked == 0))
                }
                // A survivor device: only the one in a conversation assigned to me.
                None => {
                    let conv = state.store.conversation_of_device(&target.0).await?;
                    Ok(conv.is_some_and(|c| {
                        c.org_id == org.0 && c.assigned_member.as_deref() == Some(&member.0[..])
                    }))
                }
            }
        }
    }
}

/// The hour from which a member device counts as live: seen within
/// `member_device_ttl_secs`. Messages and events go only to live devices.
pub fn live_since(state: &AppState) -> i64 {
    hour(
        state
            .now()
            .saturating_sub(i64::try_from(state.config.member_device_ttl_secs).unwrap_or(i64::MAX)),
    )
}

/// End the live streams of deleted devices (stored ids), here and on every replica.
pub async fn close_streams(state: &AppState, devices: &[Vec<u8>]) {
    let ids: Vec<Id> = devices.iter().filter_map(|d| Id::from_slice(d)).collect();
    crate::service::events::close_streams(state, &ids).await;
}

/// `DELETE /v1/devices/{id}`: a member removes one of their own devices, with its tokens,
/// prekeys, push registration and pending envelopes. Another member's device, a survivor
/// device and an unknown id all get the same `not_found`. Survivors leave by quick exit.
pub async fn remove(state: &AppState, caller: Caller, target: Id) -> Result<()> {
    let Caller::Member { member, .. } = caller else {
        return Err(Error::not_found());
    };
    if !state
        .store
        .delete_member_device(&member.0, &target.0)
        .await?
    {
        return Err(Error::not_found());
    }
    close_streams(state, &[target.0.to_vec()]).await;
    Ok(())
}
