//! `GET /v1/stream`: the live WebSocket delivery of envelopes and events, opened with the
//! access token in `Authorization` or, from a browser, with a single-use ticket from
//! `POST /v1/stream/ticket` in the query (see [`crate::service::stream_tickets`]).
//!
//! At-least-once (DESIGN.md §3, invariant 5): the stream sends what the database holds for
//! the device and deletes nothing until the client acknowledges it; after a reconnect every
//! unacknowledged envelope is sent again, and clients drop duplicates by id. Wake-ups from
//! the hub only say "look again", so none can be lost in a race.

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Auth, BearerToken};
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
use std::time::Duration;

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
    stream_tickets::issue(&state, caller, verified.subject, verified.epoch)
        .await
        .map(AppJson)
}

#[derive(serde::Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

/// Who opens the stream: the bearer token when an `Authorization` header is present,
/// otherwise the `ticket` query parameter. Neither: `unauthorized`.
pub struct StreamCaller(Caller);

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let Auth(caller) = Auth::from_request_parts(parts, state).await?;
            return Ok(StreamCaller(caller));
        }
        let Query(q) = Query::<TicketQuery>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::unauthorized())?;
        let ticket = q.ticket.ok_or_else(Error::unauthorized)?;
        stream_tickets::redeem(state, &ticket)
            .await
            .map(StreamCaller)
    }
}

/// `GET /v1/stream`
///
/// Upgrade to a WebSocket that pushes the device's envelopes and events as JSON frames as
/// soon as they arrive; the client acknowledges with `{"type":"ack","ids":[...]}`.
/// Authorised by the bearer token, or by `?ticket=` from `POST /v1/stream/ticket`.
#[utoipa::path(get, path = "/v1/stream", tag = "messages",
    params(("ticket" = Option<String>, Query, description = "single-use ticket from `POST /v1/stream/ticket`, for clients that cannot send `Authorization`")),
    responses((status = 101, description = "switching to WebSocket"), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn stream(
    State(state): State<AppState>,
    StreamCaller(caller): StreamCaller,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    Ok(ws
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("quietline_streams_live").increment(1.0);
            if let Err(e) = run(state, caller, device, socket).await {
                tracing::debug!(error = %e, "stream ended");
            }
            metrics::gauge!("quietline_streams_live").decrement(1.0);
        }))
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<()> {
    let text = serde_json::to_string(frame).map_err(Error::internal)?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| Error::internal(format!("send: {e}")))
}

async fn run(state: AppState, caller: Caller, device: Id, mut socket: WebSocket) -> Result<()> {
    let listener = state.hub.subscribe(device);
    let mut in_flight_envelopes: HashSet<Id> = HashSet::new();
    let mut in_flight_events: HashSet<Id> = HashSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        if listener.is_closed() {
            let _ = socket.send(Message::Close(None)).await;
            return Ok(());
        }
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
            _ = listener.woken() => {}
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return Ok(());
                }
            }
            msg = socket.recv() => match msg {
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
            },
        }
    }
}
