//! Stored-session parsing: never panics, and whatever parses writes back identically
//! (one encoding per state, so a store cannot hold two forms of one session).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::session::Session;

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = Session::from_bytes(data) {
        assert_eq!(&session.to_bytes()[..], data);
    }
});
