//! The HTTP layer: routes, extractors, errors, middleware, the WebSocket stream, OpenAPI.
//! Each routes module exports `router()`; they are composed here, in one place.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;

use crate::app::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

/// The full router: health at the root, the API under the configured prefix.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::devices::router())
        .merge(routes::push::router())
        .merge(routes::auth::router())
        .merge(routes::conversations::router())
        .merge(routes::messages::router())
        .merge(routes::members::router())
        .merge(routes::stream::router())
        .merge(routes::exit::router())
        .merge(openapi::router())
        .merge(routes::web::router(&state.config.web_path))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let prefix = state.config.route_prefix.clone();
    let app = Router::new().merge(routes::health::router());
    let app = if prefix.is_empty() {
        app.merge(api)
    } else {
        app.nest(&prefix, api)
    };
    app.fallback(middleware::static_not_found)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::finish))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .with_state(state)
}
