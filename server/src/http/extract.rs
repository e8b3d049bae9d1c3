//! Our extractors, so every rejection has the project's error shape: [`AppJson`] for
//! bodies, [`Auth`] for the bearer token, [`PathId`] for ids in the path.

use crate::app::AppState;
use crate::error::Error;
use crate::service::{Caller, auth::authenticate};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Path, Request};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use quietline_proto::{ErrorCode, Id};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// JSON body in, JSON body out, with our errors.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(Error::new(match rejection {
                JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ErrorCode::PayloadTooLarge
                }
                _ => ErrorCode::BadRequest,
            })),
        }
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The authenticated caller; `unauthorized` without a valid access token.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts).ok_or_else(Error::unauthorized)?;
        if token.len() > 4096 {
            return Err(Error::unauthorized());
        }
        let caller = authenticate(state, token).await?;
        let subject = match caller {
            Caller::Survivor { device } => device,
            Caller::Member { member, .. } => member,
        };
        let now = crate::service::real_now();
        let c = &state.config;
        if !state.limits.allow(
            subject,
            now,
            f64::from(c.rate_limit_per_second),
            f64::from(c.rate_limit_burst),
        ) {
            return Err(Error::new(ErrorCode::RateLimited));
        }
        Ok(Auth(caller))
    }
}

impl OptionalFromRequestParts<AppState> for Auth {
    type Rejection = Error;

    /// No `Authorization` header: `None`. A header with a bad token: `unauthorized`.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Error> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            <Auth as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The raw bearer token (for `POST /v1/exit`, whose token is not an access token).
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        bearer(parts)
            .filter(|t| t.len() <= 4096)
            .map(|t| BearerToken(t.to_owned()))
            .ok_or_else(Error::unauthorized)
    }
}

/// An id in the path. A malformed id is `not_found`, like an unknown one: the path
/// names a resource, and there is nothing there.
pub struct PathId(pub Id);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = <Path<String> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::not_found())?;
        raw.parse().map(PathId).map_err(|_| Error::not_found())
    }
}
