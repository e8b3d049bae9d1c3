//! Envelopes: accept (durably, once per message id and recipient), list, acknowledge.
//!
//! The server checks only what it can see from outside: the sender takes part in the
//! conversation, the envelope list names exactly the current recipient devices, every size
//! is a padding bucket, quotas. It never looks inside a ciphertext (docs/THREAT_MODEL.md, invariant 1).

use crate::app::AppState;
use crate::clock::hour;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::service::conversations::{may_send, recipients_for, visible};
use crate::service::events::{parse_kind, wake};
use crate::store::to_id;
use quietline_proto::wire::{Accepted, Envelope, Event, Inbox, SendMessage};
use quietline_proto::{ErrorCode, Id, b64::Bytes, padding};

/// Most ids in one acknowledgement, and most items in one inbox page.
pub const MAX_ACK: usize = 1000;
pub const PAGE: i64 = 100;

/// `POST /v1/conversations/{id}/messages`. Returns only after the envelopes are committed.
pub async fn send(
    state: &AppState,
    caller: Caller,
    conversation: Id,
    req: SendMessage,
) -> Result<Accepted> {
    let sender = caller.device().ok_or_else(Error::forbidden)?;
    if req.envelopes.len() > state.config.max_envelopes_per_message as usize {
        return Err(Error::bad_request());
    }
    if req
        .envelopes
        .iter()
        .any(|e| !padding::is_bucket(e.ciphertext.len()))
    {
        return Err(ErrorCode::BadEnvelopeSize.into());
    }
    let c = visible(state, caller, conversation).await?;
    may_send(&c, caller)?;
    if c.closed != 0 {
        return Err(Error::conflict());
    }
    let expected = recipients_for(state, &c, sender).await?;
    let mut given: Vec<Id> = req.envelopes.iter().map(|e| e.device_id).collect();
    given.sort();
    if given.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::bad_request());
    }
    if given != expected {
        return Err(Error::stale(expected));
    }
    if expected.is_empty() {
        // Nobody to deliver to yet (out of hours): the client waits for `advocate_available`.
        return Err(Error::conflict());
    }
    let now = state.now();
    // The organisation's retention, never above the operator's cap.
    let org = state
        .store
        .org_by_id(&c.org_id)
        .await?
        .ok_or_else(Error::not_found)?;
    let ttl = org
        .envelope_ttl_secs
        .clamp(60, state.config.max_envelope_ttl_secs as i64);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = req
        .envelopes
        .into_iter()
        .map(|e| (e.device_id.0.to_vec(), e.ciphertext.into_vec()))
        .collect();
    state
        .store
        .insert_message(
            &c.id,
            &req.message_id.0,
            &pairs,
            crate::clock::expiry(now, ttl.max(0) as u64),
            i64::from(state.config.device_quota),
            // While the conversation waits in the queue its envelopes go to every on-duty
            // advocate device; a small cap per (conversation, recipient) keeps one waiting
            // survivor from filling those devices' whole quota.
            c.assigned_member
                .is_none()
                .then_some(i64::from(state.config.waiting_quota_per_recipient)),
        )
        .await?;
    state.store.touch_conversation(&c.id, hour(now)).await?;
    wake(state, &expected).await;
    metrics::counter!("quietline_envelopes_accepted_total").increment(pairs.len() as u64);
    Ok(Accepted {
        message_id: req.message_id,
        accepted: pairs.len() as u32,
    })
}

/// Envelopes waiting for `device` after `after_seq`, with the last sequence number seen.
pub async fn pending_envelopes(
    state: &AppState,
    device: Id,
    after_seq: i64,
) -> Result<(Vec<Envelope>, i64)> {
    let rows = state
        .store
        .pending_envelopes(&device.0, after_seq, state.now(), PAGE)
        .await?;
    let last = rows.last().map_or(after_seq, |r| r.seq);
    let envelopes = rows
        .into_iter()
        .map(|r| {
            Ok(Envelope {
                id: to_id(&r.id)?,
                conversation_id: to_id(&r.conversation_id)?,
                ciphertext: Bytes(r.ciphertext),
                expires_at: r.expires_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((envelopes, last))
}

/// Events waiting for `device` after `after_seq`, with the last sequence number seen.
pub async fn pending_events(
    state: &AppState,
    device: Id,
    after_seq: i64,
) -> Result<(Vec<Event>, i64)> {
    let rows = state
        .store
        .pending_events(&device.0, after_seq, state.now(), PAGE)
        .await?;
    let last = rows.last().map_or(after_seq, |r| r.seq);
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(kind) = parse_kind(&r.kind) else {
            continue;
        };
        events.push(Event {
            id: to_id(&r.id)?,
            kind,
            conversation_id: match &r.conversation_id {
                Some(c) => Some(to_id(c)?),
                None => None,
            },
        });
    }
    Ok((events, last))
}

/// `GET /v1/messages`: the oldest pending envelopes and events of the caller's device.
pub async fn inbox(state: &AppState, caller: Caller) -> Result<Inbox> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    let (envelopes, _) = pending_envelopes(state, device, 0).await?;
    let (events, _) = pending_events(state, device, 0).await?;
    Ok(Inbox { envelopes, events })
}

/// `POST /v1/messages/ack`: delete delivered envelopes and events; returns how many.
pub async fn ack(state: &AppState, caller: Caller, ids: &[Id]) -> Result<u32> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    if ids.len() > MAX_ACK {
        return Err(Error::bad_request());
    }
    let ids: Vec<Vec<u8>> = ids.iter().map(|i| i.0.to_vec()).collect();
    let n = state.store.ack(&device.0, &ids).await?;
    metrics::counter!("quietline_envelopes_acked_total").increment(n);
    Ok(n.min(u64::from(u32::MAX)) as u32)
}
