//! Quietline client SDK: the relay's HTTP and WebSocket API, typed ([`Api`], [`Stream`]).
//!
//! Everything a survivor's or advocate's device sends to the relay goes through here. The SDK
//! adds nothing identifying to requests (no cookies, no user agent of its own) and never puts a
//! token in a URL (docs/THREAT_MODEL.md, invariant 2). Bearer tokens are [`Token`]s, whose `Debug`
//! prints nothing.
//!
//! ```no_run
//! # async fn demo(keys: quietline_proto::wire::DeviceKeys) -> quietline_client::Result<()> {
//! use quietline_client::Api;
//! let relay = Api::new("http://127.0.0.1:8080")?;
//! let reg = relay.register_survivor(keys).await?;
//! let device = relay.with_token(reg.tokens.access_token.as_str());
//! let inbox = device.inbox().await?;
//! # let _ = inbox; Ok(()) }
//! ```

pub mod api;
pub mod error;
pub mod message;
pub mod org;
pub mod secure;
pub mod state;
pub mod stream;
pub mod trust;

pub use api::{Api, ExitMode, Method, RawRequest, RawResponse, Token, random_id, solve_challenge};
pub use error::{Error, Result};
pub use message::{Body, Payload};
pub use secure::{Incoming, Received, SecureClient, Sent};
pub use state::{DeviceState, KdfParams, StateFile};
pub use stream::Stream;
pub use trust::{Refusal, TrustReport, TrustState};

/// The crypto types callers need alongside the SDK.
pub use quietline_proto::crypto::{CryptoError, StoreKey};
