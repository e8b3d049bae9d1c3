//! The whole receive path of an established session: decode, stage, AEAD, unpad, commit.
//! The input is either a raw envelope or a set of byte flips over a valid one, so the
//! fuzzer reaches past the length check and the tag. A refused input must leave the session
//! byte-for-byte unchanged; an accepted one must be the untouched original.
#![no_main]

mod setup;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixture = setup::fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut receiver, valid) = match mode % 3 {
        0 => (fixture.bob.clone(), Some(&fixture.prekey_envelope)),
        1 => (fixture.alice.clone(), Some(&fixture.message_envelope)),
        _ => (fixture.alice.clone(), None),
    };
    let input = match valid {
        Some(v) => setup::flip(v, rest),
        None => rest.to_vec(),
    };
    let before = receiver.to_bytes();
    match receiver.decrypt_with(&input, &mut setup::Counter(0), None) {
        Ok(_) => assert_eq!(Some(&input), valid),
        Err(_) => assert_eq!(receiver.to_bytes(), before),
    }
});
