//! Quietline relay server: stores and forwards end-to-end encrypted envelopes between
//! survivors' devices and advocates' devices, and keeps nothing else it does not need.
//!
//! `app(state) -> Router` is the whole HTTP API; `cli` is the binary's entry point.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod limits;
pub mod random;
pub mod secret_file;
pub mod serve;
pub mod service;
pub mod store;
pub mod sweeper;

pub use app::{AppState, app};
