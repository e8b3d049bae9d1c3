//! Cross-cutting HTTP behaviour: the uniform error body for every 4xx/5xx, security and
//! cache headers (a handler that set its own keeps them: the dashboard's files), timeouts,
//! and the access log.
//!
//! The access log records the method, the route *template* (never the raw path, which holds
//! ids), the status and the latency. It never records an IP address, a user agent, a query
//! string or a header (docs/THREAT_MODEL.md, invariant 2).

use super::error::{InternalCause, code_for_status};
use crate::app::AppState;
use crate::error::Error;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "interest-cohort=()"),
];

/// Marks the disguised "no such page" answer, which must stay as it is.
#[derive(Clone, Copy, Debug)]
pub struct StaticNotFound;

/// The answer for a path that is no route: what any static web server says, so probing
/// paths under (or outside) the route prefix reveals nothing about what runs here
/// (docs/SAFETY.md, disguise).
pub async fn static_not_found() -> Response {
    const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n\
<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n";
    let mut r = (
        axum::http::StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE,
    )
        .into_response();
    r.extensions_mut().insert(StaticNotFound);
    r
}

/// Around the whole router: a wrong method on a known path gets the static page too, and
/// the `Allow` header axum adds to it (after every route layer has run) would say that the
/// path exists, so it goes.
pub async fn strip_allow(mut response: Response) -> Response {
    if response.extensions().get::<StaticNotFound>().is_some() {
        response.headers_mut().remove(header::ALLOW);
    }
    response
}

/// Pad a JSON body with trailing spaces (valid JSON whitespace) to a multiple of
/// `RESPONSE_PAD_QUANTUM`, so response sizes fall into buckets (docs/SAFETY.md, disguise).
async fn pad_json(response: Response) -> Response {
    use quietline_proto::padding::RESPONSE_PAD_QUANTUM;
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return Error::new(quietline_proto::ErrorCode::Internal).into_response();
    };
    let padded_len = bytes.len().div_ceil(RESPONSE_PAD_QUANTUM).max(1) * RESPONSE_PAD_QUANTUM;
    let mut padded = Vec::with_capacity(padded_len);
    padded.extend_from_slice(&bytes);
    padded.resize(padded_len, b' ');
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(padded))
}

/// Outermost layer: log, then make every error response ours and add the headers.
pub async fn finish(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let http1 = req.version() <= axum::http::Version::HTTP_11;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let disguised = response.extensions().get::<StaticNotFound>().is_some();
    if (status.is_client_error() || status.is_server_error()) && !is_json && !disguised {
        let cause = response.extensions().get::<InternalCause>().cloned();
        response = Error::new(code_for_status(status)).into_response();
        *response.status_mut() = status;
        if let Some(c) = cause {
            response.extensions_mut().insert(c);
        }
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        response = pad_json(response).await;
    }
    let headers = response.headers_mut();
    headers.remove(header::SERVER);
    // Refused before its body was read (too large, or too slow): the rest of that body may
    // still be on its way, so the connection cannot carry another request. Say so, so that
    // a client does not reuse it and fail on its next request.
    if http1 && matches!(status.as_u16(), 408 | 413) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in SECURITY_HEADERS {
        // A handler that chose its own caching or policy keeps it (the dashboard's static
        // files); everything else gets `no-store` and a policy that allows nothing.
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, route, status = status.as_u16(), latency_ms, cause, "request failed");
    } else {
        tracing::info!(%method, route, status = status.as_u16(), latency_ms, "request");
    }
    metrics::counter!("quietline_http_responses_total", "status" => status.as_u16().to_string())
        .increment(1);
    response
}

/// Requests that take longer than `request_timeout_secs` get `timeout`.
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Error::new(quietline_proto::ErrorCode::Timeout).into_response(),
    }
}

/// The body of a caught panic: our 500, nothing of the panic message.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let mut r = Error::new(quietline_proto::ErrorCode::Internal).into_response();
    r.extensions_mut()
        .insert(InternalCause("handler panicked".into()));
    r
}
