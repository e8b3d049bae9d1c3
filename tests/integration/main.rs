//! The integration suite: real servers over real HTTP and WebSocket, driven by the client
//! SDK. Every scenario runs on SQLite and, when `QUIETLINE_TEST_POSTGRES_URL` is set, on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod auth;
mod cli;
mod conversations;
pub mod durability;
mod e2e;
mod envelopes;
mod exit;
mod hardening;
mod metadata;
mod push;
mod retention;
mod web;
