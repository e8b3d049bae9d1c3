//! `GET /v1/stream`: the live WebSocket delivery of envelopes and events, opened with the
//! access token in `Authorization` or, from a browser, with a single-use ticket from
//! `POST /v1/stream/ticket` in the query (see [`crate::service::stream_tickets`]).
//!
//! At-least-once (docs/THREAT_MODEL.md, invariant 5): the stream sends what the database holds for
//! the device and deletes nothing until the client acknowledges it; after a reconnect every
//! unacknowledged envelope is sent again, and clients drop duplicates by id. Wake-ups from
//! the hub only say "look again", so none can be lost in a race.
//!
//! A stream lives no longer than the right to open it: its access token is checked again
//! against the database on every wake-up and every `stream_recheck_secs`, so a revocation,
//! a logout, a refresh-token reuse or a quick exit ends it even when it was made by another
//! process (the admin command) or replica; and it ends when the access token expires. A
//! device holds at most `streams_per_device` streams per replica, and a client that sends
//! frames faster than `stream_frames_per_second` is disconnected.

use crate::app::AppState;
use crate::auth::jwt::Subject;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Auth, BearerToken};
use crate::hub::Listener;
use crate::limits::Bucket;
use crate::service::auth::caller_for;
use crate::service::messages::{ack, pending_envelopes, pending_events};
use crate::service::{Caller, stream_tickets};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{header, request::Parts};
use axum::response::Response;
use axum::routing::{get, post};
use quietline_proto::wire::{Acked, ClientFrame, ServerFrame, StreamTicket};
use quietline_proto::{ErrorBody, ErrorCode, Id};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Most envelopes and events sent but not yet acknowledged on one stream.
const MAX_IN_FLIGHT: usize = 1000;
const PING_EVERY: Duration = Duration::from_secs(25);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stream", get(stream))
        .route("/v1/stream/ticket", post(ticket))
}

/// `POST /v1/stream/ticket`
///
/// A single-use ticket, valid for 30 seconds, that opens `GET /v1/stream?ticket=...` once
/// for the caller's device, in place of the `Authorization` header a browser cannot set on
/// a WebSocket. It is worth no more than the access token it was traded for.
#[utoipa::path(post, path = "/v1/stream/ticket", tag = "messages",
    responses((status = 200, body = StreamTicket), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ticket(
    State(state): State<AppState>,
    Auth(caller): Auth,
    BearerToken(token): BearerToken,
) -> Result<AppJson<StreamTicket>> {
    let verified = state
        .keys
        .verify(&token, state.now())
        .ok_or_else(Error::unauthorized)?;
    stream_tickets::issue(
        &state,
        caller,
        verified.subject,
        verified.epoch,
        verified.expires_at,
    )
    .await
    .map(AppJson)
}

#[derive(serde::Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

/// Who opens the stream, and what the stream checks again while it lives: the subject and
/// token epoch of the credential, and when the access token expires.
pub struct Access {
    caller: Caller,
    subject: Subject,
    epoch: i64,
    expires_at: i64,
}

/// Who opens the stream: the bearer token when an `Authorization` header is present,
/// otherwise the `ticket` query parameter. Neither: `unauthorized`.
pub struct StreamCaller(Access);

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let BearerToken(token) = BearerToken::from_request_parts(parts, state).await?;
            let token = Zeroizing::new(token);
            let verified = state
                .keys
                .verify(&token, state.now())
                .ok_or_else(Error::unauthorized)?;
            let caller = caller_for(state, verified.subject, verified.epoch).await?;
            return Ok(StreamCaller(Access {
                caller,
                subject: verified.subject,
                epoch: verified.epoch,
                expires_at: verified.expires_at,
            }));
        }
        let Query(q) = Query::<TicketQuery>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::unauthorized())?;
        let ticket = q.ticket.ok_or_else(Error::unauthorized)?;
        let r = stream_tickets::redeem(state, &ticket).await?;
        Ok(StreamCaller(Access {
            caller: r.caller,
            subject: r.subject,
            epoch: r.epoch,
            expires_at: r.access_expires_at,
        }))
    }
}

/// `GET /v1/stream`
///
/// Upgrade to a WebSocket that pushes the device's envelopes and events as JSON frames as
/// soon as they arrive; the client acknowledges with `{"type":"ack","ids":[...]}`.
/// Authorised by the bearer token, or by `?ticket=` from `POST /v1/stream/ticket`. The
/// stream ends when the caller's access is revoked or its access token expires; a device
/// already holding `streams_per_device` streams is refused with `rate_limited`.
#[utoipa::path(get, path = "/v1/stream", tag = "messages",
    params(("ticket" = Option<String>, Query, description = "single-use ticket from `POST /v1/stream/ticket`, for clients that cannot send `Authorization`")),
    responses((status = 101, description = "switching to WebSocket"), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn stream(
    State(state): State<AppState>,
    StreamCaller(access): StreamCaller,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let device = access.caller.device().ok_or_else(Error::forbidden)?;
    let listener = state
        .hub
        .try_subscribe(device, state.config.streams_per_device as usize)
        .ok_or_else(|| Error::new(ErrorCode::RateLimited))?;
    let max = state.config.stream_max_message_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("quietline_streams_live").increment(1.0);
            let live = Live {
                access,
                device,
                listener,
            };
            if let Err(e) = run(state, live, socket).await {
                tracing::debug!(error = %e, "stream ended");
            }
            metrics::gauge!("quietline_streams_live").decrement(1.0);
        }))
}

/// What a stream knows about its caller.
struct Live {
    access: Access,
    device: Id,
    listener: Arc<Listener>,
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<()> {
    let text = serde_json::to_string(frame).map_err(Error::internal)?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| Error::internal(format!("send: {e}")))
}

/// Whether the caller may still hold the stream: told to close (wipe, hide, revocation on
/// this replica or, with PostgreSQL, another), or the access token no longer authenticates
/// (revoked, epoch bumped, device gone, expired).
async fn still_allowed(state: &AppState, live: &Live) -> bool {
    let a = &live.access;
    if live.listener.is_closed() || state.now() >= a.expires_at {
        return false;
    }
    matches!(caller_for(state, a.subject, a.epoch).await, Ok(c) if c == a.caller)
}

async fn run(state: AppState, live: Live, mut socket: WebSocket) -> Result<()> {
    let device = live.device;
    let caller = live.access.caller;
    let mut in_flight_envelopes: HashSet<Id> = HashSet::new();
    let mut in_flight_events: HashSet<Id> = HashSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(Duration::from_secs(state.config.stream_recheck_secs));
    recheck.tick().await;
    // The token's expiry in real time from now; with an injected clock the re-check catches it.
    let left = (live.access.expires_at - state.now()).max(0) as u64;
    let expiry = tokio::time::sleep(Duration::from_secs(left));
    tokio::pin!(expiry);
    let frame_rate = f64::from(state.config.stream_frames_per_second);
    let frame_burst = f64::from(state.config.stream_frames_burst);
    let mut frames = Bucket::full(frame_burst, crate::service::real_now());
    let mut check = false;
    loop {
        if live.listener.is_closed() || (check && !still_allowed(&state, &live).await) {
            let _ = socket.send(Message::Close(None)).await;
            return Ok(());
        }
        check = false;
        // Send everything pending that is not already in flight. The scan starts at the
        // beginning each time: with PostgreSQL, rows can commit out of sequence order.
        if in_flight_envelopes.len() + in_flight_events.len() < MAX_IN_FLIGHT {
            let (envelopes, _) = pending_envelopes(&state, device, 0).await?;
            for e in envelopes {
                if in_flight_envelopes.insert(e.id) {
                    send(&mut socket, &ServerFrame::Envelope(e)).await?;
                }
            }
            let (events, _) = pending_events(&state, device, 0).await?;
            for e in events {
                if in_flight_events.insert(e.id) {
                    send(&mut socket, &ServerFrame::Event(e)).await?;
                }
            }
        }
        tokio::select! {
            _ = live.listener.woken() => check = true,
            _ = recheck.tick() => check = true,
            _ = &mut expiry => {
                check = true;
                let later = tokio::time::Instant::now() + Duration::from_secs(1);
                expiry.as_mut().reset(later);
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return Ok(());
                }
            }
            msg = socket.recv() => {
                let counted = matches!(msg, Some(Ok(Message::Text(_) | Message::Binary(_))));
                if counted && !frames.take(crate::service::real_now(), frame_rate, frame_burst) {
                    let limited = ServerFrame::Error(ErrorBody::new(ErrorCode::RateLimited).error);
                    let _ = send(&mut socket, &limited).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return Ok(());
                }
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<ClientFrame>(text.as_str()) {
                            Ok(ClientFrame::Ack { ids }) => match ack(&state, caller, &ids).await {
                                Ok(deleted) => {
                                    for id in &ids {
                                        in_flight_envelopes.remove(id);
                                        in_flight_events.remove(id);
                                    }
                                    send(&mut socket, &ServerFrame::Acked(Acked { deleted })).await?;
                                }
                                Err(e) => send(&mut socket, &ServerFrame::Error(ErrorBody::new(e.code).error)).await?,
                            },
                            Err(_) => send(&mut socket, &ServerFrame::Error(ErrorBody::new(ErrorCode::BadRequest).error)).await?,
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        send(&mut socket, &ServerFrame::Error(ErrorBody::new(ErrorCode::BadRequest).error)).await?;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}
