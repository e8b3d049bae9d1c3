//! Members' own settings and supervisors' organisation settings and invitations.

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::service::events::emit;
use crate::store::to_id;
use quietline_proto::Id;
use quietline_proto::wire::{Duty, EventKind, Invite, Invited, OrgSettings, Role};

fn member(caller: Caller) -> Result<(Id, Id, Role)> {
    match caller {
        Caller::Member {
            member, org, role, ..
        } => Ok((member, org, role)),
        Caller::Survivor { .. } => Err(Error::forbidden()),
    }
}

fn supervisor(caller: Caller) -> Result<(Id, Id)> {
    match member(caller)? {
        (m, org, Role::Supervisor) => Ok((m, org)),
        _ => Err(Error::forbidden()),
    }
}

/// `PUT /v1/members/me/duty`. Coming on duty tells every waiting survivor device, so a
/// contact opened out of hours gets its first message through.
pub async fn set_duty(state: &AppState, caller: Caller, req: Duty) -> Result<Duty> {
    let (me, org, _) = member(caller)?;
    if !state.store.set_duty(&me.0, req.on_duty).await? {
        return Err(Error::unauthorized());
    }
    if req.on_duty {
        for (device, conv) in state.store.waiting_survivor_devices(&org.0).await? {
            emit(
                state,
                &[to_id(&device)?],
                EventKind::AdvocateAvailable,
                Some(to_id(&conv)?),
            )
            .await?;
        }
    }
    Ok(req)
}

/// `GET /v1/org/settings`.
pub async fn settings(state: &AppState, caller: Caller) -> Result<OrgSettings> {
    let (_, org, _) = member(caller)?;
    let o = state
        .store
        .org_by_id(&org.0)
        .await?
        .ok_or_else(Error::not_found)?;
    Ok(OrgSettings {
        out_of_hours_message: Some(o.out_of_hours_message),
        envelope_ttl_secs: Some(o.envelope_ttl_secs.max(0) as u64),
        idle_ttl_secs: Some(o.idle_ttl_secs.max(0) as u64),
        purge_on_close: Some(o.purge_on_close != 0),
    })
}

/// `PUT /v1/org/settings` (supervisors). Lifetimes must be at least an hour and at most
/// the operator's caps (`max_envelope_ttl_secs`, `max_idle_ttl_secs`).
pub async fn set_settings(
    state: &AppState,
    caller: Caller,
    req: OrgSettings,
) -> Result<OrgSettings> {
    let (_, org) = supervisor(caller)?;
    if req
        .out_of_hours_message
        .as_ref()
        .is_some_and(|m| m.chars().count() > 2000)
    {
        return Err(Error::bad_request());
    }
    let within = |v: Option<u64>, max: u64| v.is_none_or(|v| (3600..=max).contains(&v));
    if !within(req.envelope_ttl_secs, state.config.max_envelope_ttl_secs)
        || !within(req.idle_ttl_secs, state.config.max_idle_ttl_secs)
    {
        return Err(Error::bad_request());
    }
    state
        .store
        .update_org_settings(
            &org.0,
            req.out_of_hours_message.as_deref(),
            req.envelope_ttl_secs.map(|v| v as i64),
            req.idle_ttl_secs.map(|v| v as i64),
            req.purge_on_close,
        )
        .await?;
    settings(state, caller).await
}

/// `POST /v1/org/invites` (supervisors); the CLI's `admin member invite` uses [`invite_in_org`].
pub async fn invite(state: &AppState, caller: Caller, req: Invite) -> Result<Invited> {
    let (_, org) = supervisor(caller)?;
    invite_in_org(state, org, &req.handle, req.role).await
}

pub async fn invite_in_org(state: &AppState, org: Id, handle: &str, role: Role) -> Result<Invited> {
    crate::service::auth::check_handle(handle)?;
    let id = crate::random::id();
    let token = crate::random::token();
    let ttl = state.config.invite_ttl_secs;
    state
        .store
        .create_invite(
            &id.0,
            &org.0,
            handle,
            role.as_str(),
            &crate::random::token_hash(&token),
            crate::clock::expiry(state.now(), ttl),
        )
        .await?;
    Ok(Invited {
        member_id: id,
        token,
        expires_in: ttl,
    })
}
