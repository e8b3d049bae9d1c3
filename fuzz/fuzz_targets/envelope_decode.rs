//! The envelope decoder and the padding stripper on any input, and on the input cut or
//! zero-extended to the 1 KiB bucket so the fuzzer gets past the length check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::envelope;

fuzz_target!(|data: &[u8]| {
    let _ = envelope::decode(data);
    let _ = envelope::unpad(data);
    let mut bucket = data.to_vec();
    bucket.resize(1024, 0);
    if let Ok(env) = envelope::decode(&bucket) {
        assert_eq!(env.len(), 1024);
    }
});
