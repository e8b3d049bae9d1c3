//! `quietline-proto`: the API boundary shared by the server, the client SDK and the web clients.
//!
//! It holds the wire types ([`wire`]), the error codes every response uses ([`error`]), the
//! identifier type ([`id`]), the envelope size buckets the server enforces ([`padding`]), the
//! proof-of-work puzzle for anonymous registration ([`pow`]), the organisation root of trust
//! (device certificates and organisation key changes, [`trust`]; verification behind the
//! `verify` feature) and, behind the `crypto` feature (which implies `verify`), the
//! client-side end-to-end encryption. Architecture invariant: this crate depends on no
//! server crate (no tokio, axum or sqlx) and compiles to `wasm32-unknown-unknown`.

pub mod b64;
#[cfg(feature = "crypto")]
pub mod crypto;
pub mod error;
pub mod id;
pub mod padding;
pub mod pow;
pub mod trust;
pub mod wire;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use id::Id;
