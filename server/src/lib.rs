//! Quietline server.
