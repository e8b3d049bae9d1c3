//! `GET /v1/stream`: the live WebSocket delivery of envelopes and events.
//!
//! At-least-once (DESIGN.md §3, invariant 5): the stream sends what the database holds for
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
use crate::error::{Error, Result};
use crate::http::extract::{Auth, BearerToken};
use crate::hub::Listener;
use crate::limits::Bucket;
use crate::service::Caller;
use crate::service::auth::authenticate;
use crate::service::messages::{ack, pending_envelopes, pending_events};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use quietline_proto::wire::{Acked, ClientFrame, ServerFrame};
use quietline_proto::{ErrorBody, ErrorCode, Id};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Most envelopes and events sent but not yet acknowledged on one stream.
const MAX_IN_FLIGHT: usize = 1000;
const PING_EVERY: Duration = Duration::from_secs(25);

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/stream", get(stream))
}

/// `GET /v1/stream`
///
/// Upgrade to a WebSocket that pushes the device's envelopes and events as JSON frames as
/// soon as they arrive; the client acknowledges with `{"type":"ack","ids":[...]}`. The
/// stream ends when the caller's access is revoked or its access token expires; a device
/// already holding `streams_per_device` streams is refused with `rate_limited`.
#[utoipa::path(get, path = "/v1/stream", tag = "messages",
    responses((status = 101, description = "switching to WebSocket"), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Auth(caller): Auth,
    BearerToken(token): BearerToken,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let token = Zeroizing::new(token);
    let device = caller.device().ok_or_else(Error::forbidden)?;
    let expires_at = state
        .keys
        .verify(&token, state.now())
        .ok_or_else(Error::unauthorized)?
        .expires_at;
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
                caller,
                device,
                token,
                expires_at,
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
    caller: Caller,
    device: Id,
    token: Zeroizing<String>,
    /// When the access token expires (server clock, seconds).
    expires_at: i64,
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
    if live.listener.is_closed() || state.now() >= live.expires_at {
        return false;
    }
    matches!(authenticate(state, &live.token).await, Ok(c) if c == live.caller)
}

async fn run(state: AppState, live: Live, mut socket: WebSocket) -> Result<()> {
    let device = live.device;
    let caller = live.caller;
    let mut in_flight_envelopes: HashSet<Id> = HashSet::new();
    let mut in_flight_events: HashSet<Id> = HashSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(Duration::from_secs(state.config.stream_recheck_secs));
    recheck.tick().await;
    // The token's expiry in real time from now; with an injected clock the re-check catches it.
    let left = (live.expires_at - state.now()).max(0) as u64;
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
