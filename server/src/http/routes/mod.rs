//! Route modules; each exports `router() -> Router<AppState>`.

pub mod auth;
pub mod conversations;
pub mod devices;
pub mod exit;
pub mod health;
pub mod members;
pub mod messages;
pub mod push;
pub mod stream;
pub mod trust;
pub mod web;
