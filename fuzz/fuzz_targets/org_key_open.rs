//! Sealed organisation key files: never panics; parameters beyond the bounds are refused
//! before any key derivation; a changed file never opens. Files asking for more than a
//! little memory or time within the bounds are skipped so the fuzzer stays fast (the unit
//! tests open default-parameter files).
#![no_main]

mod trust_setup;

use libfuzzer_sys::fuzz_target;
use quietline_proto::crypto::CryptoError;
use quietline_proto::crypto::org::{MAX_M_KIB, MAX_P, MAX_T, OrgKeyPair, SEALED_LEN};

fn param(file: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]])
}

fuzz_target!(|data: &[u8]| {
    let fixture = trust_setup::fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        trust_setup::flip(&fixture.sealed, rest)
    };
    if file.len() == SEALED_LEN && file.starts_with(b"QLOK") && file[4] == 1 {
        let (m, t, p) = (param(&file, 5), param(&file, 9), param(&file, 13));
        if m > MAX_M_KIB || t > MAX_T || p > MAX_P {
            assert_eq!(
                OrgKeyPair::open(&file, trust_setup::PASSPHRASE).unwrap_err(),
                CryptoError::BadParameters
            );
            return;
        }
        if m > 256 || t > 2 {
            return;
        }
    }
    match OrgKeyPair::open(&file, trust_setup::PASSPHRASE) {
        Ok(key) => {
            assert!(file == fixture.sealed);
            assert_eq!(key.public(), fixture.org);
        }
        Err(_) => assert!(file != fixture.sealed),
    }
});
