//! Push registration: where and when the caller's device may be sent a wake signal.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth};
use crate::service::push;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use quietline_proto::ErrorBody;
use quietline_proto::wire::PushRegistration;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/devices/me/push", put(register).delete(unregister))
}

/// `PUT /v1/devices/me/push`
///
/// Register or replace the device's push endpoint (a public HTTPS URL) and its weekly safe
/// hours in its own time zone. The server then sends content-free wake signals, an empty
/// POST, only inside those hours and at most once per configured interval; the URL is kept
/// only while the device exists.
#[utoipa::path(put, path = "/v1/devices/me/push", tag = "devices", request_body = PushRegistration,
    responses((status = 204), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<PushRegistration>,
) -> Result<StatusCode> {
    push::register(&state, caller, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/devices/me/push`
///
/// Forget the device's push endpoint and safe hours at once; no wake signal follows.
/// Answers the same whether or not one was registered.
#[utoipa::path(delete, path = "/v1/devices/me/push", tag = "devices",
    responses((status = 204)), security(("bearer" = [])))]
pub async fn unregister(State(state): State<AppState>, Auth(caller): Auth) -> Result<StatusCode> {
    push::unregister(&state, caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
