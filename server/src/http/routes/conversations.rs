//! Opening contact, the queue, and the advocate workflow.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth, PathId};
use crate::service::conversations as conv;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use quietline_proto::ErrorBody;
use quietline_proto::wire::{
    Conversation, ConversationList, ConversationOpened, OpenConversation, Recipients, Transfer,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{code}/conversations", post(open))
        .route("/v1/conversations", get(list))
        .route("/v1/conversations/{id}", get(show))
        .route("/v1/conversations/{id}/claim", post(claim))
        .route("/v1/conversations/{id}/transfer", post(transfer))
        .route("/v1/conversations/{id}/close", post(close))
        .route("/v1/conversations/{id}/recipients", get(recipients))
}

/// `POST /v1/orgs/{code}/conversations`
///
/// A survivor device opens contact with an organisation. Returns the queue position, the
/// bundles of the devices to encrypt the first message to, and, when nobody is on duty, the
/// out-of-hours notice (the device gets `advocate_available` once someone comes on duty).
#[utoipa::path(post, path = "/v1/orgs/{code}/conversations", tag = "conversations", params(("code" = String, Path)),
    request_body = OpenConversation,
    responses((status = 201, body = ConversationOpened), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(code): Path<String>,
    AppJson(req): AppJson<OpenConversation>,
) -> Result<(StatusCode, AppJson<ConversationOpened>)> {
    let out = conv::open(&state, caller, &code, req).await?;
    Ok((StatusCode::CREATED, AppJson(out)))
}

/// `GET /v1/conversations`
///
/// Members: the organisation's waiting queue (urgent first) and their own conversations
/// (supervisors: all). Survivors: their own conversation.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations",
    responses((status = 200, body = ConversationList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<AppJson<ConversationList>> {
    Ok(AppJson(ConversationList {
        conversations: conv::list(&state, caller).await?,
    }))
}

/// `GET /v1/conversations/{id}`
///
/// One conversation the caller may see; `not_found` for any other.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<AppJson<Conversation>> {
    conv::get(&state, caller, id).await.map(AppJson)
}

/// `POST /v1/conversations/{id}/claim`
///
/// Assign a waiting conversation to the caller. Of concurrent claims exactly one wins; the
/// others get `conflict`.
#[utoipa::path(post, path = "/v1/conversations/{id}/claim", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn claim(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<AppJson<Conversation>> {
    conv::claim(&state, caller, id).await.map(AppJson)
}

/// `POST /v1/conversations/{id}/transfer`
///
/// Hand the conversation to another member of the organisation (the assignee or a
/// supervisor may). The survivor's device is told to refresh its recipient list.
#[utoipa::path(post, path = "/v1/conversations/{id}/transfer", tag = "conversations", params(("id" = String, Path)),
    request_body = Transfer,
    responses((status = 200, body = Conversation), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn transfer(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    AppJson(req): AppJson<Transfer>,
) -> Result<AppJson<Conversation>> {
    conv::transfer(&state, caller, id, req.to_member)
        .await
        .map(AppJson)
}

/// `POST /v1/conversations/{id}/close`
///
/// Close and purge the conversation and every envelope in it, at once.
#[utoipa::path(post, path = "/v1/conversations/{id}/close", tag = "conversations", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn close(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    conv::close(&state, caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conversations/{id}/recipients`
///
/// The devices a participant's next message must be encrypted to (never the caller's own).
#[utoipa::path(get, path = "/v1/conversations/{id}/recipients", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = Recipients), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recipients(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<AppJson<Recipients>> {
    Ok(AppJson(Recipients {
        devices: conv::recipients(&state, caller, id).await?,
    }))
}
