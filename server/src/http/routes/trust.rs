//! The organisation key and member device certificates.

use crate::app::AppState;
use crate::error::Result;
use crate::http::extract::{AppJson, Auth, PathId};
use crate::service::trust;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use quietline_proto::ErrorBody;
use quietline_proto::wire::{Certificate, MemberDevice, MemberDevices, OrgKeyChain, SetOrgKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/org/key", put(set_org_key))
        .route("/v1/orgs/{code}/key", get(org_key))
        .route("/v1/org/devices", get(org_devices))
        .route("/v1/devices/{id}/certificate", put(certify))
        .route("/v1/devices/me/certificate", get(my_certificate))
}

/// `GET /v1/orgs/{code}/key`
///
/// The organisation key's public chain, oldest first: the first key and every replacement,
/// each signed by the key before it. Clients pin a key and follow the chain from it.
#[utoipa::path(get, path = "/v1/orgs/{code}/key", tag = "trust", params(("code" = String, Path)),
    responses((status = 200, body = OrgKeyChain), (status = 404, body = ErrorBody)))]
pub async fn org_key(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<AppJson<OrgKeyChain>> {
    trust::org_key(&state, &code).await.map(AppJson)
}

/// `PUT /v1/org/key`
///
/// Register the organisation key's public half (supervisors), or replace it with a change
/// statement signed by the current key. The private half never comes here.
#[utoipa::path(put, path = "/v1/org/key", tag = "trust", request_body = SetOrgKey,
    responses((status = 200, body = OrgKeyChain), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_org_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    AppJson(req): AppJson<SetOrgKey>,
) -> Result<AppJson<OrgKeyChain>> {
    trust::set_org_key(&state, caller, req).await.map(AppJson)
}

/// `GET /v1/org/devices`
///
/// The organisation's member devices with their keys and certificates (supervisors), to
/// certify the pending ones.
#[utoipa::path(get, path = "/v1/org/devices", tag = "trust",
    responses((status = 200, body = MemberDevices), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn org_devices(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<AppJson<MemberDevices>> {
    trust::org_devices(&state, caller).await.map(AppJson)
}

/// `PUT /v1/devices/{id}/certificate`
///
/// Store a member device's certificate, signed with the organisation key (supervisors). From
/// then on the device is a recipient of its member's conversations until the certificate
/// expires.
#[utoipa::path(put, path = "/v1/devices/{id}/certificate", tag = "trust", params(("id" = String, Path)),
    request_body = Certificate,
    responses((status = 200, body = MemberDevice), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn certify(
    State(state): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    AppJson(req): AppJson<Certificate>,
) -> Result<AppJson<MemberDevice>> {
    trust::certify(&state, caller, id, req).await.map(AppJson)
}

/// `GET /v1/devices/me/certificate`
///
/// The calling member device's own certificate, once a supervisor has made one.
#[utoipa::path(get, path = "/v1/devices/me/certificate", tag = "trust",
    responses((status = 200, body = Certificate), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn my_certificate(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<AppJson<Certificate>> {
    trust::my_certificate(&state, caller).await.map(AppJson)
}
