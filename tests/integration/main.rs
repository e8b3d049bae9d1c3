//! The integration suite: real servers over real HTTP and WebSocket, driven by the client
//! SDK. Every scenario runs on SQLite and, when `QUIETLINE_TEST_POSTGRES_URL` is set, on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod architecture;
mod auth;
mod cli;
mod conversations;
mod devices;
mod docs_map;
pub mod durability;
mod e2e;
mod envelopes;
mod exit;
mod flood;
mod hardening;
mod keys;
mod malicious_relay;
mod metadata;
mod push;
mod retention;
mod schema;
mod signing_key;
mod streams;
mod trust;
mod web;
