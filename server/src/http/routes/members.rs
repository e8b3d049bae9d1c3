//! Members' duty status; supervisors' organisation settings and invitations.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth};
use crate::service::members;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use quietline_proto::ErrorBody;
use quietline_proto::wire::{Duty, Invite, Invited, OrgSettings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/members/me/duty", put(duty))
        .route("/v1/org/settings", get(settings).put(set_settings))
        .route("/v1/org/invites", post(invite))
}

/// `PUT /v1/members/me/duty`
///
/// Go on or off duty. Coming on duty wakes survivors waiting in the queue.
#[utoipa::path(put, path = "/v1/members/me/duty", tag = "members", request_body = Duty,
    responses((status = 200, body = Duty), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn duty(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<Duty>,
) -> Result<AppJson<Duty>> {
    members::set_duty(&state, caller, req).await.map(AppJson)
}

/// `GET /v1/org/settings`
///
/// The caller's organisation settings.
#[utoipa::path(get, path = "/v1/org/settings", tag = "members", responses((status = 200, body = OrgSettings)), security(("bearer" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<AppJson<OrgSettings>> {
    members::settings(&state, caller).await.map(AppJson)
}

/// `PUT /v1/org/settings`
///
/// Change the organisation settings (supervisors).
#[utoipa::path(put, path = "/v1/org/settings", tag = "members", request_body = OrgSettings,
    responses((status = 200, body = OrgSettings), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<OrgSettings>,
) -> Result<AppJson<OrgSettings>> {
    members::set_settings(&state, caller, req)
        .await
        .map(AppJson)
}

/// `POST /v1/org/invites`
///
/// Invite a member (supervisors). The one-time enrolment token is shown once.
#[utoipa::path(post, path = "/v1/org/invites", tag = "members", request_body = Invite,
    responses((status = 201, body = Invited), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<Invite>,
) -> Result<(StatusCode, AppJson<Invited>)> {
    let out = members::invite(&state, caller, req).await?;
    Ok((StatusCode::CREATED, AppJson(out)))
}
