//! Quick exit (docs/SAFETY.md) and coming back after `hide`.
//!
//! Invariant 4: a wipe removes every row tied to the survivor device in the same request,
//! and its tokens stop working at once, even an access token that has already expired.
//! Authorisation is the device's exit token, not an access token, so exit works when the
//! access token has expired or been revoked.
//!
//! The threat (docs/THREAT_MODEL.md) is an abuser who holds the phone, or watches the network, and wants to
//! learn whether the survivor left, how, or whether a token is still good. So `POST /v1/exit`
//! gives every caller the same answer: status 200, the bytes `{"status":"ok"}`, and the same
//! work on the way there:
//!
//! * The token is hashed and looked up whatever it is (even when the header is missing, a
//!   random one is), and the body is parsed before the lookup whatever it holds.
//! * A malformed body, an unknown, wiped or missing token all take the same path as a real
//!   exit, with a fresh random *decoy* device id in place of the real one. A malformed body
//!   with a valid token does nothing and still answers 200 rather than 400: a 400 there, and
//!   a 200 for an unknown token, would tell whoever holds an old exit token whether the
//!   survivor has wiped. (The typed client cannot send a malformed body.)
//! * Every call then makes the same reads (the device's conversation, one device-list query)
//!   and one write transaction with the same statement list ([`crate::store::Store::quick_exit`]), whose
//!   commit is always a durable write. Modes differ only in which statements get the real id
//!   and which the decoy.
//! * Every call publishes one batch of replica wake-ups and closes the streams of one id.
//! * Exits queue for one of a fixed number of slots (`exit_concurrency`) before any of
//!   this starts, and the floor is measured from the moment a slot is taken; a flood makes
//!   everyone wait alike, and only when the queue itself is full (`exit_queue`) is an exit
//!   answered `rate_limited`, before its token is looked at.
//! * What remains is data-dependent: deleting many pending envelopes and prekeys writes
//!   more pages than deleting none, and each advocate device told costs one more insert.
//!   Measured without a floor that was still 0.3–1 ms between a wipe and an unknown token,
//!   so the answer is sent no sooner than [`ANSWER_FLOOR`] after the request began. The
//!   transaction has committed by then (the wipe is already done and every token already
//!   dead); only the answer waits. Work that takes longer than the floor (a wipe of
//!   thousands of envelopes, an overloaded database) shows through; the integration suite
//!   prints the means per mode.
//!
//! Nothing here logs: no token, device id or conversation id reaches a log line.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::error::{Error, Result};
use crate::service::events::kind_name;
use crate::store::{ConversationRow, ExitTargets, NewEvent};
use quietline_proto::Id;
use quietline_proto::wire::{EventKind, ExitMode, ExitRequest, Exited, ReturnRequest, Returned};
use std::time::Duration;
use tokio::time::Instant;

/// No answer to `POST /v1/exit` leaves before this, whatever the mode or token. Above the
/// time a typical exit takes (a few milliseconds, SQLite or PostgreSQL), and within the 10 ms
/// wipe budget of docs/BENCHMARKS.md.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(6);

/// The one answer of `POST /v1/exit`.
pub fn exited() -> Exited {
    Exited {
        status: "ok".into(),
    }
}

/// `POST /v1/exit` with the raw bearer token (if any) and the raw body.
pub async fn exit(state: &AppState, token: Option<&str>, body: &[u8]) -> Result<Exited> {
    // Queue for one of `exit_concurrency` slots before anything else, so a flood of exits
    // cannot pile up durable commits. Whether a caller waits, or is refused when the queue
    // is full, depends only on the load, never on the token or the mode.
    let Some(_slot) = state.limits.exit.acquire().await else {
        metrics::counter!("quietline_rate_limited_total", "route" => "exit").increment(1);
        return Err(Error::new(quietline_proto::ErrorCode::RateLimited));
    };
    let started = Instant::now();
    let mode = serde_json::from_slice::<ExitRequest>(body)
        .ok()
        .map(|r| r.mode);
    let decoy_token;
    let token = match token {
        Some(t) => t,
        None => {
            decoy_token = crate::random::token();
            &decoy_token
        }
    };
    let found = state
        .store
        .device_by_exit_token(&crate::random::token_hash(token))
        .await?;
    // `None`: nothing to do, but do the same work on a decoy id.
    let act = match (found, mode) {
        (Some(device), Some(mode)) => Some((device, mode)),
        _ => None,
    };
    let device = act.map_or_else(crate::random::id, |(d, _)| d);
    let conv = state.store.conversation_of_device(&device.0).await?;
    let told = advocates_to_tell(state, conv.as_ref(), act.map(|(_, m)| m)).await?;

    let decoy = crate::random::id();
    let (hide, wipe, kind, named) = match act.map(|(_, m)| m) {
        Some(ExitMode::Hide) => (device, decoy, EventKind::SurvivorLeft, true),
        Some(ExitMode::Wipe) => (decoy, device, EventKind::EndedBySurvivor, false),
        Some(ExitMode::Duress) => (decoy, device, EventKind::PossibleDuress, false),
        None => (decoy, decoy, EventKind::SurvivorLeft, false),
    };
    // After a wipe the conversation id is gone from every table; an event must not bring
    // it back (invariant 3). After `hide` the conversation lives on, and the event names it.
    let conversation_id = match (&conv, named) {
        (Some(c), true) => Some(c.id.clone()),
        _ => None,
    };
    let events: Vec<NewEvent> = told
        .iter()
        .map(|d| NewEvent {
            recipient: d.0.to_vec(),
            id: crate::random::id().0.to_vec(),
            kind: kind_name(kind),
            conversation_id: conversation_id.clone(),
            coalesce: false,
        })
        .collect();
    let scratch = crate::random::bytes::<32>();
    state
        .store
        .quick_exit(
            ExitTargets {
                hide: &hide.0,
                wipe: &wipe.0,
                scratch: &scratch,
            },
            &events,
            crate::clock::expiry(state.now(), state.config.event_ttl_secs),
            i64::from(state.config.max_events_per_device),
        )
        .await?;

    // Every call, whatever it did: the log's old page images leave the log file.
    state.store.after_purge().await;
    // The device's streams close now; its access token already fails (epoch or row gone).
    state.hub.close(&device);
    for d in &told {
        state.hub.wake(d);
    }
    let mut payloads = vec![format!("c:{device}")];
    payloads.extend(told.iter().map(|d| format!("w:{d}")));
    if let Err(e) = state.store.notify_replicas(&payloads).await {
        tracing::warn!(error = %e, "cannot notify other replicas");
    }
    let label = match act.map(|(_, m)| m) {
        Some(ExitMode::Hide) => "hide",
        Some(ExitMode::Wipe) => "wipe",
        Some(ExitMode::Duress) => "duress",
        None => "none",
    };
    metrics::counter!("quietline_exits_total", "mode" => label).increment(1);
    tokio::time::sleep_until(started + ANSWER_FLOOR).await;
    Ok(exited())
}

/// Who hears of an exit: after `hide` (and on return) only the assigned advocate's devices,
/// since a waiting conversation has nobody to stop writing; after a wipe the member side
/// (the assigned advocate, or while waiting every on-duty device, whose queue shrank).
///
/// Always exactly one query, so an exit that tells nobody reads as much as one that does.
async fn advocates_to_tell(
    state: &AppState,
    conv: Option<&ConversationRow>,
    mode: Option<ExitMode>,
) -> Result<Vec<Id>> {
    let rows = match (conv, mode) {
        (
            Some(ConversationRow {
                assigned_member: Some(m),
                ..
            }),
            Some(_),
        ) => {
            state
                .store
                .live_member_devices(m, crate::service::devices::live_since(state))
                .await?
        }
        (Some(c), Some(ExitMode::Wipe | ExitMode::Duress)) => {
            state
                .store
                .on_duty_devices(&c.org_id, crate::service::devices::live_since(state))
                .await?
        }
        _ => {
            state
                .store
                .live_member_devices(
                    &crate::random::id().0,
                    crate::service::devices::live_since(state),
                )
                .await?
        }
    };
    rows.iter().map(|r| Ok(crate::store::to_id(r)?)).collect()
}

/// `POST /v1/exit/return`: a hidden device comes back. It needs its exit token, a fresh
/// proof-of-work, and a signature by the Ed25519 signing key it registered over the
/// proof-of-work's (single-use, server-issued) challenge, so a copied exit token alone is not
/// a login. On success the device gets a new token pair (the epoch was bumped by `hide`, so
/// every older token stays dead) and a new exit token; the old one stops working.
///
/// The proof-of-work is checked first (`invalid_proof_of_work`), so a caller who cannot
/// solve one learns nothing about the token. After that every failure is the same
/// `unauthorized`, whether the device wiped, never existed, is not hidden or the signature
/// is wrong; and the signature is verified in every case (against a stand-in key when there
/// is no device), so the failures cost the same work.
pub async fn come_back(state: &AppState, token: &str, req: ReturnRequest) -> Result<Returned> {
    crate::service::limit_anonymous(state, crate::limits::AnonRoute::ExitReturn)?;
    crate::service::devices::spend_proof_of_work(state, &req.pow).await?;
    let old_hash = crate::random::token_hash(token);
    let found = state.store.exit_device_keys(&old_hash).await?;
    let key = found
        .as_ref()
        .map_or(&STAND_IN_KEY[..], |(_, key, _)| key.as_slice());
    let message = ReturnRequest::signed_message(req.pow.challenge.as_slice());
    let signed = signature_valid(key, &message, req.signature.as_slice());
    let device = match found {
        Some((device, _, true)) if signed => device,
        _ => return Err(Error::unauthorized()),
    };
    let exit_token = crate::random::token();
    let epoch = state
        .store
        .return_device(
            &device.0,
            &old_hash,
            &crate::random::token_hash(&exit_token),
        )
        .await?
        .ok_or_else(Error::unauthorized)?;
    let tokens =
        crate::service::auth::issue_tokens(state, Subject::Survivor { device }, epoch, None)
            .await?;
    let conv = state.store.conversation_of_device(&device.0).await?;
    let told = advocates_to_tell(state, conv.as_ref(), Some(ExitMode::Hide)).await?;
    let conversation = match &conv {
        Some(c) => Some(crate::store::to_id(&c.id)?),
        None => None,
    };
    crate::service::events::emit(state, &told, EventKind::SurvivorReturned, conversation).await?;
    metrics::counter!("quietline_exit_returns_total").increment(1);
    Ok(Returned { tokens, exit_token })
}

/// A valid Ed25519 public key (the base point) that no device holds a secret for in
/// practice; verified against when the exit token matches no device, so that path does the
/// same work as a wrong signature.
const STAND_IN_KEY: [u8; 32] = [
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
];

/// Strict Ed25519 verification; any malformed key or signature is simply "not valid".
fn signature_valid(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = <[u8; 32]>::try_from(key) else {
        return false;
    };
    let Ok(signature) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .is_ok()
}
