//! Liveness and readiness for orchestrators.

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::extract::AppJson;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use quietline_proto::ErrorCode;
use quietline_proto::wire::Health;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz`
///
/// The process is up and serving HTTP. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> AppJson<Health> {
    AppJson(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`
///
/// The database answers and every migration is applied; `unavailable` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health), (status = 503, body = quietline_proto::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<AppJson<Health>> {
    match state.store.ready().await {
        Ok(true) => Ok(AppJson(Health {
            status: "ok".into(),
        })),
        Ok(false) => Err(Error::new(ErrorCode::Unavailable)),
        Err(e) => Err(Error {
            code: ErrorCode::Unavailable,
            recipients: None,
            internal: Some(e.to_string()),
        }),
    }
}
