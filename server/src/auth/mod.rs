//! Authentication: access tokens (JWT), passwords (argon2id) and TOTP.
//!
//! Architecture invariant: tokens are compared and stored only as hashes or verified
//! signatures; no token, password or TOTP secret is ever logged.

pub mod jwt;
pub mod password;
pub mod totp;
