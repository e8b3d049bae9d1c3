//! Stored device-secrets parsing: never panics, and whatever parses writes back identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::keys::DeviceSecrets;

fuzz_target!(|data: &[u8]| {
    if let Ok(secrets) = DeviceSecrets::from_bytes(data) {
        assert_eq!(&secrets.to_bytes()[..], data);
    }
});
