//! Conversations between a survivor device and an organisation: opening contact, the queue,
//! claims (exactly one wins), transfers, closing (which purges), and the fan-out list.
//!
//! Isolation (docs/THREAT_MODEL.md, invariant 6): a survivor device sees only its own conversation;
//! a member only their organisation's queue and their own (a supervisor: all of their
//! organisation's). Anything else is `not_found`, the same as a conversation that does not exist.

use crate::app::AppState;
use crate::clock::hour;
use crate::error::{Error, Result};
use crate::service::events::emit;
use crate::service::{Caller, devices};
use crate::store::{ConversationRow, ListFor, to_id};
use quietline_proto::wire::{
    Conversation, ConversationOpened, ConversationState, EventKind, OpenConversation, Role,
};
use quietline_proto::{ErrorCode, Id};

fn to_wire(c: &ConversationRow) -> Result<Conversation> {
    Ok(Conversation {
        id: to_id(&c.id)?,
        state: if c.closed != 0 {
            ConversationState::Closed
        } else if c.assigned_member.is_some() {
            ConversationState::Assigned
        } else {
            ConversationState::Waiting
        },
        urgent: c.urgent != 0,
        language: c.language.clone(),
        assigned_to: match &c.assigned_member {
            Some(m) => Some(to_id(m)?),
            None => None,
        },
        opened_hour: c.opened_hour,
    })
}

fn ids(rows: Vec<Vec<u8>>) -> Result<Vec<Id>> {
    rows.iter().map(|r| Ok(to_id(r)?)).collect()
}

fn valid_language(l: &str) -> bool {
    (2..=16).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The member side of a conversation: the assigned member's devices, or while it waits,
/// every on-duty member's devices in the organisation. Only devices with a certificate
/// valid now: an uncertified browser is never a recipient (docs/CRYPTO.md, "Trust").
pub async fn member_side_devices(state: &AppState, c: &ConversationRow) -> Result<Vec<Id>> {
    let now = state.now();
    match &c.assigned_member {
        Some(m) => ids(state
            .store
            .certified_member_devices(m, now, devices::live_since(state))
            .await?),
        None => ids(state
            .store
            .certified_on_duty_devices(&c.org_id, now, devices::live_since(state))
            .await?),
    }
}

/// Every device a message from `sender` in `c` must be encrypted to.
pub async fn recipients_for(state: &AppState, c: &ConversationRow, sender: Id) -> Result<Vec<Id>> {
    let survivor = to_id(&c.survivor_device)?;
    let mut out = member_side_devices(state, c).await?;
    if sender != survivor {
        out.push(survivor);
    }
    out.retain(|d| *d != sender);
    out.sort();
    Ok(out)
}

/// Load a conversation the caller may see, or `not_found`.
pub async fn visible(state: &AppState, caller: Caller, id: Id) -> Result<ConversationRow> {
    let c = state
        .store
        .conversation(&id.0)
        .await?
        .ok_or_else(Error::not_found)?;
    let ok = match caller {
        Caller::Survivor { device } => c.survivor_device == device.0,
        Caller::Member {
            member, org, role, ..
        } => {
            c.org_id == org.0
                && (role == Role::Supervisor
                    || c.assigned_member.is_none()
                    || c.assigned_member.as_deref() == Some(&member.0[..]))
        }
    };
    if ok { Ok(c) } else { Err(Error::not_found()) }
}

/// `POST /v1/orgs/{code}/conversations`.
pub async fn open(
    state: &AppState,
    caller: Caller,
    code: &str,
    req: OpenConversation,
) -> Result<ConversationOpened> {
    let Caller::Survivor { device } = caller else {
        return Err(Error::forbidden());
    };
    if req.language.as_deref().is_some_and(|l| !valid_language(l)) {
        return Err(Error::bad_request());
    }
    if code.len() > 64 {
        return Err(Error::not_found());
    }
    let org = state
        .store
        .org_by_code(code)
        .await?
        .ok_or_else(Error::not_found)?;
    // A repeated open of the conversation the device already has changes nothing: it tells
    // nobody (no `queue_changed` again) and hands out bundles without one-time prekeys, so
    // calling it in a loop cannot flood advocates with events or drain their prekeys.
    let mut repeated = false;
    let conv = match state.store.conversation_of_device(&device.0).await? {
        // Opening again is idempotent for the same organisation, and reopens a conversation
        // kept after closing, with the same advocate.
        Some(c) if c.org_id == org.id && c.closed != 0 => {
            state.store.reopen(&c.id, hour(state.now())).await?;
            state
                .store
                .conversation(&c.id)
                .await?
                .ok_or_else(Error::not_found)?
        }
        Some(c) if c.org_id == org.id => {
            repeated = true;
            c
        }
        Some(_) => return Err(Error::conflict()),
        None => {
            let id = crate::random::id();
            state
                .store
                .create_conversation(
                    &id.0,
                    &org.id,
                    &device.0,
                    req.urgent,
                    req.language.as_deref(),
                    hour(state.now()),
                )
                .await?;
            state
                .store
                .conversation(&id.0)
                .await?
                .ok_or_else(|| Error::internal("conversation vanished"))?
        }
    };
    let members = member_side_devices(state, &conv).await?;
    let mut recipients = Vec::with_capacity(members.len());
    for d in &members {
        recipients.push(devices::bundle_with(state, caller, *d, !repeated).await?);
    }
    if !repeated && conv.assigned_member.is_none() && !members.is_empty() {
        emit(state, &members, EventKind::QueueChanged, None).await?;
    }
    let queue_position = if conv.assigned_member.is_some() {
        0
    } else {
        state
            .store
            .queue_position(&conv)
            .await?
            .clamp(0, i64::from(u32::MAX)) as u32
    };
    Ok(ConversationOpened {
        queue_position,
        out_of_hours_message: members.is_empty().then(|| org.out_of_hours_message.clone()),
        conversation: to_wire(&conv)?,
        recipients,
    })
}

/// `GET /v1/conversations`.
pub async fn list(state: &AppState, caller: Caller) -> Result<Vec<Conversation>> {
    let rows = match caller {
        Caller::Survivor { device } => state
            .store
            .conversation_of_device(&device.0)
            .await?
            .into_iter()
            .collect(),
        Caller::Member {
            member, org, role, ..
        } => {
            let who = match role {
                Role::Supervisor => ListFor::Supervisor { org: &org.0 },
                Role::Advocate => ListFor::Advocate {
                    org: &org.0,
                    member: &member.0,
                },
            };
            state.store.list_conversations(who).await?
        }
    };
    rows.iter().map(to_wire).collect()
}

/// `GET /v1/conversations/{id}`.
pub async fn get(state: &AppState, caller: Caller, id: Id) -> Result<Conversation> {
    to_wire(&visible(state, caller, id).await?)
}

/// `POST /v1/conversations/{id}/claim`: exactly one concurrent claim wins; the others get
/// `conflict`.
pub async fn claim(state: &AppState, caller: Caller, id: Id) -> Result<Conversation> {
    let Caller::Member { member, org, .. } = caller else {
        return Err(Error::forbidden());
    };
    // Members of the organisation learn that it was claimed (conflict); nobody else learns
    // that it exists.
    let c = state
        .store
        .conversation(&id.0)
        .await?
        .ok_or_else(Error::not_found)?;
    if c.org_id != org.0 {
        return Err(Error::not_found());
    }
    if !state
        .store
        .claim(&c.id, &member.0, hour(state.now()))
        .await?
    {
        return Err(Error::conflict());
    }
    let survivor = to_id(&c.survivor_device)?;
    emit(state, &[survivor], EventKind::RecipientsChanged, Some(id)).await?;
    get(state, caller, id).await
}

/// `POST /v1/conversations/{id}/transfer`: by the assigned member or a supervisor, to an
/// active member of the same organisation.
pub async fn transfer(state: &AppState, caller: Caller, id: Id, to: Id) -> Result<Conversation> {
    let Caller::Member {
        member, org, role, ..
    } = caller
    else {
        return Err(Error::forbidden());
    };
    let c = visible(state, caller, id).await?;
    let from = c.assigned_member.clone().ok_or_else(Error::conflict)?;
    if from != member.0 && role != Role::Supervisor {
        return Err(Error::forbidden());
    }
    let target = state.store.member(&to.0).await?;
    match target {
        Some(t) if t.org_id == org.0 && t.revoked == 0 && t.password_hash.is_some() => {}
        _ => return Err(Error::new(ErrorCode::BadRequest)),
    }
    if !state
        .store
        .transfer(&c.id, &from, &to.0, hour(state.now()))
        .await?
    {
        return Err(Error::conflict());
    }
    let survivor = to_id(&c.survivor_device)?;
    emit(state, &[survivor], EventKind::RecipientsChanged, Some(id)).await?;
    let new_devices = ids(state
        .store
        .live_member_devices(&to.0, devices::live_since(state))
        .await?)?;
    emit(state, &new_devices, EventKind::TransferredToYou, Some(id)).await?;
    // Read back without the visibility check: the caller may no longer be the assignee.
    let c = state
        .store
        .conversation(&id.0)
        .await?
        .ok_or_else(Error::conflict)?;
    to_wire(&c)
}

/// `POST /v1/conversations/{id}/close`: purge the conversation and its envelopes at once,
/// and with them the survivor's device (keys, prekeys, tokens, push registration): a
/// survivor who comes back registers afresh. With the organisation's purge-on-close off, the
/// conversation and the device stay (without messages) until idle purge.
pub async fn close(state: &AppState, caller: Caller, id: Id) -> Result<()> {
    let c = visible(state, caller, id).await?;
    if let Caller::Member { member, role, .. } = caller {
        let mine = c.assigned_member.as_deref() == Some(&member.0[..]);
        if !mine && role != Role::Supervisor {
            return Err(Error::forbidden());
        }
    }
    let survivor = to_id(&c.survivor_device)?;
    let mut notify = member_side_devices(state, &c).await?;
    if let Some(me) = caller.device() {
        notify.retain(|d| *d != me);
    }
    let org = state
        .store
        .org_by_id(&c.org_id)
        .await?
        .ok_or_else(Error::not_found)?;
    if org.purge_on_close != 0 {
        // The survivor device is gone with the conversation: nothing to tell it, and its
        // live stream ends (its access token already fails).
        if let Some(device) = state.store.purge_conversation(&c.id).await? {
            devices::close_streams(state, &[device]).await;
            state.store.after_purge().await;
        }
    } else {
        state.store.close_keeping(&c.id, hour(state.now())).await?;
        if caller.device() != Some(survivor) {
            notify.push(survivor);
        }
    }
    // The purged id is not repeated in the event (docs/THREAT_MODEL.md, invariant 3).
    emit(state, &notify, EventKind::ConversationClosed, None).await
}

/// `GET /v1/conversations/{id}/recipients`.
pub async fn recipients(state: &AppState, caller: Caller, id: Id) -> Result<Vec<Id>> {
    let c = visible(state, caller, id).await?;
    let me = caller.device().ok_or_else(Error::forbidden)?;
    may_send(&c, caller)?;
    recipients_for(state, &c, me).await
}

/// Only the survivor and the assigned member take part in a conversation.
pub fn may_send(c: &ConversationRow, caller: Caller) -> Result<()> {
    match caller {
        Caller::Survivor { device } if c.survivor_device == device.0 => Ok(()),
        Caller::Member { member, .. } if c.assigned_member.as_deref() == Some(&member.0[..]) => {
            Ok(())
        }
        _ => Err(Error::forbidden()),
    }
}
