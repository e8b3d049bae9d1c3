//! `POST /v1/stream/ticket`: trade an access token for a ticket that opens the WebSocket
//! stream once.
//!
//! Browsers cannot set `Authorization` on a WebSocket upgrade, and an access token in a URL
//! would end up in proxy logs and browser history for its whole lifetime. A ticket is the
//! smallest thing that can travel in the URL instead: 256 random bits, honoured once, for
//! [`TICKET_TTL_SECS`], stored only as a SHA-256 hash, and worth no more than the token it
//! was traded for (same subject, same token epoch, so a wipe, hide or revocation in between
//! kills it). The table lives in the database so any replica can honour a ticket another
//! replica issued. The server's access log records route templates only, so the query
//! string that carries a ticket is never written anywhere.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::service::auth::caller_for;
use crate::store::{StreamTicketRow, to_id};
use quietline_proto::wire::StreamTicket;

/// How long a ticket is honoured: long enough to open a WebSocket, short enough that a
/// ticket seen later is worthless even if it was never used.
pub const TICKET_TTL_SECS: i64 = 30;

/// Longest ticket worth hashing; a real one is 43 characters.
const MAX_TICKET_LEN: usize = 128;

/// `POST /v1/stream/ticket`: `verified` is what the caller's access token says (subject and
/// epoch); `caller` is the same token after the database check. Only a caller with a device
/// has a stream, so a member token without one is `forbidden`, as on `GET /v1/stream`.
pub async fn issue(
    state: &AppState,
    caller: Caller,
    subject: Subject,
    epoch: i64,
    access_expires_at: i64,
) -> Result<StreamTicket> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    let member = match subject {
        Subject::Member { member, .. } => Some(member.0.to_vec()),
        Subject::Survivor { .. } => None,
    };
    let ticket = crate::random::token();
    state
        .store
        .insert_stream_ticket(&StreamTicketRow {
            hash: crate::random::token_hash(&ticket),
            device_id: device.0.to_vec(),
            member_id: member,
            token_epoch: epoch,
            access_expires_at,
            expires_at: state.now() + TICKET_TTL_SECS,
        })
        .await?;
    Ok(StreamTicket {
        ticket,
        expires_in: TICKET_TTL_SECS as u64,
    })
}

/// What a redeemed ticket stands for: the caller, and what a stream re-checks it against.
pub struct Redeemed {
    pub caller: Caller,
    pub subject: Subject,
    pub epoch: i64,
    /// When the access token the ticket was traded for expires.
    pub access_expires_at: i64,
}

/// Use a ticket: it is deleted whatever happens next, and honoured only if it has not
/// expired and its subject still exists with the same token epoch. Every refusal is the
/// same `unauthorized`.
pub async fn redeem(state: &AppState, ticket: &str) -> Result<Redeemed> {
    if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
        return Err(Error::unauthorized());
    }
    // Looked up by the hash of a 256-bit random value: how long the lookup takes says
    // nothing useful about any stored ticket.
    let row = state
        .store
        .take_stream_ticket(&crate::random::token_hash(ticket))
        .await?
        .ok_or_else(Error::unauthorized)?;
    if row.expires_at <= state.now() {
        return Err(Error::unauthorized());
    }
    let device = to_id(&row.device_id)?;
    let subject = match &row.member_id {
        Some(member) => Subject::Member {
            member: to_id(member)?,
            device: Some(device),
        },
        None => Subject::Survivor { device },
    };
    let caller = caller_for(state, subject, row.token_epoch).await?;
    Ok(Redeemed {
        caller,
        subject,
        epoch: row.token_epoch,
        access_expires_at: row.access_expires_at,
    })
}
