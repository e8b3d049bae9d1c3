//! Opening sealed at-rest data: never panics, and nothing the fuzzer makes up opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::{StoreKey, open};

fuzz_target!(|data: &[u8]| {
    let key = StoreKey::from_bytes([7; 32]);
    assert!(open(&key, b"fuzz", data).is_err());
});
