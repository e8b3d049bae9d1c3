//! Domain logic: who may do what, and what happens. No HTTP and no SQL here: handlers call
//! these functions, which call the store.

pub mod auth;
pub mod conversations;
pub mod devices;
pub mod events;
pub mod exit;
pub mod members;
pub mod messages;
pub mod push;
pub mod stream_tickets;
pub mod trust;

pub use auth::Caller;

use crate::app::AppState;
use crate::limits::AnonRoute;

/// Seconds since the epoch in real time, for rate limits (they measure request rates, not
/// retention, so they do not follow the injectable clock).
pub fn real_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Take one request from an anonymous route's global bucket, or `rate_limited`. Checked
/// before any other work, so a flood costs a map lookup per request and the answer says
/// nothing about what the request named.
pub fn limit_anonymous(state: &AppState, route: AnonRoute) -> crate::error::Result<()> {
    let c = &state.config;
    let (rate, burst) = match route {
        AnonRoute::Challenge => (c.challenge_per_second, c.challenge_burst),
        AnonRoute::Register => (c.register_per_second, c.register_burst),
        AnonRoute::Enroll => (c.enroll_per_second, c.enroll_burst),
        AnonRoute::Login => (c.login_per_second, c.login_burst),
        AnonRoute::ExitReturn => (c.exit_return_per_second, c.exit_return_burst),
    };
    if state
        .limits
        .allow_anonymous(route, real_now(), f64::from(rate), f64::from(burst))
    {
        Ok(())
    } else {
        metrics::counter!("quietline_rate_limited_total", "route" => route.label()).increment(1);
        Err(crate::error::Error::new(
            quietline_proto::ErrorCode::RateLimited,
        ))
    }
}
