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

/// Every operation can also answer an error the annotations do not list one by one (a bad
/// body 400 or 415, an expired token 401, a rate limit 429, a timeout 408, ...), always in
/// the one error shape: document that as each operation's `default` response, so a
/// client (or a schema checker) knows what any other status carries.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Ref;
        use utoipa::openapi::{ContentBuilder, ResponseBuilder};
        let error = ResponseBuilder::new()
            .description("Any other status: an error in the one error shape")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| error.clone().into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "API", version = "1", description = "Every error is `{\"error\": {\"code\", \"message\"}}`."),
    modifiers(&BearerAuth, &ErrorResponses),
    paths(
        health::healthz, health::readyz,
        devices::challenge, devices::register, devices::upload_prekeys, devices::bundle, devices::remove,
        push::register, push::unregister,
        auth::enroll, auth::login, auth::refresh, auth::logout,
        conversations::open, conversations::list, conversations::show, conversations::claim,
        conversations::transfer, conversations::close, conversations::recipients,
        messages::send, messages::inbox, messages::ack,
        stream::stream, stream::ticket,
        exit::exit_now, exit::come_back,
        members::duty, members::settings, members::set_settings, members::invite,
        trust::org_key, trust::set_org_key, trust::org_devices, trust::certify, trust::my_certificate,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_errors_in_the_one_shape() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let default = &op["responses"]["default"];
                assert_eq!(
                    default["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
                operations += 1;
            }
        }
        assert!(operations >= 25, "{operations}");
    }
}
