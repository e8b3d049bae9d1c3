//! Sending, fetching and acknowledging envelopes over HTTP.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth, PathId};
use crate::service::messages;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use quietline_proto::ErrorBody;
use quietline_proto::wire::{Accepted, Ack, Acked, Inbox, SendMessage};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conversations/{id}/messages", post(send))
        .route("/v1/messages", get(inbox))
        .route("/v1/messages/ack", post(ack))
}

/// `POST /v1/conversations/{id}/messages`
///
/// One opaque envelope per current recipient device. Answers 202 only once every envelope
/// is durable; a resend with the same message id is accepted without storing twice. A list
/// that does not match the current devices gets `stale_recipients` with the right list.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "messages", params(("id" = String, Path)),
    request_body = SendMessage,
    responses((status = 202, body = Accepted), (status = 409, body = ErrorBody), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody)), security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    AppJson(req): AppJson<SendMessage>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let out = messages::send(&state, caller, id, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(out)))
}

/// `GET /v1/messages`
///
/// The oldest envelopes and events waiting for the caller's device (HTTP fallback for the
/// stream). They stay until acknowledged.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", responses((status = 200, body = Inbox)), security(("bearer" = [])))]
pub async fn inbox(State(state): State<AppState>, Auth(caller): Auth) -> Result<AppJson<Inbox>> {
    messages::inbox(&state, caller).await.map(AppJson)
}

/// `POST /v1/messages/ack`
///
/// Delete delivered envelopes and events of the caller's device by id.
#[utoipa::path(post, path = "/v1/messages/ack", tag = "messages", request_body = Ack,
    responses((status = 200, body = Acked)), security(("bearer" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<Ack>,
) -> Result<AppJson<Acked>> {
    Ok(AppJson(Acked {
        deleted: messages::ack(&state, caller, &req.ids).await?,
    }))
}
