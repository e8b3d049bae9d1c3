//! `GET /v1/openapi.json`: the API description, generated from the handlers' annotations
//! and the `proto` types.

use crate::app::AppState;
use crate::http::routes::*;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Relay API", version = "1", description = "End-to-end encrypted message relay. Every error is `{\"error\": {\"code\", \"message\"}}`."),
    modifiers(&BearerAuth),
    paths(
        health::healthz, health::readyz,
        devices::challenge, devices::register, devices::upload_prekeys, devices::bundle,
        push::register, push::unregister,
        auth::enroll, auth::login, auth::refresh, auth::logout,
        conversations::open, conversations::list, conversations::show, conversations::claim,
        conversations::transfer, conversations::close, conversations::recipients,
        messages::send, messages::inbox, messages::ack,
        stream::stream, stream::ticket,
        exit::exit_now, exit::come_back,
        members::duty, members::settings, members::set_settings, members::invite,
    ),
    components(schemas(quietline_proto::ErrorBody, quietline_proto::ErrorCode))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi))
}

/// `GET /v1/openapi.json`
///
/// This API's OpenAPI 3.1 description.
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
