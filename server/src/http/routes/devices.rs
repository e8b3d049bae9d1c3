//! Device registration, prekeys and bundles.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth, PathId};
use crate::service::devices;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use quietline_proto::ErrorBody;
use quietline_proto::wire::{
    Bundle, Challenge, DeviceRegistered, PrekeyCount, RegisterDevice, UploadPrekeys,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices/challenge", post(challenge))
        .route("/v1/devices", post(register))
        .route("/v1/devices/me/prekeys", put(upload_prekeys))
        .route("/v1/devices/{id}/bundle", get(bundle))
        .route("/v1/devices/{id}", delete(remove))
}

/// `POST /v1/devices/challenge`
///
/// A fresh, single-use proof-of-work challenge for registering a survivor device.
/// `rate_limited` when challenges as a whole are over the global limit.
#[utoipa::path(post, path = "/v1/devices/challenge", tag = "devices", responses((status = 200, body = Challenge), (status = 429, body = ErrorBody)))]
pub async fn challenge(State(state): State<AppState>) -> Result<AppJson<Challenge>> {
    devices::challenge(&state).await.map(AppJson)
}

/// `POST /v1/devices`
///
/// Register a device with its public keys. Anonymous callers (survivors) must include a
/// solved challenge and get an exit token too; a signed-in member registers a browser
/// without one. Nothing but public keys is taken.
#[utoipa::path(post, path = "/v1/devices", tag = "devices", request_body = RegisterDevice,
    responses((status = 201, body = DeviceRegistered), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    auth: Option<Auth>,
    AppJson(req): AppJson<RegisterDevice>,
) -> Result<(StatusCode, AppJson<DeviceRegistered>)> {
    let out = devices::register(&state, auth.map(|a| a.0), req).await?;
    Ok((StatusCode::CREATED, AppJson(out)))
}

/// `PUT /v1/devices/me/prekeys`
///
/// Add one-time prekeys and optionally rotate the signed prekey of the caller's device.
#[utoipa::path(put, path = "/v1/devices/me/prekeys", tag = "devices", request_body = UploadPrekeys,
    responses((status = 200, body = PrekeyCount)), security(("bearer" = [])))]
pub async fn upload_prekeys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<UploadPrekeys>,
) -> Result<AppJson<PrekeyCount>> {
    devices::upload_prekeys(&state, caller, req)
        .await
        .map(AppJson)
}

/// `GET /v1/devices/{id}/bundle`
///
/// A device's keys for starting a session; hands out each one-time prekey at most once.
/// Only for devices the caller shares a conversation or organisation with.
#[utoipa::path(get, path = "/v1/devices/{id}/bundle", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = Bundle), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn bundle(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<AppJson<Bundle>> {
    devices::bundle(&state, caller, id).await.map(AppJson)
}

/// `DELETE /v1/devices/{id}`
///
/// A signed-in member removes one of their own devices (a lost or abandoned browser) with
/// its tokens, prekeys, push registration and pending envelopes. Anything else (another
/// member's device, a survivor device, an unknown id) is `not_found`.
#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> Result<StatusCode> {
    devices::remove(&state, caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
