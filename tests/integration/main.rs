//! The integration suite: real servers over real HTTP and WebSocket, driven by the client
//! SDK. Every scenario runs on SQLite and, when `QUIETLINE_TEST_POSTGRES_URL` is set, on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod conversations;
mod durability;
mod envelopes;
mod hardening;
mod push;
