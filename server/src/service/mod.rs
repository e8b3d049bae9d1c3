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

pub use auth::Caller;
