//! Member sign-in and token rotation.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::AppJson;
use crate::service::auth;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use quietline_proto::ErrorBody;
use quietline_proto::wire::{
    Enroll, Enrolled, LoggedIn, Login, LogoutRequest, RefreshRequest, TokenPair,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/enroll", post(enroll))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
}

/// `POST /v1/auth/enroll`
///
/// Accept an invitation: set a password (argon2id) and receive the TOTP secret as an
/// `otpauth://` URI. The invitation token works once.
#[utoipa::path(post, path = "/v1/auth/enroll", tag = "auth", request_body = Enroll,
    responses((status = 200, body = Enrolled), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    AppJson(req): AppJson<Enroll>,
) -> Result<AppJson<Enrolled>> {
    auth::enroll(&state, req).await.map(AppJson)
}

/// `POST /v1/auth/login`
///
/// Password + TOTP. Every failure (unknown handle, wrong password or code, too many attempts
/// on the account in its window) gets the same `unauthorized` after a fixed floor;
/// `rate_limited` only when logins as a whole are over the global limit.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoggedIn), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    AppJson(req): AppJson<Login>,
) -> Result<AppJson<LoggedIn>> {
    auth::login(&state, req).await.map(AppJson)
}

/// `POST /v1/auth/refresh`
///
/// Trade a refresh token for a new pair. Each refresh token works once; presenting a used
/// one revokes the whole session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<AppJson<TokenPair>> {
    auth::refresh(&state, &req.refresh_token).await.map(AppJson)
}

/// `POST /v1/auth/logout`
///
/// End the session the refresh token belongs to.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = LogoutRequest, responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    AppJson(req): AppJson<LogoutRequest>,
) -> Result<StatusCode> {
    auth::logout(&state, &req.refresh_token, req.remove_device).await?;
    Ok(StatusCode::NO_CONTENT)
}
