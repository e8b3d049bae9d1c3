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

/// The full router: the API under the configured prefix, with health and the OpenAPI
/// document (unless they are on the admin listener). Nothing answers outside the prefix; a
/// wrong method on a known path answers exactly like an unknown path.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .merge(routes::devices::router())
        .merge(routes::push::router())
        .merge(routes::auth::router())
        .merge(routes::conversations::router())
        .merge(routes::messages::router())
        .merge(routes::members::router())
        .merge(routes::stream::router())
        .merge(routes::exit::router())
        .merge(routes::trust::router())
        .merge(routes::web::router(&state.config.web_path));
    if !state.config.health_on_admin {
        api = api.merge(routes::health::router()).merge(openapi::router());
    }
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let prefix = state.config.route_prefix.clone();
    let app = if prefix.is_empty() {
        api
    } else {
        Router::new().nest(&prefix, api)
    };
    let app = app
        .fallback(middleware::static_not_found)
        .method_not_allowed_fallback(middleware::static_not_found)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::finish))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .with_state(state);
    // `Router::layer` wraps each route; this outer router sees the final response.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::map_response(middleware::strip_allow))
}
