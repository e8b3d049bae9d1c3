//! Quietline client SDK.
