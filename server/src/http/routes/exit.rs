//! Quick exit: leave now (`hide`, `wipe`, `duress`) and come back after `hide`.

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, BearerToken};
use crate::service::exit;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use quietline_proto::ErrorBody;
use quietline_proto::wire::{ExitRequest, Exited, ReturnRequest, Returned};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/exit", post(exit_now))
        .route("/v1/exit/return", post(come_back))
}

/// `POST /v1/exit`
///
/// Quick exit with the device's exit token as bearer (not an access token, so it works after
/// the access token expired or was revoked). `hide` revokes the device's tokens, holds its
/// deliveries and tells the assigned advocate; `wipe` deletes everything tied to the device in
/// this request and tells the advocate the survivor ended the conversation; `duress` wipes and
/// alerts the advocate to possible duress. Every mode, an unknown, used or missing token and
/// a malformed body get the same status, the same body bytes and the same work, so the
/// answer tells nobody what happened (see `service::exit`). The body is read as raw bytes
/// for that reason: a JSON rejection would answer differently. Exits queue when many arrive
/// at once; only when the queue is full is one answered `rate_limited`, before its token is
/// looked at.
#[utoipa::path(post, path = "/v1/exit", tag = "exit", request_body = ExitRequest,
    responses((status = 200, body = Exited), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn exit_now(
    State(state): State<AppState>,
    token: std::result::Result<BearerToken, Error>,
    body: Bytes,
) -> Result<AppJson<Exited>> {
    let token = token.ok().map(|BearerToken(t)| t);
    exit::exit(&state, token.as_deref(), &body)
        .await
        .map(AppJson)
}

/// `POST /v1/exit/return`
///
/// Come back after `hide`: the exit token as bearer, a fresh proof-of-work (from
/// `POST /v1/devices/challenge`) and an Ed25519 signature by the device's registered signing
/// key over the context `relay exit return v1\0` followed by the challenge. Returns a new
/// token pair and a new exit token (the old one stops working) and tells the advocate. A
/// missing or wrong proof-of-work is `invalid_proof_of_work` (checked first); every other
/// failure (unknown, wiped or not hidden device, wrong signature) is the same `unauthorized`.
#[utoipa::path(post, path = "/v1/exit/return", tag = "exit", request_body = ReturnRequest,
    responses((status = 200, body = Returned), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn come_back(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
    AppJson(req): AppJson<ReturnRequest>,
) -> Result<AppJson<Returned>> {
    exit::come_back(&state, &token, req).await.map(AppJson)
}
